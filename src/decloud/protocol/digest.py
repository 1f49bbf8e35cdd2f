"""The canonical result digest: what workers vote on (DESIGN.md section 3).

Two honest workers must reach the same 32 bytes from the same output, and a requester must be
able to recompute them with standard tools:

- `computed.json` names `callback-data`: keccak256 of those bytes, the value a callback gets;
- it names a `deterministic-output-path` that is a file: sha256 of the file;
- otherwise (that directory, or by default the whole output minus computed.json): sha256 of
  the listing `"<sha256 hex>  <relative path>\\n"` of every regular file, sorted bytewise,
  which is `find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum`.

Anything that would make the digest ambiguous or let an app point outside its output is
refused with a ResultDigestError rather than digested.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from eth_utils.crypto import keccak

COMPUTED_JSON = "computed.json"
CALLBACK_DATA = "callback-data"
DETERMINISTIC_OUTPUT_PATH = "deterministic-output-path"
APP_OUTPUT_DIR = PurePosixPath("/iexec_out")
"""Where an app sees its output directory. Apps written for iExec name their deterministic
output by an absolute path below it, such as /iexec_out/result.txt."""
REFUSED_NAME_CHARACTERS = "\n\r\\"
"""sha256sum escapes names containing these (coreutils >= 9 escapes the carriage return too),
so a listing with them could not be recomputed with the standard command."""

_HEX_BYTES = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


class ResultDigestError(ValueError):
    """An output that has no canonical digest: a link, a special file, an unlistable name,
    a path outside the output, or a malformed computed.json."""


@dataclass(frozen=True)
class Computed:
    """What the app declared in computed.json; None for what it did not declare."""

    callback_data: bytes | None = None
    deterministic_output_path: str | None = None


def callback_digest(data: bytes) -> bytes:
    """keccak256 of the callback data: the hub recomputes it from the data it forwards, so
    consensus covers the value the callback receives."""
    return keccak(data)


def file_digest(path: Path) -> bytes:
    """sha256 of a regular file, read in chunks so that large outputs need little memory."""
    with _open_regular(path) as file:
        return hashlib.file_digest(file, "sha256").digest()


def directory_listing(root: Path, *, exclude: Collection[str] = ()) -> str:
    """The text `sha256sum` prints for every regular file below `root`, sorted bytewise by the
    UTF-8 relative path; `exclude` names relative paths left out."""
    if _kind(root) != "directory":
        raise ResultDigestError(f"{root}: is not a directory")
    files = sorted(
        (rel for rel in _regular_files(root) if rel not in exclude),
        key=lambda rel: rel.encode("utf-8"),
    )
    return "".join(f"{file_digest(root / rel).hex()}  {rel}\n" for rel in files)


def directory_digest(root: Path, *, exclude: Collection[str] = ()) -> bytes:
    """sha256 of the directory listing: the digest of a whole tree of outputs."""
    return hashlib.sha256(directory_listing(root, exclude=exclude).encode("utf-8")).digest()


def read_computed(output_dir: Path) -> Computed:
    """Parse output_dir/computed.json; an output without one declares nothing."""
    path = output_dir / COMPUTED_JSON
    if not os.path.lexists(path):
        return Computed()
    with _open_regular(path) as file:
        raw = file.read()
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise ResultDigestError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise ResultDigestError(f"{path}: expected a JSON object, got {type(document).__name__}")
    return Computed(
        callback_data=_callback_data(path, document),
        deterministic_output_path=_deterministic_output_path(path, document),
    )


def result_digest(output_dir: Path, *, app_output_dir: PurePosixPath = APP_OUTPUT_DIR) -> bytes:
    """The canonical digest of a task's output directory, as defined in the module docstring.

    `app_output_dir` is where the app saw `output_dir`, to resolve an absolute
    deterministic-output-path.
    """
    if _kind(output_dir) != "directory":
        raise ResultDigestError(f"{output_dir}: the output is not a directory")
    computed = read_computed(output_dir)
    if computed.callback_data is not None:
        return callback_digest(computed.callback_data)
    if computed.deterministic_output_path is None:
        return directory_digest(output_dir, exclude={COMPUTED_JSON})
    relative = _inside_output(computed.deterministic_output_path, app_output_dir)
    target = _walk_to(output_dir, relative)
    if _kind(target) == "file":
        return file_digest(target)
    return directory_digest(target, exclude={COMPUTED_JSON} if relative.parts == () else ())


def _callback_data(path: Path, document: dict[str, Any]) -> bytes | None:
    value = document.get(CALLBACK_DATA)
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX_BYTES.fullmatch(value):
        raise ResultDigestError(
            f"{path}: {CALLBACK_DATA} must be 0x-prefixed hex bytes, got {value!r}"
        )
    return bytes.fromhex(value[2:])


def _deterministic_output_path(path: Path, document: dict[str, Any]) -> str | None:
    value = document.get(DETERMINISTIC_OUTPUT_PATH)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ResultDigestError(
            f"{path}: {DETERMINISTIC_OUTPUT_PATH} must be a non-empty string, got {value!r}"
        )
    return value


def _inside_output(declared: str, app_output_dir: PurePosixPath) -> PurePosixPath:
    """The declared path relative to the output directory, refusing any way out of it."""
    path = PurePosixPath(declared)
    if path.is_absolute():
        if not path.is_relative_to(app_output_dir):
            raise ResultDigestError(
                f"{DETERMINISTIC_OUTPUT_PATH} {declared!r} is outside the output {app_output_dir}"
            )
        path = path.relative_to(app_output_dir)
    if ".." in path.parts:
        raise ResultDigestError(f"{DETERMINISTIC_OUTPUT_PATH} {declared!r} must not contain '..'")
    return path


def _walk_to(output_dir: Path, relative: PurePosixPath) -> Path:
    """output_dir/relative, checking that no component on the way is a link."""
    target = output_dir
    for part in relative.parts:
        if _kind(target) != "directory":
            raise ResultDigestError(f"{target}: is not a directory")
        target = target / part
    return target


def _kind(path: Path) -> Literal["file", "directory"]:
    """Whether `path` is a regular file or a directory, without following a link."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError as error:
        raise ResultDigestError(f"{path}: does not exist") from error
    if stat.S_ISLNK(mode):
        raise ResultDigestError(f"{path}: links are refused, they could point outside the output")
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    raise ResultDigestError(f"{path}: special files (FIFO, socket, device) are refused")


