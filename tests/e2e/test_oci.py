"""An OCI task with real processes: `decloud worker run` configured with the Docker Engine
API of Podman's service downloads the sample image archive, loads it, runs the container,
and the task completes with the container's result in the result store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from decloud.chain.registries import AppType
from decloud.protocol.hub import TASK_COMPLETED
from decloud.runtime.podman import PodmanService, find_podman
from decloud.storage.chain import ResultChain
from decloud.storage.cid import RESULT_LINK_PREFIX
from decloud.storage.client import StorageClient
from tests.e2e.cluster import REPOSITORY, Cluster

pytestmark = pytest.mark.anvil

HELLO_BUILD = REPOSITORY / "examples" / "hello-oci" / "build.py"
PARTIES = ["requester", "app_owner", "pool_owner", "worker1"]


@pytest.fixture(scope="module")
def podman() -> Iterator[PodmanService]:
    if find_podman() is None:
        pytest.skip("podman is not installed (apt-get install podman runc): no OCI engine")
    with PodmanService() as service:
        yield service


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster.running(tmp_path_factory.mktemp("oci"), PARTIES) as running:
        yield running


def test_an_oci_task_completes_through_podmans_docker_api(
    cluster: Cluster, podman: PodmanService, tmp_path: Path
) -> None:
    archive = tmp_path / "hello-oci.tar"
    built = subprocess.run(
        [sys.executable, str(HELLO_BUILD), str(archive)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.strip().removeprefix("sha256:")
    app = cluster.register_app("hello-oci", AppType.OCI, archive.as_uri(), bytes.fromhex(image_id))
    cluster.start_storage()
    scheduler = cluster.start_scheduler()
    cluster.start_worker("worker1", scheduler, docker_url=podman.base_url)

    deal = cluster.match(app, trust=1, params='{"iexec_args":"decloud"}')
    taskid = deal.task_id(deal.deal.bot_first)
    status = scheduler.wait_for_task(taskid, {"completed"})

    assert cluster.local["requester"].hub.task(taskid).status == TASK_COMPLETED
    (replicate,) = status["replicates"]
    assert replicate["state"] == "revealed"
    digest = ResultChain(cluster.local.rpc_url, cluster.local.deployment).revealed_digest(
        taskid, cluster.local["worker1"].address
    )
    with StorageClient(cluster.storage_url) as store:
        result = store.download(
            status["results"].removeprefix(RESULT_LINK_PREFIX),
            tmp_path / "result",
            expected_digest=digest,
        )
    assert (result.path / "result.txt").read_text() == "Hello, decloud!\n"
