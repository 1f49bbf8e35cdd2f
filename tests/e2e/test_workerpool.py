"""A workerpool of real processes on SQLite: `decloud storage run`, `decloud scheduler run`
and three `decloud worker run`, on anvil. Tasks complete and pay every party exactly as the
protocol says, a bag is spread over the workers, and the pool survives a worker and the
scheduler killed with SIGKILL in the middle of a task."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from decloud.protocol.hub import distribute_rewards, kitty_share, worker_weight
from decloud.storage.chain import ResultChain
from decloud.storage.cid import RESULT_LINK_PREFIX
from decloud.storage.client import StorageClient
from tests.e2e.cluster import SLOW, Cluster, Scheduler, WorkerProcess, wait_for

pytestmark = pytest.mark.anvil

WORKERS = ["worker1", "worker2", "worker3"]
PARTIES = ["requester", "app_owner", "pool_owner", *WORKERS]


@dataclass
class Pool:
    scheduler: Scheduler
    workers: dict[str, WorkerProcess]
    app: str

    def worker_named(self, cluster: Cluster, address: str) -> str:
        (name,) = [n for n in self.workers if cluster.local[n].address.lower() == address.lower()]
        return name


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster.running(tmp_path_factory.mktemp("workerpool"), PARTIES) as running:
        yield running


@pytest.fixture(scope="module")
def pool(cluster: Cluster, mandelbrot: Path) -> Pool:
    app = cluster.register_wasm("mandelbrot-sample", mandelbrot)
    cluster.start_storage()
    scheduler = cluster.start_scheduler()
    workers = {w.party: w for w in cluster.start_workers(WORKERS, scheduler)}
    return Pool(scheduler, workers, app)


def test_a_trust_3_task_pays_every_party_exactly_as_the_protocol_says(
    cluster: Cluster, pool: Pool, tmp_path: Path
) -> None:
    before, kitty = cluster.accounts(), cluster.kitty()
    deal = cluster.match(pool.app, trust=3)
    taskid = deal.task_id(deal.deal.bot_first)

    status = pool.scheduler.wait_for_task(taskid, {"completed"})

    proven = [
        pool.worker_named(cluster, r["worker"])
        for r in status["replicates"]
        if r["state"] == "revealed"
    ]
    assert len(proven) == 2, status["replicates"]
    terms = deal.deal
    rewards = distribute_rewards(
        terms.workerpool_price,
        terms.scheduler_reward_ratio,
        {cluster.local[w].address: worker_weight(before[w].score) for w in proven},
    )
    paid = dict(rewards.workers)
    after = cluster.accounts()
    expected_free = {
        "requester": before["requester"].free - terms.task_price,
        "app_owner": before["app_owner"].free + terms.app_price,
        "pool_owner": before["pool_owner"].free + rewards.scheduler + kitty_share(kitty),
    } | {w: before[w].free + paid.get(cluster.local[w].address, 0) for w in WORKERS}
    assert {name: a.free for name, a in after.items()} == expected_free
    assert {name: a.locked for name, a in after.items()} == {
        name: a.locked for name, a in before.items()
    }, "the requester's payment and every stake are unlocked"
    assert {w: after[w].score - before[w].score for w in WORKERS} == {
        w: int(w in proven) for w in WORKERS
    }
    assert cluster.kitty() == kitty - kitty_share(kitty)
    cluster.assert_conserved()

    chain = ResultChain(cluster.local.rpc_url, cluster.local.deployment)
    revealed = {chain.revealed_digest(taskid, cluster.local[w].address) for w in proven}
    assert len(revealed) == 1 and None not in revealed
    (digest,) = revealed
    assert status["results"].startswith(RESULT_LINK_PREFIX)
    with StorageClient(cluster.storage_url) as store:
        result = store.download(
            status["results"].removeprefix(RESULT_LINK_PREFIX),
            tmp_path / "result",
            expected_digest=digest,
        )
    assert result.result_digest == digest
    assert (result.path / "mandelbrot.ppm").read_bytes().startswith(b"P6\n32 32\n")


def test_a_bag_of_10_tasks_completes_with_every_worker_taking_part(
    cluster: Cluster, pool: Pool
) -> None:
    deal = cluster.match(pool.app, trust=1, volume=10)
    taskids = [deal.task_id(index) for index in deal.deal.task_indexes()]

    statuses = [pool.scheduler.wait_for_task(taskid, {"completed"}) for taskid in taskids]

    by_worker: dict[str, int] = {}
    for status in statuses:
        # A replicate whose worker missed its pings on a loaded machine may have been
        # replaced: the one that counts is the one revealed.
        (replicate,) = [r for r in status["replicates"] if r["state"] == "revealed"]
        name = pool.worker_named(cluster, replicate["worker"])
        by_worker[name] = by_worker.get(name, 0) + 1
    assert sorted(by_worker) == WORKERS, f"replicates per worker: {by_worker}"
    assert sum(by_worker.values()) == 10
    assert all(cluster.local["requester"].hub.task(t).status == 3 for t in taskids)


def running_replicate(pool: Pool, taskid: bytes) -> str | None:
    for replicate in pool.scheduler.task(taskid)["replicates"]:
        if replicate["state"] == "running":
            return str(replicate["worker"])
    return None


def test_a_worker_killed_while_it_computes_is_replaced_and_the_task_completes(
    cluster: Cluster, pool: Pool
) -> None:
    deal = cluster.match(pool.app, trust=1, params=SLOW)
    taskid = deal.task_id(deal.deal.bot_first)
    wait_for(lambda: running_replicate(pool, taskid) is not None, "a worker runs the app")
    victim = pool.worker_named(cluster, str(running_replicate(pool, taskid)))

    pool.workers[victim].process.kill()
    status = pool.scheduler.wait_for_task(taskid, {"completed"})

    states = {pool.worker_named(cluster, r["worker"]): r for r in status["replicates"]}
    assert (states[victim]["state"], states[victim]["cause"]) == ("lost", "missed-pings")
    assert [r["state"] for n, r in states.items() if n != victim] == ["revealed"]
    assert cluster.local["requester"].hub.task(taskid).contributors == 1

    # The killed worker comes back with its state directory: it drops the replicate the
    # scheduler gave to another worker, and serves the pool again.
    process = pool.workers[victim].process
    offset = len(process.text())
    process.start()
    wait_for(
        lambda: "joined workerpool" in process.text()[offset:], f"{victim} joins again after a kill"
    )


def test_the_scheduler_killed_mid_task_resumes_from_its_database_without_double_work(
    cluster: Cluster, pool: Pool
) -> None:
    deal = cluster.match(pool.app, trust=3, params=SLOW)
    taskid = deal.task_id(deal.deal.bot_first)
    wait_for(
        lambda: (
            [r["state"] != "assigned" for r in pool.scheduler.task(taskid)["replicates"]]
            == [True, True]
        ),
        "two workers started the task",
    )

    pool.scheduler.process.kill()
    hub = cluster.local["requester"].hub
    # The workers follow the task on-chain: they vote and reveal without the scheduler,
    # and keep offering the result link until it is back.
    wait_for(lambda: hub.task(taskid).reveals == 2, "both vote and reveal without the scheduler")
    pool.scheduler.process.start()
    status = pool.scheduler.wait_for_task(taskid, {"completed"})

    workers = [r["worker"] for r in status["replicates"]]
    assert len(workers) == len(set(workers)) == 2, status["replicates"]
    assert {r["state"] for r in status["replicates"]} == {"revealed"}
    assert status["results"], "a winner reported the result link after the restart"
    task = hub.task(taskid)
    assert (task.status, task.contributors, task.reveals) == (3, 2, 2)
