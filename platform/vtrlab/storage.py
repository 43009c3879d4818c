"""Object-store URLs: a local path, ``file://`` or ``s3://bucket/prefix``, behind one small interface.

``open_store(url)`` gives a :class:`Store` rooted at the URL; keys are ``/``-separated paths below it.

- Local paths and ``file://`` URLs are directories on the local file system.
- ``s3://bucket/prefix`` goes through boto3 with the standard AWS configuration: the endpoint from
  ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``), credentials and region from the environment,
  the shared config/credentials files and profiles (``AWS_PROFILE``), or an instance role.

One retry configuration for every S3 path: ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS`` (botocore's names;
vtrlab's defaults: "standard" mode, 5 attempts in all). vtrlab's boto3 clients use it directly;
:func:`apply_retry_env` writes the defaults into an environment so that the clients vtrlab does not build
(MLflow's S3 artifact repository, a local Ray head's workers, an MLflow server) read the same;
:func:`pyarrow_filesystem` builds the pyarrow S3 filesystem Ray Train and Tune write checkpoints with,
with the same number of attempts.

Writes are atomic: the bytes go to a temporary key (``<key>.tmp-<random>``) or file first and are then
committed to the final key (``os.replace`` locally; server-side copy + delete on S3), so a reader never
sees a partial object under its final name. Reads of large objects stream (:meth:`Store.open_read`);
S3 streams resume with a ranged GET after a dropped connection, conditional on the object's ETag
(``If-Match``), so an object overwritten mid-read is an error, never a splice of two versions.

Every failure is raised as :class:`vtrlab.errors.StorageError` naming the bucket and key (or the path).

``register_webdataset_opener()`` teaches ``webdataset.gopen`` the ``s3://`` scheme (streaming through
boto3, no local copy), so ``webdataset`` pipelines and :func:`open_url` read shards from S3 directly.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from vtrlab.errors import StorageError

__all__ = [
    "LocalStore",
    "S3Store",
    "Store",
    "apply_retry_env",
    "join_url",
    "normalize_url",
    "open_store",
    "open_url",
    "pyarrow_filesystem",
    "read_url_bytes",
    "register_webdataset_opener",
    "retry_settings",
    "split_url",
]

_TMP_MARK = ".tmp-"


def join_url(base: str, *parts: str) -> str:
    """``base`` joined with ``parts`` by ``/`` (no double slashes; works for paths and URLs)."""
    out = base.rstrip("/")
    for p in parts:
        p = p.strip("/")
        if p:
            out = f"{out}/{p}" if out else p
    return out


def normalize_url(url: str) -> str:
    """``url`` with a local path made absolute and ``~`` expanded (``file://`` becomes a plain path);
    ``s3://`` URLs unchanged. Shard URLs built from it open anywhere (webdataset, another cwd)."""
    scheme, _, rest = split_url(url)
    if scheme == "s3":
        return url
    return str(Path(rest).expanduser().resolve())


def split_url(url: str) -> tuple[str, str, str]:
    """(scheme, bucket, prefix) of a store URL: ``("s3", bucket, prefix)`` or ``("file", "", path)``."""
    if not url:
        raise StorageError("empty storage URL: expected a local path, file:///path or s3://bucket/prefix")
    pr = urlparse(url)
    if pr.scheme == "s3":
        if not pr.netloc:
            raise StorageError(f"{url}: an s3:// URL needs a bucket: s3://bucket/prefix")
        return "s3", pr.netloc, pr.path.strip("/")
    if pr.scheme == "file":
        return "file", "", unquote(pr.path)
    if pr.scheme == "" or (len(pr.scheme) == 1 and os.name == "nt"):
        return "file", "", url
    raise StorageError(f"{url}: unsupported URL scheme {pr.scheme!r}: expected a local path, file:// or s3://")


class Store:
    """A place to put and get objects by key. Subclasses: :class:`LocalStore`, :class:`S3Store`."""

    url: str

    def url_for(self, key: str) -> str:
        """The full URL (or path) of ``key``, openable by :func:`open_url` and by webdataset."""
        return join_url(self.url, key)

    # -- interface -------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def open_read(self, key: str) -> BinaryIO:
        """A streaming, read-only binary file object for ``key`` (close it when done)."""
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomically write ``data`` to ``key`` (temporary key, then commit)."""
        raise NotImplementedError

    def put_file(self, local_path: str | os.PathLike, key: str) -> None:
        """Atomically upload the local file ``local_path`` to ``key`` (temporary key, then commit)."""
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[str]:
        """Keys below ``prefix`` (recursive, sorted), temporary keys excluded."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def size(self, key: str) -> int:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------------
    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode("utf-8"))

    def spec(self) -> dict:
        """A small picklable description (URL plus non-secret settings) to reopen this store elsewhere,
        e.g. in a Ray task on another node; credentials come from that node's own AWS configuration."""
        return {"url": self.url}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class LocalStore(Store):
    """A directory on the local file system."""

    def __init__(self, root: str | os.PathLike, url: str | None = None):
        self.root = Path(root).expanduser()
        self.url = url if url is not None else str(self.root)

    def spec(self) -> dict:
        # absolute, so that a Ray task running in another working directory writes to the same place
        return {"url": str(self.root.resolve())}

    def _path(self, key: str) -> Path:
        key = key.strip("/")
        if any(part == ".." for part in key.split("/")):
            raise StorageError(f"{self.root}: key {key!r} leaves the store")
        return self.root / key if key else self.root

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        p = self._path(key)
        try:
            return p.read_bytes()
        except FileNotFoundError:
            raise StorageError(f"{p}: no such file (store {self.url}, key {key})") from None
        except OSError as exc:
            raise StorageError(f"{p}: cannot read: {exc}") from exc

    def open_read(self, key: str) -> BinaryIO:
        p = self._path(key)
        try:
            return open(p, "rb")
        except FileNotFoundError:
            raise StorageError(f"{p}: no such file (store {self.url}, key {key})") from None
        except OSError as exc:
            raise StorageError(f"{p}: cannot read: {exc}") from exc

    def _commit_from(self, write, key: str) -> None:
        p = self._path(key)
        tmp = p.with_name(f"{p.name}{_TMP_MARK}{uuid.uuid4().hex[:12]}")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, p)
        except OSError as exc:
            with contextlib.suppress(OSError):  # the temporary file may not exist, nor its folder (a parent is a file)
                tmp.unlink(missing_ok=True)
            raise StorageError(f"{p}: cannot write: {exc}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        self._commit_from(lambda tmp: tmp.write_bytes(data), key)

    def put_file(self, local_path: str | os.PathLike, key: str) -> None:
        self._commit_from(lambda tmp: shutil.copyfile(local_path, tmp), key)

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix)
        if base.is_file():
            return [prefix.strip("/")]
        if not base.is_dir():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and _TMP_MARK not in p.name:
                out.append(p.relative_to(self.root).as_posix())
        return sorted(out)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except OSError as exc:
            raise StorageError(f"{self._path(key)}: {exc}") from exc


