"""Result archives: a task's output directory as one deterministic tar, and back.

Workers that agree on a result should produce the same archive, hence the same CID, so the
archive depends on nothing but the tree: entries sorted bytewise by path, every mtime 0,
owner root (uid and gid 0, no names), modes 0755 for directories and executable files and
0644 for the rest, POSIX pax format, no compression.

Reading goes the other way with suspicion, since an archive comes from the network: only
regular files and directories are extracted, never a link, a device, a sparse member (which
could expand far beyond the archive's size) or a path leaving the destination, and no name
twice. The canonical result digest of an archive is `decloud.protocol.digest` applied to the
tree it extracts to, so the store, the worker and the requester run the very same rules.

Everything streams: archives are written and read in READ_SIZE pieces, hashed on the way.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol, cast

from decloud.protocol.digest import ResultDigestError, result_digest
from decloud.storage.cid import READ_SIZE, UnixfsFileHasher

ARCHIVE_MEDIA_TYPE = "application/x-tar"


class ArchiveError(ValueError):
    """An output that cannot be archived, or an archive that is not a plain tree of regular
    files and directories."""


@dataclass(frozen=True)
class ArchiveId:
    """What names and checks an archive: its CID, its sha256 and its length in bytes."""

    cid: str
    sha256: bytes
    size: int


class Hasher(Protocol):
    """Anything that digests bytes as they stream by."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...


class ArchiveHasher:
    """CID, sha256 and size of an archive whose bytes are fed as they stream by.

    The store serves the sha256 for standard tools (`sha256sum`); clients, which check the
    CID anyway, use a bare `UnixfsFileHasher`: hashing is most of the cost of moving a
    large archive.
    """

    def __init__(self) -> None:
        self._cid = UnixfsFileHasher()
        self._sha256 = hashlib.sha256()
        self._size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._cid.update(data)
        self._sha256.update(data)
        self._size += len(data)

    def result(self) -> ArchiveId:
        return ArchiveId(self._cid.cid(), self._sha256.digest(), self._size)


class HashingWriter:
    """A write-only file that hashes what goes through it on its way to `file`."""

    def __init__(self, file: BinaryIO, hasher: Hasher) -> None:
        self._file = file
        self._hasher = hasher
        self._offset = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hasher.update(data)
        self._file.write(data)
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        """Bytes written so far (tarfile asks where it stands)."""
        return self._offset


