"""A Ray address that points at something other than a Ray head's GCS is named at once, not waited on."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vtrlab.cluster import connect
from vtrlab.errors import ConfigError


class _Page(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_web_server_given_as_the_ray_address_is_named(monkeypatch):
    """The dashboard's port given for the head's (ray.init would retry against it for minutes)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    try:
        with pytest.raises(ConfigError, match="answers as a web server") as caught:
            connect(address)
    finally:
        server.shutdown()
        server.server_close()
    assert address in str(caught.value) and "6379" in str(caught.value)