# ------------------------------------------------------------------------------------------------
# S3
# ------------------------------------------------------------------------------------------------

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def _endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


DEFAULT_RETRY_MODE = "standard"
DEFAULT_MAX_ATTEMPTS = 5
_RETRY_MODES = ("legacy", "standard", "adaptive")


def retry_settings() -> tuple[str, int]:
    """(mode, total attempts) from AWS_RETRY_MODE / AWS_MAX_ATTEMPTS, else vtrlab's defaults."""
    mode = os.environ.get("AWS_RETRY_MODE") or DEFAULT_RETRY_MODE
    if mode not in _RETRY_MODES:
        raise StorageError(f"AWS_RETRY_MODE={mode!r}: expected one of {', '.join(_RETRY_MODES)}")
    raw = os.environ.get("AWS_MAX_ATTEMPTS") or str(DEFAULT_MAX_ATTEMPTS)
    if not raw.isdigit() or int(raw) < 1:
        raise StorageError(f"AWS_MAX_ATTEMPTS={raw!r}: expected a whole number of attempts, at least 1")
    return mode, int(raw)


def apply_retry_env(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set AWS_RETRY_MODE / AWS_MAX_ATTEMPTS to vtrlab's defaults in ``env`` (default: os.environ) where
    unset, so botocore clients built by others (MLflow's artifact uploads, Ray workers started from this
    environment) retry like vtrlab's own; returns ``env``."""
    env = os.environ if env is None else env
    env.setdefault("AWS_RETRY_MODE", DEFAULT_RETRY_MODE)
    env.setdefault("AWS_MAX_ATTEMPTS", str(DEFAULT_MAX_ATTEMPTS))
    return env


def s3_client(endpoint_url: str | None = None):
    """A cached boto3 S3 client (one per endpoint, process, credential environment and retry setting).

    boto3 itself resolves credentials (env, profile, SSO, container/instance role) and region; the retries
    are :func:`retry_settings`.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - boto3 is a declared dependency
        raise StorageError(f"s3:// needs boto3, which is not importable: {exc}") from exc
    endpoint_url = endpoint_url or _endpoint_from_env()
    mode, attempts = retry_settings()
    key = (
        os.getpid(),
        endpoint_url,
        os.environ.get("AWS_PROFILE"),
        os.environ.get("AWS_ACCESS_KEY_ID"),
        os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"),
        mode,
        attempts,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            cfg = Config(retries={"mode": mode, "total_max_attempts": attempts}, max_pool_connections=32)
            session = boto3.session.Session()
            region = session.region_name or "us-east-1"
            client = session.client("s3", endpoint_url=endpoint_url, config=cfg, region_name=region)
            _clients[key] = client
    return client


def pyarrow_filesystem(url: str):
    """``(filesystem, path)`` for a local path or ``s3://bucket/prefix``, as Ray Train and Tune take them:
    ``RunConfig(storage_path=path, storage_filesystem=filesystem)``.

    For S3 it is pyarrow's S3FileSystem on the same endpoint (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL), region
    and credential chain as boto3, retrying like vtrlab's boto3 clients (:func:`retry_settings`: "legacy"
    maps to the AWS SDK's default strategy, "standard" and "adaptive" to its standard one), and keeping that
    retry strategy when pickled to Ray's workers (pyarrow's own pickling drops it). Ray's own
    ``FileSystem.from_uri`` would give 3 attempts and ignore AWS_MAX_ATTEMPTS."""
    import pyarrow.fs

    scheme, bucket, prefix = split_url(url)
    if scheme != "s3":
        return pyarrow.fs.LocalFileSystem(), normalize_url(url)
    mode, attempts = retry_settings()
    options: dict = {}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    endpoint = _endpoint_from_env()
    if endpoint:
        parsed = urlparse(endpoint)
        options["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
        options["scheme"] = parsed.scheme or "https"
    return _s3_filesystem(options, mode, attempts), join_url(bucket, prefix)


_S3FS_CLASS = None


@contextlib.contextmanager
def checkpoint_directory(checkpoint) -> Iterator[str]:
    """A Ray Train checkpoint's folder on this machine (what `Checkpoint.as_directory` gives), with the
    download retried whole when an object arrives cut off mid-body: pyarrow's S3 client retries failed
    requests but not a response stream that breaks (AWS_MAX_ATTEMPTS attempts in all, as everywhere else)."""
    import time

    import pyarrow.fs

    if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        yield checkpoint.path
        return
    _, attempts = retry_settings()
    with tempfile.TemporaryDirectory(prefix="vtrlab-checkpoint-") as directory:
        for attempt in range(attempts):
            try:
                checkpoint.to_directory(directory)
                break
            except OSError:
                if attempt == attempts - 1:
                    raise
                time.sleep(min(2.0**attempt * 0.2, 5.0))
        yield directory


def _s3_filesystem(options: dict, mode: str, attempts: int):
    """pyarrow's S3FileSystem with the retry strategy for (mode, attempts), rebuilt as such when unpickled."""
    global _S3FS_CLASS
    import pyarrow.fs

    if _S3FS_CLASS is None:

        class RetryingS3FileSystem(pyarrow.fs.S3FileSystem):
            def __reduce__(self):
                return _s3_filesystem, self._vtrlab_args

        _S3FS_CLASS = RetryingS3FileSystem
    strategy = pyarrow.fs.AwsDefaultS3RetryStrategy if mode == "legacy" else pyarrow.fs.AwsStandardS3RetryStrategy
    fs = _S3FS_CLASS(retry_strategy=strategy(max_attempts=attempts), **options)
    fs._vtrlab_args = (options, mode, attempts)
    return fs


