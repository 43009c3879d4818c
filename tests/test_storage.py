"""Object-store URLs: local paths, file:// and s3:// (moto's real S3 endpoint on 127.0.0.1)."""

from __future__ import annotations

import io
import pickle

import pyarrow.fs
import pytest

from vtrlab import storage
from vtrlab.errors import StorageError


def _stores(tmp_path, s3_bucket):
    return [
        storage.open_store(str(tmp_path / "plain")),
        storage.open_store(f"file://{tmp_path}/viafile"),
        storage.open_store(f"{s3_bucket}/some/prefix"),
    ]


def test_split_url():
    assert storage.split_url("s3://b/p/q") == ("s3", "b", "p/q")
    assert storage.split_url("file:///tmp/x") == ("file", "", "/tmp/x")
    assert storage.split_url("rel/dir") == ("file", "", "rel/dir")
    with pytest.raises(StorageError, match="bucket"):
        storage.split_url("s3:///nobucket")
    with pytest.raises(StorageError, match="unsupported URL scheme"):
        storage.split_url("ftp://x/y")


def test_roundtrip_list_delete(tmp_path, s3_bucket):
    for st in _stores(tmp_path, s3_bucket):
        st.write_bytes("a/b.bin", b"hello")
        st.write_text("a/c.json", '{"x": 1}')
        src = tmp_path / "local.bin"
        src.write_bytes(b"x" * 3_000_000)
        st.put_file(src, "big/file.bin")
        assert st.read_bytes("a/b.bin") == b"hello"
        assert st.exists("a/c.json") and not st.exists("a/missing")
        st.write_bytes("ab/x", b"")
        assert st.list("a") == ["a/b.bin", "a/c.json"]  # a prefix is a folder: not ab/x
        st.delete("ab/x")
        assert st.list("") == ["a/b.bin", "a/c.json", "big/file.bin"]  # no temporary keys left behind
        assert st.size("big/file.bin") == 3_000_000
        with st.open_read("big/file.bin") as f:
            assert len(f.read()) == 3_000_000
        with storage.open_url(st.url_for("a/b.bin")) as f:
            assert f.read() == b"hello"
        st.delete("a/b.bin")
        assert not st.exists("a/b.bin")


def test_errors_name_bucket_and_key(tmp_path, s3_endpoint, s3_bucket):
    st = storage.open_store(f"{s3_bucket}/pre")
    bucket = s3_bucket[5:]
    with pytest.raises(StorageError) as ei:
        st.read_bytes("no/such.key")
    assert bucket in str(ei.value) and "pre/no/such.key" in str(ei.value)
    missing = storage.open_store("s3://bucket-that-does-not-exist-xyz/p")
    with pytest.raises(StorageError, match="bucket-that-does-not-exist-xyz") as ei:
        missing.write_bytes("k.txt", b"1")
    assert "k.txt" in str(ei.value)
    with pytest.raises(StorageError, match="no such file"):
        storage.open_store(str(tmp_path)).read_bytes("nope.txt")


def test_atomic_commit_never_shows_partial(tmp_path, s3_bucket, monkeypatch):
    st = storage.open_store(f"{s3_bucket}/atomic")
    st.write_bytes("k", b"old")

    def boom(*a, **k):
        raise ConnectionError("network down")

    client = st.client
    monkeypatch.setattr(client, "copy", boom)
    with pytest.raises(StorageError, match="commit"):
        st.write_bytes("k", b"new")
    monkeypatch.undo()
    assert st.read_bytes("k") == b"old"
    assert st.list("") == ["k"]  # the temporary key was cleaned up
    # local: a failed write leaves the old file and no temp file
    loc = storage.open_store(str(tmp_path / "loc"))
    loc.write_bytes("k", b"old")
    with pytest.raises(StorageError):
        loc.put_file(tmp_path / "does-not-exist", "k")
    assert loc.read_bytes("k") == b"old" and loc.list("") == ["k"]


def test_s3_stream_resumes_after_dropped_connection(s3_bucket):
    st = storage.open_store(s3_bucket)
    payload = bytes(range(256)) * 8192  # 2 MiB
    st.write_bytes("blob", payload)
    raw = storage.S3ReadStream(st.client, st.bucket, "blob")
    first = raw.read(1000)

    class Flaky(io.RawIOBase):
        def read(self, n=-1):
            raise ConnectionResetError("peer reset")

        def close(self):
            pass

    raw._body = Flaky()  # the next read fails; the stream must resume with a ranged GET at byte 1000
    rest = b"".join(iter(lambda: raw.read(65536), b""))
    assert first + rest == payload


def test_object_overwritten_mid_read_is_detected(s3_bucket):
    st = storage.open_store(s3_bucket)
    st.write_bytes("shard.tar", b"a" * 2_000_000)
    raw = storage.S3ReadStream(st.client, st.bucket, "shard.tar")
    assert raw.read(1000) == b"a" * 1000
    st.write_bytes("shard.tar", b"b" * 2_000_000)  # a rebuild replaces the shard while it is streamed

    class Dropped(io.RawIOBase):
        def read(self, n=-1):
            raise ConnectionResetError("peer reset")

    raw._body = Dropped()  # the resume (ranged GET, If-Match the first ETag) must notice, not splice
    with pytest.raises(StorageError, match="changed while it was read") as ei:
        raw.read(65536)
    assert st.bucket in str(ei.value) and "shard.tar" in str(ei.value)


def test_retry_settings(monkeypatch):
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    assert storage.retry_settings() == ("standard", 5)
    env = storage.apply_retry_env({"AWS_MAX_ATTEMPTS": "9"})
    assert env == {"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "9"}
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "9")
    assert storage.s3_client().meta.config.retries == {"mode": "standard", "total_max_attempts": 9}
    fs, path = storage.pyarrow_filesystem("s3://bucket/some/prefix")
    assert path == "bucket/some/prefix" and isinstance(fs, pyarrow.fs.S3FileSystem)
    shipped = pickle.loads(pickle.dumps(fs))  # as Ray ships a RunConfig's filesystem to its workers
    assert isinstance(shipped, pyarrow.fs.S3FileSystem) and shipped.__reduce__()[1][1:] == ("standard", 9)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(StorageError, match="AWS_MAX_ATTEMPTS"):
        storage.retry_settings()


def test_webdataset_opener_streams_s3(s3_bucket):
    import importlib

    st = storage.open_store(f"{s3_bucket}/wds")
    st.write_bytes("x.bin", b"abc" * 1000)
    storage.register_webdataset_opener()
    wgopen = importlib.import_module("webdataset.gopen")
    with wgopen.gopen(st.url_for("x.bin"), "rb") as f:
        assert f.read() == b"abc" * 1000


def test_a_local_write_under_a_file_is_one_storage_error(tmp_path):
    """A key whose parent is a file: a StorageError naming the path, not a raw OSError from the clean-up."""
    from vtrlab.errors import StorageError

    (tmp_path / "blocker").write_text("a file")
    store = storage.open_store(str(tmp_path))
    with pytest.raises(StorageError, match=r"blocker/inner/key\.json: cannot write"):
        store.write_text("blocker/inner/key.json", "{}")