class HashingReader:
    """A read-only file over byte pieces (an HTTP body) that hashes what is read."""

    def __init__(self, pieces: Iterator[bytes], hasher: Hasher) -> None:
        self._pieces = pieces
        self._hasher = hasher
        self._pending = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (fewer at the end of a piece); b"" once the body is over."""
        if not self._pending:
            piece = next((piece for piece in self._pieces if piece), b"")
            self._hasher.update(piece)
            self._pending = memoryview(piece)
        cut = len(self._pending) if size < 0 else size
        data, self._pending = self._pending[:cut], self._pending[cut:]
        return bytes(data)

    def drain(self) -> None:
        """Read (and hash) whatever is left: tar readers stop at the end-of-archive marker,
        but the CID covers every byte."""
        while self.read(READ_SIZE):
            pass


def write_archive(output_dir: Path, sink: HashingWriter) -> None:
    """Write the deterministic tar of `output_dir` to `sink`."""
    # tarfile only writes to and asks the position of a file it writes ("w" mode).
    with tarfile.open(fileobj=cast(BinaryIO, sink), mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative, is_directory in _tree(output_dir):
            if is_directory:
                tar.addfile(_entry(relative, tarfile.DIRTYPE, 0o755))
                continue
            with _open_regular(output_dir / relative) as file:
                status = os.fstat(file.fileno())
                executable = bool(status.st_mode & stat.S_IXUSR)
                entry = _entry(relative, tarfile.REGTYPE, 0o755 if executable else 0o644)
                entry.size = status.st_size
                tar.addfile(entry, file)


def build_archive(output_dir: Path, archive: Path) -> ArchiveId:
    """Write the archive of `output_dir` to the file `archive`; its CID, sha256 and size."""
    hasher = ArchiveHasher()
    with archive.open("wb") as file:
        write_archive(output_dir, HashingWriter(file, hasher))
    return hasher.result()


def identify(archive: Path) -> ArchiveId:
    """CID, sha256 and size of an archive file."""
    hasher = ArchiveHasher()
    with archive.open("rb") as file:
        while block := file.read(READ_SIZE):
            hasher.update(block)
    return hasher.result()


def extract_archive(source: BinaryIO | HashingReader, dest: Path) -> None:
    """Extract a result archive, read as a stream, into the existing directory `dest`."""
    try:
        # A stream ("r|") is only read from.
        with tarfile.open(fileobj=cast(BinaryIO, source), mode="r|") as tar:
            tar.extractall(dest, filter=_MemberCheck())
    except tarfile.TarError as error:
        raise ArchiveError(f"not a valid result archive: {error}") from error


def archive_digest(archive: Path, workspace: Path) -> bytes:
    """The canonical result digest of the tree `archive` holds.

    The archive is extracted into a scratch directory under `workspace`, removed afterwards.
    """
    with tempfile.TemporaryDirectory(dir=workspace, prefix="extract-") as scratch:
        with archive.open("rb") as source:
            extract_archive(source, Path(scratch))
        return tree_digest(Path(scratch))


def tree_digest(tree: Path) -> bytes:
    """`result_digest` of an extracted tree, with errors that name paths inside the archive
    rather than where it was extracted."""
    try:
        return result_digest(tree)
    except ResultDigestError as error:
        raise ArchiveError(str(error).replace(f"{tree}/", "")) from error


class _MemberCheck:
    """The extraction filter: tarfile's `data` filter (no way out of the destination), plus
    decloud's rules: regular files and directories only, relative paths (the data filter
    would strip a leading slash), each name once, nothing below a file."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._files: set[str] = set()

    def __call__(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        if not (member.isreg() or member.isdir()) or member.issparse():
            raise ArchiveError(
                f"{member.name!r}: a result archive holds only regular files and directories"
            )
        if member.name.startswith("/"):
            raise ArchiveError(f"{member.name!r}: absolute paths are refused")
        name = os.path.normpath(member.name)
        if name in self._names:
            raise ArchiveError(f"{member.name!r}: appears twice in the archive")
        if any(str(parent) in self._files for parent in PurePosixPath(name).parents):
            raise ArchiveError(f"{member.name!r}: lies below a file of the archive")
        self._names.add(name)
        if member.isreg():
            self._files.add(name)
        return tarfile.data_filter(member, dest)


def _tree(root: Path) -> list[tuple[str, bool]]:
    """Every file and directory below `root` as (relative path, is a directory), sorted
    bytewise; links and special files are refused."""
    entries: list[tuple[str, bool]] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        with os.scandir(root / prefix if prefix else root) as listing:
            for item in listing:
                relative = prefix + item.name
                mode = item.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    entries.append((relative, True))
                    pending.append(relative + "/")
                elif stat.S_ISREG(mode):
                    entries.append((relative, False))
                else:
                    raise ArchiveError(
                        f"{relative}: only regular files and directories can be archived"
                    )
    return sorted(entries, key=lambda entry: os.fsencode(entry[0]))


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.mode = mode
    entry.mtime = 0
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    return entry


def _open_regular(path: Path) -> BinaryIO:
    """Open a file that must still be regular: O_NOFOLLOW refuses a link swapped in after
    the listing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise ArchiveError(f"{path}: cannot be archived ({error.strerror})") from error
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArchiveError(f"{path}: only regular files can be archived")
    return os.fdopen(fd, "rb")
