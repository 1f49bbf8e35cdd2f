"""The canonical result digest: what it covers and what it refuses (DESIGN.md section 3)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from eth_utils.crypto import keccak

from decloud.protocol import (
    ResultDigestError,
    directory_digest,
    file_digest,
    read_computed,
    result_digest,
)


def make_output(root: Path, files: dict[str, bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def declare(output: Path, computed: object) -> None:
    (output / "computed.json").write_text(json.dumps(computed))


@pytest.fixture
def output(tmp_path: Path) -> Path:
    return make_output(
        tmp_path / "out",
        {"result.txt": b"42\n", "sub/a.txt": b"a\n", "sub/deep/b.txt": b"b\n"},
    )


# --- what the digest covers -------------------------------------------------------------------


def test_computed_json_is_left_out_of_the_whole_output_digest(output: Path) -> None:
    without = result_digest(output)
    declare(output, {"error-message": "ignored by the digest"})
    assert result_digest(output) == without


def test_every_other_file_changes_the_whole_output_digest(output: Path) -> None:
    before = result_digest(output)
    (output / "sub" / "deep" / "b.txt").write_bytes(b"c\n")
    assert result_digest(output) != before


def test_empty_directories_do_not_count(output: Path) -> None:
    before = result_digest(output)
    (output / "empty-dir").mkdir()
    assert result_digest(output) == before


def test_deterministic_file_is_its_sha256(output: Path) -> None:
    declare(output, {"deterministic-output-path": "result.txt"})
    (output / "timing.log").write_text("differs between workers")
    assert result_digest(output) == hashlib.sha256(b"42\n").digest()


def test_deterministic_subdirectory_is_listed_relative_to_itself(output: Path) -> None:
    declare(output, {"deterministic-output-path": "sub"})
    (output / "timing.log").write_text("differs between workers")
    expected = make_output(output.parent / "alone", {"a.txt": b"a\n", "deep/b.txt": b"b\n"})
    assert result_digest(output) == directory_digest(expected)


@pytest.mark.parametrize("declared", ["/iexec_out/sub", "./sub/", "sub/./"])
def test_deterministic_path_spellings_name_the_same_directory(output: Path, declared: str) -> None:
    declare(output, {"deterministic-output-path": "sub"})
    expected = result_digest(output)
    declare(output, {"deterministic-output-path": declared})
    assert result_digest(output) == expected


def test_absolute_path_is_read_below_the_apps_output_mount(output: Path) -> None:
    declare(output, {"deterministic-output-path": "/out/result.txt"})
    digest = result_digest(output, app_output_dir=PurePosixPath("/out"))
    assert digest == file_digest(output / "result.txt")


def test_deterministic_output_root_still_leaves_out_computed_json(output: Path) -> None:
    expected = result_digest(output)
    declare(output, {"deterministic-output-path": "/iexec_out"})
    assert result_digest(output) == expected


def test_callback_data_is_digested_by_keccak_and_wins(output: Path) -> None:
    declare(output, {"callback-data": "0x00ff", "deterministic-output-path": "result.txt"})
    assert result_digest(output) == keccak(b"\x00\xff")
    assert read_computed(output).callback_data == b"\x00\xff"


def test_empty_callback_data_is_the_keccak_of_nothing(output: Path) -> None:
    declare(output, {"callback-data": "0x"})
    assert result_digest(output) == keccak(b"")


def test_file_digest_streams_a_file_larger_than_one_read(tmp_path: Path) -> None:
    content = os.urandom(3 * 2**20 + 7)
    (tmp_path / "big.bin").write_bytes(content)
    assert file_digest(tmp_path / "big.bin") == hashlib.sha256(content).digest()


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("find", "sort", "xargs", "sha256sum")),
    reason="needs GNU findutils and coreutils",
)
def test_a_user_can_recompute_the_digest_with_coreutils(output: Path) -> None:
    make_output(output, {"Zeta.txt": b"z", "a b/c-d.txt": b"x", "a-b.txt": b"y", "ü.txt": b"u"})
    pipeline = (
        "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum"
    )
    printed = subprocess.run(
        ["sh", "-c", pipeline], cwd=output, check=True, capture_output=True, text=True
    ).stdout
    assert directory_digest(output) == bytes.fromhex(printed.split()[0])


# --- what the digest refuses ------------------------------------------------------------------


def test_symlink_to_a_file_is_refused(output: Path) -> None:
    (output / "link.txt").symlink_to(output / "result.txt")
    with pytest.raises(ResultDigestError, match="links are refused"):
        result_digest(output)


def test_symlink_to_a_directory_is_refused(output: Path, tmp_path: Path) -> None:
    (output / "sub" / "elsewhere").symlink_to(tmp_path)
    with pytest.raises(ResultDigestError, match="links are refused"):
        result_digest(output)


def test_fifo_is_refused_without_blocking(output: Path) -> None:
    os.mkfifo(output / "sub" / "pipe")
    with pytest.raises(ResultDigestError, match="special files"):
        result_digest(output)


def test_deterministic_fifo_is_refused_without_blocking(output: Path) -> None:
    os.mkfifo(output / "pipe")
    declare(output, {"deterministic-output-path": "pipe"})
    with pytest.raises(ResultDigestError, match="special files"):
        result_digest(output)


@pytest.mark.parametrize("name", ["new\nline.txt", "back\\slash.txt", "carriage\rreturn.txt"])
def test_names_sha256sum_would_escape_are_refused(output: Path, name: str) -> None:
    (output / "sub" / name).write_bytes(b"x")
    with pytest.raises(ResultDigestError, match="names with a newline"):
        result_digest(output)


def test_names_that_are_not_utf8_are_refused(output: Path) -> None:
    with open(os.path.join(os.fsencode(output), b"caf\xe9.txt"), "wb") as file:
        file.write(b"x")
    with pytest.raises(ResultDigestError, match="valid UTF-8"):
        result_digest(output)


@pytest.mark.parametrize(
    "declared", ["../secret", "sub/../../secret", "/etc/passwd", "/iexec_out/../secret"]
)
def test_deterministic_path_escaping_the_output_is_refused(output: Path, declared: str) -> None:
    (output.parent / "secret").write_text("outside")
    declare(output, {"deterministic-output-path": declared})
    with pytest.raises(ResultDigestError, match=r"outside the output|must not contain '\.\.'"):
        result_digest(output)


def test_deterministic_path_through_a_link_is_refused(output: Path, tmp_path: Path) -> None:
    make_output(tmp_path / "elsewhere", {"result.txt": b"forged"})
    (output / "via").symlink_to(tmp_path / "elsewhere")
    declare(output, {"deterministic-output-path": "via/result.txt"})
    with pytest.raises(ResultDigestError, match="links are refused"):
        result_digest(output)


def test_missing_deterministic_output_is_refused(output: Path) -> None:
    declare(output, {"deterministic-output-path": "sub/none.txt"})
    with pytest.raises(ResultDigestError, match="does not exist"):
        result_digest(output)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe{", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"callback-data": 42}', "callback-data must be 0x-prefixed hex"),
        ('{"callback-data": "00ff"}', "callback-data must be 0x-prefixed hex"),
        ('{"callback-data": "0xabc"}', "callback-data must be 0x-prefixed hex"),
        ('{"callback-data": "0xzz"}', "callback-data must be 0x-prefixed hex"),
        ('{"deterministic-output-path": ["a"]}', "must be a non-empty string"),
        ('{"deterministic-output-path": ""}', "must be a non-empty string"),
    ],
)
def test_malformed_computed_json_is_refused(
    output: Path, content: str | bytes, problem: str
) -> None:
    path = output / "computed.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ResultDigestError, match=problem):
        result_digest(output)


def test_computed_json_that_is_a_link_is_refused(output: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text('{"callback-data": "0x01"}')
    (output / "computed.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ResultDigestError, match="links are refused"):
        result_digest(output)


def test_output_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ResultDigestError, match="not a directory"):
        result_digest(tmp_path / "file")
