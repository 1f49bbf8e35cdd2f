"""An OCI task through Podman's Docker-compatible API: the worker downloads the image
archive and loads it, fetches the dataset and an input file, and the container's result
completes the task."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from decloud.chain.localnet import LocalMarket
from decloud.chain.registries import AppRegistry, AppType, DatasetRegistry
from decloud.runtime.podman import PodmanService, find_podman
from decloud.storage.cid import RESULT_LINK_PREFIX
from decloud.storage.client import StorageClient
from tests.worker.pool import Pool, WorkerFactory

HELLO_BUILD = Path(__file__).resolve().parents[2] / "examples" / "hello-oci" / "build.py"
DATASET = b"a dataset of greetings\n"
INPUT = b"an input file\n"


@pytest.fixture(scope="module")
def podman() -> Iterator[PodmanService]:
    if find_podman() is None:
        pytest.skip("podman is not installed (apt-get install podman runc): no OCI engine")
    with PodmanService() as service:
        yield service


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, local: LocalMarket) -> dict[str, str]:
    """The sample image archive, a dataset and an input file as files, the app and the
    dataset registered: their addresses and URLs."""
    directory = tmp_path_factory.mktemp("published")
    archive = directory / "hello-oci.tar"
    built = subprocess.run(
        [sys.executable, str(HELLO_BUILD), str(archive)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.strip()
    (directory / "greetings.txt").write_bytes(DATASET)
    (directory / "names.txt").write_bytes(INPUT)
    client = local["app_owner"].hub.client
    app = AppRegistry(client, local.deployment.app_registry).create_app(
        "hello-oci", AppType.OCI, archive.as_uri(), bytes.fromhex(image_id.removeprefix("sha256:"))
    )
    dataset = DatasetRegistry(client, local.deployment.dataset_registry).create_dataset(
        "greetings", (directory / "greetings.txt").as_uri(), hashlib.sha256(DATASET).digest()
    )
    return {"app": app, "dataset": dataset, "input": (directory / "names.txt").as_uri()}


def test_an_oci_task_with_a_dataset_and_an_input_file_completes(
    pool: Pool,
    workers: WorkerFactory,
    podman: PodmanService,
    published: dict[str, str],
    tmp_path: Path,
) -> None:
    worker = workers.start("worker1", docker_url=podman.base_url)
    assert worker.worker.capabilities.runtimes == ["OCI", "WASM"]
    params = f'{{"iexec_args":"decloud","iexec_input_files":["{published["input"]}"]}}'
    taskid = pool.match(published["app"], trust=1, params=params, dataset=published["dataset"])

    status = pool.wait_for_task(taskid, "completed")
    record = worker.wait_finished(taskid)

    assert record.state == "done"
    assert record.dataset_filename == published["dataset"]
    assert record.input_files == ("names.txt",)
    with StorageClient(pool.store_url) as store:
        result = store.download(
            status["results"].removeprefix(RESULT_LINK_PREFIX), tmp_path / "result"
        )
    assert result.result_digest == record.digest
    assert (result.path / "result.txt").read_text() == (
        "Hello, decloud!\n"
        + described(published["dataset"], DATASET)
        + described("names.txt", INPUT)
    )


def described(name: str, content: bytes) -> str:
    """How the sample app describes an input it was given."""
    return f"{name}: {len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()}\n"
