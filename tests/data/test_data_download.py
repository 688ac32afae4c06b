"""The download helper, on local URLs only (file:// and a server on 127.0.0.1)."""

import functools
import hashlib
import http.server
import threading

import pytest

from predrnn.data import MOVING_MNIST_TEST_URL, default_cache_dir, download
from predrnn.errors import DataError


@pytest.fixture
def server(tmp_path):
    """A static HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_file_url_download_and_cache(tmp_path):
    source = tmp_path / "data.bin"
    source.write_bytes(b"moving mnist")
    digest = hashlib.sha256(b"moving mnist").hexdigest()
    cache = tmp_path / "cache"
    path = download(source.as_uri(), cache, sha256=digest)
    assert path == cache / "data.bin" and path.read_bytes() == b"moving mnist"
    source.unlink()  # the cached copy is reused: no second fetch
    assert download(source.as_uri(), cache, sha256=digest) == path
    assert sorted(p.name for p in cache.iterdir()) == ["data.bin"]


def test_http_download_from_a_local_server(server, tmp_path):
    root, url = server
    (root / "mnist_test_seq.npy").write_bytes(b"\x93NUMPY" + bytes(100))
    path = download(f"{url}/mnist_test_seq.npy", tmp_path / "cache", timeout=5)
    assert path.read_bytes() == b"\x93NUMPY" + bytes(100)


def test_checksum_mismatch_writes_nothing(tmp_path):
    source = tmp_path / "data.bin"
    source.write_bytes(b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="wrong SHA-256: expected 00+. Received: [0-9a-f]{64}"):
        download(source.as_uri(), cache, sha256="0" * 64, retries=1)
    assert list(cache.iterdir()) == []


def test_unreachable_url_says_how_to_get_the_file_by_hand(tmp_path):
    with pytest.raises(DataError, match="Could not reach .*; download it by hand to .*absent.npy' and pass --data FILE"):
        download((tmp_path / "absent.npy").as_uri(), tmp_path / "cache", retries=2, backoff=0)
    assert list((tmp_path / "cache").iterdir()) == []


def test_http_404_is_not_retried(server, tmp_path):
    _, url = server
    with pytest.raises(DataError, match="Could not reach .*missing.npy \\(HTTP 404 "):
        download(f"{url}/missing.npy", tmp_path / "cache", retries=3, backoff=10)  # no 10 s sleep


def test_cache_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PREDRNN_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PREDRNN_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "predrnn")


def test_known_moving_mnist_url():
    assert MOVING_MNIST_TEST_URL == "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"