def _s3_error(exc: Exception, bucket: str, key: str, what: str) -> StorageError:
    code = ""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        code = resp.get("Error", {}).get("Code", "") or ""
    detail = f"{code}: {exc}" if code else str(exc)
    return StorageError(f"s3://{bucket}/{key}: {what} failed (bucket {bucket!r}, key {key!r}): {detail}")


def _is_not_found(exc: Exception) -> bool:
    resp = getattr(exc, "response", None)
    if not isinstance(resp, dict):
        return False
    code = str(resp.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


class S3ReadStream(io.RawIOBase):
    """A streaming GET of one S3 object that resumes with a ranged GET after a connection error.

    The resumed GET is conditional on the ETag of the first response (``If-Match``): an object overwritten
    while it is read raises StorageError instead of splicing the old version's head onto the new one's tail.
    """

    def __init__(self, client, bucket: str, key: str, max_resumes: int = 5):
        self._client, self.bucket, self.key = client, bucket, key
        self._pos = 0
        self._body = None
        self._max_resumes = max_resumes
        self._size: int | None = None
        self._etag: str | None = None
        self._open()

    def _changed(self, now: str | None) -> StorageError:
        return StorageError(
            f"s3://{self.bucket}/{self.key}: the object changed while it was read (ETag {self._etag} at the start, "
            f"{now or 'another'} at byte {self._pos}); read it again (bucket {self.bucket!r}, key {self.key!r})"
        )

    def _open(self) -> None:
        kw = {"Bucket": self.bucket, "Key": self.key}
        if self._pos:
            kw["Range"] = f"bytes={self._pos}-"
            if self._etag:
                kw["IfMatch"] = self._etag
        try:
            resp = self._client.get_object(**kw)
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if self._pos and code in ("PreconditionFailed", "412"):
                raise self._changed(None) from None
            raise _s3_error(exc, self.bucket, self.key, "GET") from exc
        etag = resp.get("ETag")
        if self._etag is None:
            self._etag = etag
        elif etag and etag != self._etag:  # an endpoint that ignores If-Match
            resp["Body"].close()
            raise self._changed(etag)
        if self._size is None:
            self._size = int(resp.get("ContentLength", 0)) + self._pos
        self._body = resp["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._size is not None and self._pos >= self._size:
            return 0
        resumes_left = self._max_resumes  # consecutive resumes without a byte read in between
        while True:
            try:
                data = self._body.read(len(b))
                if not data and self._size is not None and self._pos < self._size:
                    raise ConnectionError(f"stream ended at byte {self._pos} of {self._size}")
                break
            except Exception as exc:
                if resumes_left <= 0:
                    raise _s3_error(exc, self.bucket, self.key, f"read at byte {self._pos}") from exc
                resumes_left -= 1
                with contextlib.suppress(Exception):
                    self._body.close()
                self._open()
        n = len(data)
        b[:n] = data
        self._pos += n
        return n

    def close(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None
        super().close()

    def __repr__(self) -> str:
        return f"S3ReadStream(s3://{self.bucket}/{self.key})"


class S3Store(Store):
    """``s3://bucket/prefix`` through boto3 (see the module docstring for configuration)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or _endpoint_from_env()
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    @property
    def client(self):
        return s3_client(self.endpoint_url)

    def _key(self, key: str) -> str:
        return join_url(self.prefix, key) if self.prefix else key.strip("/")

    def spec(self) -> dict:
        return {"url": self.url, "endpoint_url": self.endpoint_url}

    def exists(self, key: str) -> bool:
        k = self._key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=k)
            return True
        except Exception as exc:
            if _is_not_found(exc):
                return False
            raise _s3_error(exc, self.bucket, k, "HEAD") from exc

    def size(self, key: str) -> int:
        k = self._key(key)
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=k)["ContentLength"])
        except Exception as exc:
            raise _s3_error(exc, self.bucket, k, "HEAD") from exc

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:  # resumes after a dropped connection, like every read
            return f.read()

    def open_read(self, key: str) -> BinaryIO:
        raw = S3ReadStream(self.client, self.bucket, self._key(key))
        return io.BufferedReader(raw, buffer_size=1 << 20)

    def _commit(self, upload, key: str) -> None:
        k = self._key(key)
        tmp = f"{k}{_TMP_MARK}{uuid.uuid4().hex[:12]}"
        client = self.client
        try:
            upload(client, tmp)
        except Exception as exc:
            raise _s3_error(exc, self.bucket, tmp, "upload of temporary object") from exc
        try:
            client.copy({"Bucket": self.bucket, "Key": tmp}, self.bucket, k)
        except Exception as exc:
            raise _s3_error(exc, self.bucket, k, f"commit (copy from {tmp})") from exc
        finally:
            with contextlib.suppress(Exception):
                client.delete_object(Bucket=self.bucket, Key=tmp)

    def write_bytes(self, key: str, data: bytes) -> None:
        self._commit(lambda c, tmp: c.put_object(Bucket=self.bucket, Key=tmp, Body=data), key)

    def put_file(self, local_path: str | os.PathLike, key: str) -> None:
        self._commit(lambda c, tmp: c.upload_file(str(local_path), self.bucket, tmp), key)

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix)
        out = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", []):
                    k = obj["Key"]
                    if _TMP_MARK in k.rsplit("/", 1)[-1]:
                        continue
                    if self.prefix and not k.startswith(self.prefix + "/"):
                        continue  # "pre/x" but not "prefix2/x"
                    rel = k[len(self.prefix) :].lstrip("/") if self.prefix else k
                    p = prefix.strip("/")
                    if p and rel != p and not rel.startswith(p + "/"):
                        continue  # prefixes are folders: "test" lists test/..., not test_multi/...
                    out.append(rel)
        except Exception as exc:
            raise _s3_error(exc, self.bucket, full, "LIST") from exc
        return sorted(out)

    def delete(self, key: str) -> None:
        k = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=k)
        except Exception as exc:
            raise _s3_error(exc, self.bucket, k, "DELETE") from exc


def open_store(url: str | dict) -> Store:
    """The :class:`Store` for a local path, ``file://`` URL or ``s3://bucket/prefix`` (or a ``spec()``)."""
    endpoint = None
    if isinstance(url, dict):
        endpoint = url.get("endpoint_url")
        url = url["url"]
    scheme, bucket, rest = split_url(url)
    if scheme == "s3":
        return S3Store(bucket, rest, endpoint_url=endpoint)
    return LocalStore(rest, url=url)


@dataclass
class _Target:
    store: Store
    key: str


def _target(url: str) -> _Target:
    scheme, bucket, rest = split_url(url)
    if scheme == "s3":
        return _Target(S3Store(bucket, ""), rest)
    p = Path(rest)
    return _Target(LocalStore(p.parent, url=str(p.parent)), p.name)


def open_url(url: str) -> BinaryIO:
    """A streaming binary reader for one object URL (local path, file:// or s3://bucket/key)."""
    t = _target(url)
    return t.store.open_read(t.key)


def read_url_bytes(url: str) -> bytes:
    t = _target(url)
    return t.store.read_bytes(t.key)


def _gopen_s3(url: str, mode: str = "rb", bufsize: int = 8192, **kw) -> BinaryIO:
    if mode != "rb":
        raise StorageError(f"{url}: the s3:// opener for webdataset only reads (mode 'rb'), got {mode!r}")
    return open_url(url)


def register_webdataset_opener() -> None:
    """Register the streaming ``s3://`` opener in ``webdataset.gopen.gopen_schemes`` (idempotent)."""
    import importlib

    # `webdataset.gopen` the attribute is the function; the module is in sys.modules
    wgopen = importlib.import_module("webdataset.gopen")
    wgopen.gopen_schemes["s3"] = _gopen_s3


def iter_chunks(f: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while True:
        b = f.read(size)
        if not b:
            return
        yield b


def local_tempdir(prefix: str = "vtrlab-") -> str:
    return tempfile.mkdtemp(prefix=prefix)