def _open_regular(path: Path) -> io.BufferedReader:
    """Open a regular file for reading.

    O_NOFOLLOW and O_NONBLOCK make the open fail on a link and return at once on a FIFO, and
    fstat checks what was opened, so a file swapped after the check can neither redirect the
    digest nor hang the worker.
    """
    if _kind(path) != "file":
        raise ResultDigestError(f"{path}: is not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise ResultDigestError(f"{path}: cannot be opened ({error.strerror})") from error
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ResultDigestError(f"{path}: is not a regular file")
    return os.fdopen(fd, "rb")


def _regular_files(root: Path) -> list[str]:
    """Relative paths of every regular file below `root`, refusing links, special files and
    names that cannot appear verbatim in a sha256sum listing."""
    files: list[str] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        try:
            with os.scandir(root / prefix) as entries:
                names = [entry.name for entry in entries]
        except OSError as error:
            raise ResultDigestError(
                f"{root / prefix}: cannot be listed ({error.strerror})"
            ) from error
        for name in names:
            relative = prefix + name
            _check_listable(relative)
            if _kind(root / relative) == "directory":
                pending.append(relative + "/")
            else:
                files.append(relative)
    return files


def _check_listable(relative: str) -> None:
    if any(character in relative for character in REFUSED_NAME_CHARACTERS):
        raise ResultDigestError(
            f"{relative!r}: names with a newline, carriage return or backslash are refused"
        )
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ResultDigestError(f"{relative!r}: names must be valid UTF-8") from error
