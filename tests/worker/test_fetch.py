"""Downloads into the content-addressed cache, and reading a request's params."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from decloud.runtime.spec import FailureCause
from decloud.scheduler.state import WorkerCause
from decloud.worker.fetch import Fetcher, FetchError, TaskParams, input_file_name, parse_params

CONTENT = b"\0asm a module" * 100


@pytest.fixture
def fetcher(tmp_path: Path) -> Iterator[Fetcher]:
    fetcher = Fetcher(tmp_path / "cache", max_bytes=10_000, timeout_s=10)
    yield fetcher
    fetcher.close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "published" / "app.wasm"
    path.parent.mkdir()
    path.write_bytes(CONTENT)
    return path


def cached_files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_a_verified_download_is_cached_under_its_checksum(
    fetcher: Fetcher, source: Path, tmp_path: Path
) -> None:
    checksum = hashlib.sha256(CONTENT).digest()
    first = fetcher.fetch(source.as_uri(), checksum, "module")
    source.unlink()  # the second fetch needs no source
    second = fetcher.fetch(source.as_uri(), checksum, "module")

    assert first == second == tmp_path / "cache" / "sha256" / checksum.hex()
    assert second.read_bytes() == CONTENT
    assert cached_files(tmp_path) == [checksum.hex()]


def test_a_corrupted_cache_entry_is_downloaded_again(
    fetcher: Fetcher, source: Path, tmp_path: Path
) -> None:
    checksum = hashlib.sha256(CONTENT).digest()
    cached = fetcher.fetch(source.as_uri(), checksum, "module")
    cached.write_bytes(b"tampered")
    assert fetcher.fetch(source.as_uri(), checksum, "module").read_bytes() == CONTENT


def test_a_download_with_another_checksum_is_refused_and_not_kept(
    fetcher: Fetcher, source: Path, tmp_path: Path
) -> None:
    registered = hashlib.sha256(b"what the owner registered").digest()
    with pytest.raises(FetchError) as refused:
        fetcher.fetch(source.as_uri(), registered, "module")
    assert refused.value.cause is FailureCause.CHECKSUM_MISMATCH
    assert f"registered checksum is 0x{registered.hex()}" in refused.value.message
    assert hashlib.sha256(CONTENT).hexdigest() in refused.value.message
    assert cached_files(tmp_path) == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ipfs://bafy-module", "fetches file:// and http(s):// URLs only"),
        ("file:///nowhere/app.wasm", "cannot be downloaded"),
        ("http://127.0.0.1:9/app.wasm", "cannot be downloaded"),
    ],
)
def test_what_cannot_be_downloaded_fails_as_download_failed(
    fetcher: Fetcher, url: str, says: str, tmp_path: Path
) -> None:
    with pytest.raises(FetchError) as failed:
        fetcher.fetch(url, None, "module")
    assert failed.value.cause is WorkerCause.DOWNLOAD_FAILED
    assert says in failed.value.message
    assert cached_files(tmp_path) == []


def test_an_http_error_and_a_file_over_the_limit_fail_the_download(
    fetcher: Fetcher, module_server: str, tmp_path: Path
) -> None:
    with pytest.raises(FetchError, match="404"):
        fetcher.fetch(f"{module_server}/missing.wasm", None, "module")
    with pytest.raises(FetchError, match="larger than this worker's limit of 10000 bytes"):
        fetcher.fetch(f"{module_server}/mandelbrot.wasm", None, "module")
    assert cached_files(tmp_path) == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("", TaskParams()),
        ('{"iexec_args":"256 128 \\"a b\\""}', TaskParams(("256", "128", "a b"))),
        (
            '{"iexec_args":"x","iexec_input_files":["http://h/in/a.csv","file:///b.txt"]}',
            TaskParams(("x",), ("http://h/in/a.csv", "file:///b.txt")),
        ),
        ("64 64", TaskParams(("64", "64"))),
        ('{"iexec_args":"it\'s"}', TaskParams(("it's",))),
        ("[1, 2]", TaskParams(("[1,", "2]"))),
    ],
)
def test_params_give_args_and_input_files(params: str, expected: TaskParams) -> None:
    assert parse_params(params) == expected


def test_an_input_file_is_named_after_its_url() -> None:
    assert input_file_name("https://host/data/set%201.csv?x=1") == "set 1.csv"
    with pytest.raises(FetchError, match="no usable file name"):
        input_file_name("https://host/")
