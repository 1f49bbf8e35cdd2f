"""Where archives live: a small interface, and the filesystem backend used by default.

The store hands a backend complete archives, already checked, under their CID; a backend
only keeps bytes. Archives arrive in a staging directory the backend provides, so that it
can take them without copying (a rename on the same filesystem) and never shows a partial
archive under a CID.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Protocol


class ArchiveNotFound(LookupError):
    """No archive is stored under this CID."""


class ArchiveBackend(Protocol):
    """Content-addressed storage of archives."""

    @property
    def staging_dir(self) -> Path:
        """A local directory for archives being received; `store` takes files from it."""
        ...

    def store(self, staged: Path, cid: str) -> bool:
        """Keep the staged file as the archive `cid`, and remove it from staging; False if
        the archive was stored already (content addressing makes the copies identical)."""
        ...

    def open(self, cid: str) -> BinaryIO:
        """The archive `cid`, open for reading; raises ArchiveNotFound."""
        ...


class FilesystemBackend:
    """Archives as files `<root>/objects/<shard>/<cid>`, staged in `<root>/staging`.

    The shard is the next-to-last two characters of the CID (as IPFS's flatfs datastore
    does), which spreads archives evenly over at most 58 x 58 directories.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._objects = root / "objects"
        self._staging = root / "staging"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)

    @property
    def staging_dir(self) -> Path:
        return self._staging

    def _path(self, cid: str) -> Path:
        return self._objects / cid[-3:-1] / cid

    def store(self, staged: Path, cid: str) -> bool:
        """Durable before visible: the file is flushed to disk, then linked under its CID
        (a link fails if the name exists, so concurrent stores cannot clobber each other),
        then its directory is flushed."""
        target = self._path(cid)
        target.parent.mkdir(exist_ok=True)
        with staged.open("rb") as file:
            os.fsync(file.fileno())
        try:
            os.link(staged, target)
        except FileExistsError:
            return False
        finally:
            staged.unlink()
        _fsync_directory(target.parent)
        return True

    def open(self, cid: str) -> BinaryIO:
        try:
            return self._path(cid).open("rb")
        except FileNotFoundError as error:
            raise ArchiveNotFound(f"no archive {cid} in {self._objects}") from error


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
