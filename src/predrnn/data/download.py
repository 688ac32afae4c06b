"""Optional download helper with a cache, checksums, retries and atomic writes.

Nothing in ``predrnn`` downloads at import or in tests; call :func:`download` explicitly (or
pass a local file with ``--data FILE``). The cache folder is ``$PREDRNN_CACHE`` if set, else
``~/.cache/predrnn``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from predrnn.errors import DataError

__all__ = [
    "KTH_INSTRUCTIONS",
    "KTH_URL",
    "MOVING_MNIST_TEST_URL",
    "MOVING_MNIST_TEST_SHA256",
    "default_cache_dir",
    "download",
    "download_moving_mnist_test_set",
    "sha256_of",
]

MOVING_MNIST_TEST_URL = "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"
"""The standard Moving MNIST test set (Srivastava et al., 2015): uint8 (20, 10000, 64, 64)."""

MOVING_MNIST_TEST_SHA256 = None
"""Not recorded: the file is verified by shape when loaded, not by checksum."""


KTH_URL = "https://www.csc.kth.se/cvap/actions/"
"""The KTH human actions dataset (Schuldt, Laptev and Caputo, ICPR 2004): 25 persons, 6 actions,
4 scenarios, 160x120 grey videos at 25 fps, one zip of .avi files per action."""

KTH_INSTRUCTIONS = f"""\
KTH is not downloaded by predrnn (600 videos, about 1 GB): fetch it yourself, then train with the kth preset.

1. Download the six action zips (walking, jogging, running, boxing, handwaving, handclapping) from
   {KTH_URL} and unzip them into kth_videos/ (files like person01_boxing_d1_uncomp.avi).
2. Turn every video into a folder of frames, one folder per video (ffmpeg):
     for f in kth_videos/*.avi; do n=$(basename "$f" .avi); mkdir -p data/kth_action/"$n";
       ffmpeg -loglevel error -i "$f" data/kth_action/"$n"/image_%04d.png; done
   (A layout of data/kth_action/<action>/<video>/ frames, as in the official PredRNN archive, works too.)
3. Check what will be read:  predrnn data info data/kth_action --channels grey --resize 128
4. Train (persons 1-16 train, 17-25 validate):  predrnn train kth --workdir runs/kth
   (--set data.path=... if the frames are elsewhere.)
"""
"""How to fetch KTH and lay it out for the ``kth`` preset (``predrnn data kth`` prints it)."""


def default_cache_dir() -> Path:
    """``$PREDRNN_CACHE`` if set, else ``~/.cache/predrnn``."""
    configured = os.environ.get("PREDRNN_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "predrnn"


def sha256_of(path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_name(url: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise DataError(f"Cannot derive a file name from the URL; pass filename=. Received: url={url!r}")
    return name


def download(
    url: str,
    cache_dir=None,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 30,
    *,
    filename: str | None = None,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` into the cache folder once and return the local path.

    A cached file is reused (after checking ``sha256`` when given). A new download goes to a
    temporary file in the cache folder, is checked, and is renamed into place (``os.replace``),
    so the cache never holds a partial file under the final name.

    Args:
        url: ``http(s)://`` or ``file://`` URL.
        cache_dir: folder for the file; default :func:`default_cache_dir`.
        sha256: expected hex SHA-256, or ``None`` to skip the check.
        retries: attempts for network errors (not for HTTP 4xx answers).
        timeout: seconds per attempt (connection and each read).
        filename: local name; default the last part of the URL path.
        backoff: seconds before the second attempt, doubled after each failure.

    Raises:
        DataError: the URL cannot be reached after ``retries`` attempts (the message says where
            to put the file by hand), or the checksum does not match.
    """
    retries = int(retries)
    if retries < 1:
        raise DataError(f"retries must be >= 1. Received: retries={retries}")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = folder / (filename or _file_name(url))
    expected = sha256.lower() if sha256 else None
    if target.is_file() and (expected is None or sha256_of(target) == expected):
        return target
    folder.mkdir(parents=True, exist_ok=True)

    last_error = None
    for attempt in range(retries):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(descriptor, "wb") as out:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    shutil.copyfileobj(response, out, length=1 << 20)
            if expected is not None:
                actual = sha256_of(temporary)
                if actual != expected:
                    raise DataError(
                        f"The download of {url} has the wrong SHA-256: expected {expected}. "
                        f"Received: {actual}. The server's file changed or the transfer was "
                        f"corrupted; nothing was written to {str(target)!r}."
                    )
            os.chmod(temporary, 0o644)  # mkstemp creates 0600
            os.replace(temporary, target)
            return target
        except urllib.error.HTTPError as error:
            error.close()  # it holds the response's socket
            last_error = error
            if 400 <= error.code < 500:
                break  # the server answered: retrying will not help
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            last_error = error
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    if isinstance(last_error, urllib.error.HTTPError):
        reason = f"HTTP {last_error.code} {last_error.reason}"
    else:
        reason = getattr(last_error, "reason", last_error)
    raise DataError(
        f"Could not reach {url} ({reason}); download it by hand to {str(target)!r} and pass "
        f"--data FILE (or pass the file's path to the loader)."
    )


def download_moving_mnist_test_set(cache_dir=None, **kwargs) -> Path:
    """Download the standard ``mnist_test_seq.npy`` (about 200 MB) into the cache."""
    return download(MOVING_MNIST_TEST_URL, cache_dir, MOVING_MNIST_TEST_SHA256, **kwargs)
