"""The sample apps' build recipes: reproducible, so that anyone can rebuild an app and get the
checksum registered on-chain, and cheap to run again."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

from .conftest import EXAMPLES

MANDELBROT_BUILD = EXAMPLES / "mandelbrot-wasm" / "build.sh"


def build_mandelbrot(output: Path) -> None:
    subprocess.run(
        [str(MANDELBROT_BUILD), str(output)], check=True, capture_output=True, timeout=60
    )


def test_the_wasm_sample_builds_to_the_same_bytes_and_is_not_rebuilt_needlessly(
    tmp_path: Path, mandelbrot_wasm: Path
) -> None:
    again = tmp_path / "again.wasm"
    build_mandelbrot(again)
    built_at = again.stat().st_mtime_ns
    build_mandelbrot(again)

    assert again.read_bytes() == mandelbrot_wasm.read_bytes()
    assert again.stat().st_mtime_ns == built_at
    assert again.read_bytes().startswith(b"\0asm")
    assert len(again.read_bytes()) < 100_000  # stripped: small enough to ship and pin


def test_the_oci_sample_archive_and_image_id_are_reproducible(
    tmp_path: Path, hello_build: ModuleType
) -> None:
    first_id = hello_build.build(tmp_path / "first.tar")
    second_id = hello_build.build(tmp_path / "second.tar")

    assert first_id == second_id
    assert first_id.startswith("sha256:") and len(first_id) == len("sha256:") + 64
    assert (tmp_path / "first.tar").read_bytes() == (tmp_path / "second.tar").read_bytes()
