"""Two `decloud scheduler run` processes on one PostgreSQL database serve the same workerpool,
each with its own workers: a bag of 20 trust-3 tasks completes, and no replicate is handed
out twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from decloud.protocol.hub import TASK_COMPLETED
from decloud.scheduler.models import ReplicateRow, TaskRow
from decloud.service.db import Database
from decloud.service.postgres import postgres_cluster
from tests.e2e.cluster import Cluster, wait_for

pytestmark = pytest.mark.anvil

WORKERS = ["worker1", "worker2", "worker3", "worker4"]
PARTIES = ["requester", "app_owner", "pool_owner", *WORKERS]
BAG = 20


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A database on a throwaway PostgreSQL. Tests name it before `cluster`, so that the
    server outlives the schedulers that use it (fixtures end in reverse order)."""
    with postgres_cluster() as postgres:
        yield postgres.new_database()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster.running(tmp_path_factory.mktemp("two-schedulers"), PARTIES) as running:
        yield running


def test_two_schedulers_on_one_postgresql_complete_a_bag_of_20_without_double_work(
    database_url: str, cluster: Cluster, mandelbrot: Path
) -> None:
    app = cluster.register_wasm("mandelbrot-sample", mandelbrot)
    cluster.start_storage()
    # Both start at once: they migrate the same empty database concurrently.
    first = cluster.start_scheduler("scheduler-a", database_url=database_url, wait=False)
    second = cluster.start_scheduler("scheduler-b", database_url=database_url, wait=False)
    cluster.wait_answering(first)
    cluster.wait_answering(second)
    cluster.start_workers(WORKERS[:2], first)
    cluster.start_workers(WORKERS[2:], second)

    deal = cluster.match(app, trust=3, volume=BAG)
    taskids = [deal.task_id(index) for index in deal.deal.task_indexes()]
    hub = cluster.local["requester"].hub
    wait_for(
        lambda: all(hub.task(taskid).status == TASK_COMPLETED for taskid in taskids),
        f"the {BAG} tasks complete on-chain",
        timeout_s=240,
    )
    for taskid in taskids:
        first.wait_for_task(taskid, {"completed"})

    database = Database(database_url)
    try:
        with database.transaction() as session:
            tasks = session.scalars(select(TaskRow)).all()
            replicates = session.scalars(select(ReplicateRow)).all()
    finally:
        database.dispose()
    assert sorted(t.taskid for t in tasks) == sorted(f"0x{t.hex()}" for t in taskids)
    pairs = Counter((r.taskid, r.worker) for r in replicates)
    assert max(pairs.values()) == 1, "a worker got the same task twice"
    revealed = Counter(r.taskid for r in replicates if r.state == "revealed")
    assert revealed == {f"0x{t.hex()}": 2 for t in taskids}, "two fresh votes reach trust 3"
    replaced = [r for r in replicates if r.state != "revealed"]
    assert all(r.state in ("lost", "cancelled") for r in replaced), [
        (r.taskid, r.worker, r.state, r.cause) for r in replaced
    ]
    served = Counter(r.worker.lower() for r in replicates)
    by_worker = {name: served[cluster.local[name].address.lower()] for name in WORKERS}
    assert all(count > 0 for count in by_worker.values()), f"each scheduler served: {by_worker}"
    for taskid in taskids:
        task = hub.task(taskid)
        assert (task.contributors, task.reveals) == (2, 2)
