"""Downloads into a content-addressed cache, and what a request's params ask for.

Apps and datasets are named on-chain by a multiaddr and a sha256 checksum. The worker
fetches `file://` and `http(s)://` multiaddrs into `CACHE/sha256/<hex>`: a file is hashed
while it streams into `CACHE/partial/`, and only a file whose hash is the registered checksum
enters the cache, under that hash. A cached file is hashed again before each use (the
runtime hashes a module once more right before running it), so a corrupted cache costs a
download, never a wrong run. Input files of the request carry no checksum: they are cached
under the hash they turn out to have.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from decloud.runtime.checksum import file_checksum
from decloud.runtime.spec import Failure, FailureCause
from decloud.scheduler.state import WorkerCause
from decloud.worker.state import Cause

READ_SIZE = 1 << 20


class FetchError(Exception):
    """A download that gave nothing usable, with the cause to report."""

    def __init__(self, cause: Cause, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message


class Fetcher:
    """Fetches artifacts into `cache_dir`; safe to share between threads."""

    def __init__(
        self, cache_dir: Path, *, max_bytes: int, timeout_s: float = 60.0, user_agent: str = ""
    ) -> None:
        self._store = cache_dir / "sha256"
        self._partial = cache_dir / "partial"
        for directory in (self._store, self._partial):
            directory.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._http = httpx.Client(
            timeout=timeout_s,
            follow_redirects=True,
            headers={"User-Agent": user_agent or "decloud-worker"},
        )

    def close(self) -> None:
        self._http.close()

    def fetch(self, url: str, checksum: bytes | None, what: str) -> Path:
        """The cached file of `url`; with `checksum`, only a file that has it."""
        if checksum is not None:
            cached = self._store / checksum.hex()
            if cached.is_file() and file_checksum(cached) == checksum:
                return cached
        with self._download(url, what) as (partial, actual):
            if checksum is not None and actual != checksum:
                raise FetchError(
                    FailureCause.CHECKSUM_MISMATCH,
                    Failure(
                        FailureCause.CHECKSUM_MISMATCH,
                        f"the {what} downloaded from {url} has sha256 0x{actual.hex()}, but its "
                        f"registered checksum is 0x{checksum.hex()}",
                    ).message,
                )
            target = self._store / actual.hex()
            partial.chmod(0o644)  # an OCI app runs as another user and must read its inputs
            os.replace(partial, target)
            return target

    @contextmanager
    def _download(self, url: str, what: str) -> Iterator[tuple[Path, bytes]]:
        """A partial file holding `url`'s bytes and their sha256; removed unless moved."""
        descriptor, name = tempfile.mkstemp(dir=self._partial)
        partial = Path(name)
        try:
            with os.fdopen(descriptor, "wb") as sink:
                digest = self._copy(url, sink, what)
            yield partial, digest
        finally:
            partial.unlink(missing_ok=True)

    def _copy(self, url: str, sink: BinaryIO, what: str) -> bytes:
        parsed = urllib.parse.urlparse(url)
        try:
            if parsed.scheme == "file":
                with Path(urllib.parse.unquote(parsed.path)).open("rb") as source:
                    return self._stream(iter(lambda: source.read(READ_SIZE), b""), sink, url)
            if parsed.scheme in ("http", "https"):
                with self._http.stream("GET", url) as answer:
                    answer.raise_for_status()
                    return self._stream(answer.iter_bytes(READ_SIZE), sink, url)
        except (OSError, httpx.HTTPError) as error:
            raise FetchError(
                WorkerCause.DOWNLOAD_FAILED, f"the {what} at {url} cannot be downloaded: {error}"
            ) from error
        raise FetchError(
            WorkerCause.DOWNLOAD_FAILED,
            f"the {what} is at {url!r}: this worker fetches file:// and http(s):// URLs only",
        )

    def _stream(self, pieces: Iterator[bytes], sink: BinaryIO, url: str) -> bytes:
        hasher, size = hashlib.sha256(), 0
        for piece in pieces:
            size += len(piece)
            if size > self._max_bytes:
                raise FetchError(
                    WorkerCause.DOWNLOAD_FAILED,
                    f"{url} is larger than this worker's limit of {self._max_bytes} bytes",
                )
            hasher.update(piece)
            sink.write(piece)
        return hasher.digest()


def is_url(multiaddr: str) -> bool:
    """Whether a multiaddr is something to download (else an OCI image reference)."""
    return urllib.parse.urlparse(multiaddr).scheme in ("file", "http", "https")


@dataclass(frozen=True)
class TaskParams:
    """What a request's params ask of the app: its args and its input files (URLs)."""

    args: tuple[str, ...] = ()
    input_files: tuple[str, ...] = ()


def parse_params(params: str) -> TaskParams:
    """Params in iExec's JSON form (`iexec_args`, `iexec_input_files`); anything that is not
    a JSON object is taken as the args themselves. Args split like a shell's words, or at
    white space when their quotes do not balance."""
    try:
        document = json.loads(params) if params.strip() else {}
    except ValueError:
        document = {"iexec_args": params}
    if not isinstance(document, dict):
        document = {"iexec_args": params}
    text = str(document.get("iexec_args") or "")
    try:
        args = tuple(shlex.split(text))
    except ValueError:
        args = tuple(text.split())
    files = document.get("iexec_input_files") or []
    return TaskParams(args, tuple(str(url) for url in files) if isinstance(files, list) else ())


def input_file_name(url: str) -> str:
    """The name an input file gets in the app's input directory: the last part of its
    URL's path."""
    name = urllib.parse.unquote(urllib.parse.urlparse(url).path).rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\\" in name or "\0" in name:
        raise FetchError(
            WorkerCause.DOWNLOAD_FAILED, f"the input file {url} has no usable file name"
        )
    return name
