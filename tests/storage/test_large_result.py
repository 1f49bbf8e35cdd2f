"""Results stream: a 1 GiB result goes up and comes back with constant memory.

The server runs in this process (a uvicorn thread), so the resident memory sampled here
covers the worker's upload, the store's checks and the requester's download together.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from decloud.chain.localnet import LocalMarket
from decloud.storage.client import StorageError
from decloud.storage.service import build_app
from tests.storage.conftest import ServedStore, serving, store_settings, trust1_task

GIB = 1 << 30
MIB = 1 << 20
MAX_RSS_GROWTH = 100 * MIB


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakRss:
    """Samples the process's resident memory every 10 ms while in use."""

    def __init__(self) -> None:
        self.baseline = resident_bytes()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, resident_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory removed at the end of the test: gigabytes must not pile up in pytest's
    kept temporary directories."""
    directory = Path(tempfile.mkdtemp(prefix="decloud-large-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.fixture
def large_store(local: LocalMarket, scratch: Path) -> Iterator[ServedStore]:
    directory = scratch / "store"
    directory.mkdir()
    with serving(build_app(store_settings(directory, local, 2 * GIB))) as url:
        yield ServedStore(url, directory, local)


def test_a_1_gib_result_uploads_and_downloads_with_constant_memory(
    large_store: ServedStore, local: LocalMarket, scratch: Path
) -> None:
    output = scratch / "output"
    output.mkdir()
    with (output / "frames.raw").open("wb") as file:
        file.truncate(GIB)  # sparse: written in no time, read back as zeros
    (output / "summary.txt").write_text("1 GiB of frames\n")
    task = trust1_task(local, output, "worker1")

    started = time.monotonic()
    with PeakRss() as memory, large_store.client() as client:
        stored = client.upload(task.taskid, output, large_store.key("worker1"), scratch=scratch)
        uploaded = time.monotonic()
        downloaded = client.download(task.hex, scratch / "result", expected_digest=task.digest)
    finished = time.monotonic()

    assert stored.size > GIB
    assert downloaded.result_digest == task.digest
    assert (scratch / "result" / "frames.raw").stat().st_size == GIB
    assert memory.growth < MAX_RSS_GROWTH, f"resident memory grew by {memory.growth / MIB:.0f} MiB"
    print(
        f"1 GiB result: upload {uploaded - started:.1f} s, download {finished - uploaded:.1f} s, "
        f"peak RSS growth {memory.growth / MIB:.1f} MiB"
    )


def test_a_refusal_reaches_the_client_without_the_archive_being_read(
    large_store: ServedStore, local: LocalMarket, scratch: Path
) -> None:
    """The store answers before reading the body; the client still gets the problem."""
    output = scratch / "output"
    output.mkdir()
    with (output / "frames.raw").open("wb") as file:
        file.truncate(64 * MIB)
    task = trust1_task(local, output, "worker1")
    with large_store.client() as client, pytest.raises(StorageError) as error:
        client.upload(task.taskid, output, large_store.key("stranger"), scratch=scratch)
    assert (error.value.status, error.value.rule) == (403, "upload.not_contributor")
