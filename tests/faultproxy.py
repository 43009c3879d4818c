"""A fault-injecting HTTP proxy in front of an S3 endpoint (tests only).

``FaultProxy(upstream).start()`` listens on 127.0.0.1 and forwards every request to ``upstream`` (moto's
server), except that a share of them meet a fault:

- ``slowdown``: 503 with S3's ``SlowDown`` error, not forwarded;
- ``internal``: 500 with S3's ``InternalError``, not forwarded;
- ``delay``: forwarded after ``delay`` seconds;
- ``reset``: the connection is closed before anything is forwarded (the request never reaches S3, so it is
  safe for every request, CompleteMultipartUpload included);
- ``truncate`` (GetObject only): forwarded, then the response is cut in the middle of its body and the
  connection closed.

Faults are deterministic given the seed: the fate of a request is drawn from ``(seed, method, path, n)``
where n counts earlier requests with the same method and path, so threads interleaving differently get the
same faults. The path is taken without what is random per run (a test's fresh bucket, the writer's
``.tmp-<hex>`` suffix, MLflow's run ids, S3's multipart upload id), so the same test meets the same faults
on every run. At most ``max_consecutive`` faults in a row hit one (method, path), so a client that retries
(botocore "standard" mode, 5 attempts) or resumes always gets through. ``counts`` tallies what was injected.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlparse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
OWN_HEADERS = {"content-length", "date", "server"}  # written by this proxy's handler
ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}


def stable_path(path: str) -> str:
    """``path`` (path-style ``/bucket/key?query``) without the bucket, ``uploadId`` and any run of 10 or
    more hex digits (temporary suffixes, run and experiment ids)."""
    parsed = urlparse(path)
    key = re.sub(r"[0-9a-f]{10,}", "#", parsed.path.lstrip("/").partition("/")[2])
    query = [(k, "" if k == "uploadId" else v) for k, v in parse_qsl(parsed.query, keep_blank_values=True)]
    return f"/{key}?{urlencode(query)}" if parsed.query else f"/{key}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that hung up: nothing to report
        pass


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        seed: int = 0,
        error_rate: float = 0.1,
        delay_rate: float = 0.05,
        delay: float = 0.2,
        reset_rate: float = 0.05,
        truncate_rate: float = 0.25,
        max_consecutive: int = 2,
    ):
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.seed, self.delay, self.max_consecutive = seed, delay, max_consecutive
        self.rates = {"error": error_rate, "delay": delay_rate, "reset": reset_rate, "truncate": truncate_rate}
        self.counts: Counter[str] = Counter()
        self._seen: Counter[tuple[str, str]] = Counter()
        self._streak: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self.enabled = True
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fate(self, method: str, path: str) -> str | None:
        """The fault for this request (None: forwarded untouched)."""
        key = (method, stable_path(path))
        with self._lock:
            n = self._seen[key]
            self._seen[key] += 1
            if not self.enabled or self._streak[key] >= self.max_consecutive:
                self._streak[key] = 0
                return None
            draw = random.Random(f"{self.seed}:{method}:{key[1]}:{n}").random()
            get_object = method == "GET" and "?" not in path and path.count("/") >= 2
            fate = None
            for kind, rate in self.rates.items():
                if kind == "truncate" and not get_object:
                    continue
                if draw < rate:
                    fate = kind
                    break
                draw -= rate
            if fate == "error":
                fate = "slowdown" if draw < self.rates["error"] / 2 else "internal"
            if fate is None:
                self._streak[key] = 0
            else:
                self._streak[key] += 1
                self.counts[fate] += 1
            return fate

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _error(self, kind: str) -> None:
                status, code, message = ERRORS[kind]
                body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
                body += "</Error>"
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    return response.status, response.reason, response.getheaders(), data
                finally:
                    conn.close()

            def _handle(self) -> None:
                body = self._body()
                fate = proxy.fate(self.command, self.path)
                if fate in ERRORS:
                    self._error(fate)
                    return
                if fate == "reset":
                    self._drop()
                    return
                if fate == "delay":
                    time.sleep(proxy.delay)
                status, reason, headers, data = self._forward(body)
                self.send_response(status, reason)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP | OWN_HEADERS:
                        self.send_header(name, value)
                length = dict((k.lower(), v) for k, v in headers).get("content-length", str(len(data)))
                self.send_header("Content-Length", length if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if fate == "truncate" and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self._drop()
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler
