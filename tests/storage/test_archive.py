"""Result archives: deterministic to build, suspicious to read, digested like the output."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from decloud.protocol.digest import result_digest
from decloud.storage.archive import (
    ArchiveError,
    ArchiveHasher,
    HashingReader,
    archive_digest,
    build_archive,
    extract_archive,
    identify,
)


def make_output(root: Path, *, reverse: bool = False) -> Path:
    """A small output tree, created in either order."""
    files = {
        "result.txt": b"42\n",
        "b/data.bin": bytes(range(256)) * 10,
        "a-b": b"dash sorts before slash\n",
        "a/inner.txt": b"inner\n",
        "empty/": b"",
        "run.sh": b"#!/bin/sh\necho hi\n",
    }
    for name in sorted(files, reverse=reverse):
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
    (root / "run.sh").chmod(0o775)
    return root


def test_the_same_tree_always_gives_the_same_archive(tmp_path: Path) -> None:
    first = make_output(tmp_path / "first")
    second = make_output(tmp_path / "second", reverse=True)
    os.utime(second / "result.txt", (1, 1))
    (second / "result.txt").chmod(0o664)
    one = build_archive(first, tmp_path / "one.tar")
    two = build_archive(second, tmp_path / "two.tar")
    assert one == two
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    assert identify(tmp_path / "one.tar") == one


def test_entries_are_sorted_bytewise_and_carry_no_time_or_owner(tmp_path: Path) -> None:
    build_archive(make_output(tmp_path / "out"), tmp_path / "out.tar")
    with tarfile.open(tmp_path / "out.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "a", "a-b", "a/inner.txt", "b", "b/data.bin", "empty", "result.txt", "run.sh",
    ]  # fmt: skip
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    modes = {m.name: m.mode for m in members}
    assert (modes["a"], modes["result.txt"], modes["run.sh"]) == (0o755, 0o644, 0o755)


@pytest.mark.parametrize(
    "make_special",
    [
        lambda path: path.symlink_to("result.txt"),
        lambda path: os.mkfifo(path),
    ],
    ids=["symlink", "fifo"],
)
def test_links_and_special_files_are_not_archived(
    tmp_path: Path, make_special: Callable[[Path], None]
) -> None:
    output = make_output(tmp_path / "out")
    make_special(output / "special")
    with pytest.raises(ArchiveError, match="special: only regular files and directories"):
        build_archive(output, tmp_path / "out.tar")


@pytest.mark.parametrize(
    "computed",
    [
        None,
        '{"deterministic-output-path": "/iexec_out/result.txt"}',
        '{"deterministic-output-path": "b"}',
        '{"callback-data": "0x2a"}',
    ],
)
def test_an_archive_has_the_result_digest_of_its_output(
    tmp_path: Path, computed: str | None
) -> None:
    output = make_output(tmp_path / "out")
    if computed is not None:
        (output / "computed.json").write_text(computed)
    build_archive(output, tmp_path / "out.tar")
    assert archive_digest(tmp_path / "out.tar", tmp_path) == result_digest(output)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("extract-")] == []


def test_a_streamed_download_is_extracted_and_hashed_in_one_pass(tmp_path: Path) -> None:
    archive = build_archive(make_output(tmp_path / "out"), tmp_path / "out.tar")
    data = (tmp_path / "out.tar").read_bytes()
    hasher = ArchiveHasher()
    reader = HashingReader(iter([data[:1000], b"", data[1000:7777], data[7777:]]), hasher)
    (tmp_path / "tree").mkdir()
    extract_archive(reader, tmp_path / "tree")
    reader.drain()
    assert hasher.result() == archive
    assert result_digest(tmp_path / "tree") == result_digest(tmp_path / "out")


def crafted(*members: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    """A tar holding exactly these members, as anyone could send it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info, data = member if isinstance(member, tuple) else (member, b"")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (crafted(entry("link", tarfile.SYMTYPE, "/etc/passwd")), "only regular files"),
        (crafted((entry("a"), b"x"), entry("b", tarfile.LNKTYPE, "a")), "only regular files"),
        (crafted(entry("null", tarfile.CHRTYPE)), "only regular files"),
        (crafted(entry("pipe", tarfile.FIFOTYPE)), "only regular files"),
        (crafted((entry("/etc/evil"), b"x")), "absolute"),
        (crafted((entry("../evil"), b"x")), "outside the destination"),
        (crafted((entry("a"), b"x"), (entry("./a"), b"y")), "appears twice"),
        (crafted((entry("a"), b"x"), (entry("a/b"), b"y")), "below a file"),
        (io.BytesIO(b"this is not a tar archive" * 40), "not a valid result archive"),
    ],
    ids=[
        "symlink",
        "hard link",
        "device",
        "fifo",
        "absolute",
        "dot-dot",
        "twice",
        "below a file",
        "garbage",
    ],
)
def test_an_archive_that_is_not_a_plain_tree_is_refused(
    tmp_path: Path, archive: io.BytesIO, message: str
) -> None:
    with pytest.raises(ArchiveError, match=message):
        extract_archive(archive, tmp_path)
    assert not (tmp_path.parent / "evil").exists()


def test_a_digest_error_names_paths_inside_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar"
    archive.write_bytes(crafted((entry("computed.json"), b"{not json")).getvalue())
    with pytest.raises(ArchiveError, match=r"^computed.json: not valid JSON"):
        archive_digest(archive, tmp_path)
