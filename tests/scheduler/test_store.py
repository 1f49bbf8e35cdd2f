"""The state in SQL, on SQLite and PostgreSQL: every change with its story, in one
transaction; rows locked so that two instances never hand out a replicate twice."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, inspect, select

from decloud.chain.events import ChainEvent
from decloud.protocol.ids import result_hash, task_id
from decloud.runtime.spec import FailureCause
from decloud.scheduler.engine import Engine, write_transaction
from decloud.scheduler.migrations import migrate_scheduler
from decloud.scheduler.models import (
    HistoryRow,
    ReplicateRow,
    SchedulerBase,
    TaskRow,
    WorkerRow,
)
from decloud.scheduler.policy import Policy
from decloud.scheduler.state import (
    Capabilities,
    ConsensusReached,
    InvalidTransition,
    ReplicateContributed,
    ReplicateFailed,
    ReplicateStarted,
    TaskClaimed,
)
from decloud.scheduler.store import hex32
from decloud.scheduler.watcher import guarded
from decloud.service.db import Database
from tests.scheduler.deals import deal_row, matched
from tests.scheduler.scenario import START, WASM, worker_address

SIGNATURE = b"\x5a" * 65
DEALID = bytes.fromhex("de" * 32)


def engine(policy: Policy | None = None) -> Engine:
    return Engine(policy or Policy(), lambda worker, taskid: SIGNATURE)


def setup_pool(
    database: Database, trust: int, size: int, workers: int, capabilities: Capabilities = WASM
) -> tuple[Engine, list[str]]:
    scheduler = engine()
    now = time.time()
    row = deal_row(DEALID, trust, size)
    addresses = [worker_address(n) for n in range(1, workers + 1)]
    with write_transaction(database) as session:
        scheduler.deal_matched(session, row, matched(row, now, size))
        for address in addresses:
            scheduler.login(session, address, 0, now)
            scheduler.register(session, address, capabilities, now)
    return scheduler, addresses


def test_migrations_give_exactly_the_models_schema(database: Database) -> None:
    inspector = inspect(database.engine)
    for table in SchedulerBase.metadata.sorted_tables:
        columns = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name: c.nullable for c in table.columns}, table.name
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= indexes, table.name
    migrate_scheduler(database)  # a second run changes nothing


def test_a_task_s_life_is_stored_with_its_story(database: Database) -> None:
    scheduler, (w1, w2, w3) = setup_pool(database, trust=3, size=2, workers=3)
    taskid = task_id(DEALID, 0)
    now = time.time()
    with write_transaction(database) as session:
        first = scheduler.pull(session, w1, now, START)
        assert first is not None
        assert (first.task.taskid, first.replicate.authorization) == (
            hex32(taskid),
            "0x" + SIGNATURE.hex(),
        )
    with write_transaction(database) as session:
        second = scheduler.pull(session, w2, now, START)
        assert second is not None and second.task.taskid == hex32(taskid)
    with write_transaction(database) as session:
        third = scheduler.pull(session, w3, now, START)
        assert third is not None and third.task.task_index == 1, "task 0 has enough replicates"
    with write_transaction(database) as session:
        scheduler.on_task(session, ReplicateStarted(now=now, taskid=taskid, worker=w1), taskid)
        for worker in (w1, w2):
            vote = result_hash(taskid, b"\x01" * 32)
            contributed = ReplicateContributed(
                now=now, taskid=taskid, worker=worker, result_hash=vote, weight=2
            )
            scheduler.chain_fact(session, contributed, taskid)
        consensus = ConsensusReached(
            now=now, taskid=taskid, consensus=result_hash(taskid, b"\x01" * 32), chain_now=START
        )
        scheduler.chain_fact(session, consensus, taskid)

    with database.transaction() as session:
        task = session.get(TaskRow, hex32(taskid))
        assert task is not None and task.state == "revealing"
        assert task.wake_chain == START + 2 * 300, "woken at the reveal deadline"
        states = dict(
            session.execute(
                select(ReplicateRow.worker, ReplicateRow.state).where(
                    ReplicateRow.taskid == hex32(taskid)
                )
            ).all()
        )
        assert states == {w1: "contributed", w2: "contributed"}
        kinds = list(
            session.scalars(
                select(HistoryRow.kind)
                .where(HistoryRow.taskid == hex32(taskid))
                .order_by(HistoryRow.seq)
            )
        )
        assert kinds == [
            "DealMatched", "WorkPulled", "WorkPulled", "ReplicateStarted",
            "ReplicateContributed", "ReplicateContributed", "ConsensusReached",
        ]  # fmt: skip


def test_an_impossible_move_rolls_back_and_tells_the_stored_story(database: Database) -> None:
    scheduler, (w1,) = setup_pool(database, trust=1, size=1, workers=1)
    taskid = task_id(DEALID, 0)
    now = time.time()
    with write_transaction(database) as session:
        scheduler.pull(session, w1, now, START)
    failed = ReplicateFailed(
        now=now, taskid=taskid, worker=w1, cause=FailureCause.TIMEOUT, message="too slow"
    )
    with write_transaction(database) as session:
        scheduler.on_task(session, failed, taskid)
    with pytest.raises(InvalidTransition) as raised, write_transaction(database) as session:
        scheduler.on_task(session, ReplicateStarted(now=now, taskid=taskid, worker=w1), taskid)
    assert [entry.event.split("(")[0] for entry in raised.value.story] == [
        "DealMatched",
        "WorkPulled",
        "ReplicateFailed",
    ]
    with database.transaction() as session:
        replicate = session.get(ReplicateRow, (hex32(taskid), w1))
        assert replicate is not None
        assert (replicate.state, replicate.cause, replicate.message) == (
            "failed",
            "timeout",
            "too slow",
        )


def test_a_chain_fact_the_tables_refuse_is_skipped_without_its_changes(
    database: Database,
) -> None:
    scheduler, (w1, w2) = setup_pool(database, trust=1, size=1, workers=2)
    taskid = task_id(DEALID, 0)
    now = time.time()
    with write_transaction(database) as session:
        scheduler.pull(session, w1, now, START)
    vote = result_hash(taskid, b"\x01" * 32)
    wrong = ConsensusReached(now=now, taskid=taskid, consensus=vote, chain_now=START)
    claimed = TaskClaimed(now=now, taskid=taskid)
    item = ChainEvent("TaskConsensus", {}, "0x", 7, "0x", "0x", 0)
    with write_transaction(database) as session:
        scheduler.chain_fact(session, claimed, taskid)
        assert guarded(session, item, lambda: scheduler.chain_fact(session, wrong, taskid)) == []
        contributed = ReplicateContributed(
            now=now, taskid=taskid, worker=w2, result_hash=vote, weight=2
        )
        guarded(session, item, lambda: scheduler.chain_fact(session, contributed, taskid))
    with database.transaction() as session:
        task = session.get(TaskRow, hex32(taskid))
        assert task is not None and (task.state, task.consensus) == ("failed", None)
        kinds = session.scalars(select(HistoryRow.kind).where(HistoryRow.taskid == hex32(taskid)))
        assert "ConsensusReached" not in list(kinds)
        adopted = session.get(ReplicateRow, (hex32(taskid), w2))
        assert adopted is not None and adopted.state == "contributed", "later facts still apply"


def test_liveness_and_capabilities_survive_a_restart(database: Database) -> None:
    _, (w1,) = setup_pool(database, trust=1, size=1, workers=1)
    restarted = engine()
    with write_transaction(database) as session:
        restarted.ping(session, w1, 5_000_000_000.0)
    with database.transaction() as session:
        worker = session.get(WorkerRow, w1)
        assert worker is not None
        assert (worker.last_ping, worker.runtimes, worker.slots) == (5_000_000_000.0, ["WASM"], 1)


def test_a_silent_worker_s_replicate_is_handed_to_another_after_a_restart(
    database: Database,
) -> None:
    scheduler, (w1, w2) = setup_pool(database, trust=1, size=1, workers=2)
    now = time.time()
    with write_transaction(database) as session:
        assert scheduler.pull(session, w1, now, START) is not None
    restarted = engine()
    later = now + Policy().lost_after_s + 1
    with write_transaction(database) as session:
        restarted.ping(session, w2, later)
        assert restarted.tick(session, later, START) == []
    with write_transaction(database) as session:
        again = restarted.pull(session, w2, later, START)
        assert again is not None and again.replicate.worker == w2
    with database.transaction() as session:
        lost = session.get(ReplicateRow, (hex32(task_id(DEALID, 0)), w1))
        assert lost is not None and (lost.state, lost.cause) == ("lost", "missed-pings")


def test_two_instances_on_one_postgresql_never_hand_out_a_replicate_twice(
    database: Database, database_url: str
) -> None:
    if not database.is_postgresql:
        pytest.skip("row locks: PostgreSQL only (SQLite serializes its writers)")
    tasks, workers = 20, 8
    many_slots = Capabilities(cores=8, memory_mb=8192, runtimes=frozenset({"WASM"}), slots=10)
    _, addresses = setup_pool(database, trust=3, size=tasks, workers=workers,
                              capabilities=many_slots)  # fmt: skip
    instances = [(Database(database_url), engine()) for _ in range(2)]
    given = Counter[str]()
    errors: list[BaseException] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 30

    def work(worker: str, first: int) -> None:
        pulls = 0
        while time.monotonic() < deadline and sum(given.values()) < 2 * tasks:
            instance_db, instance = instances[(first + pulls) % 2]
            pulls += 1
            try:
                with write_transaction(instance_db) as session:
                    assignment = instance.pull(session, worker, time.time(), START)
            except BaseException as error:  # reported by the test below
                errors.append(error)
                return
            if assignment is not None:
                with lock:
                    given[assignment.task.taskid] += 1

    threads = [
        threading.Thread(target=work, args=(worker, number))
        for number, worker in enumerate(addresses)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for instance_db, _ in instances:
        instance_db.dispose()
    assert errors == []
    with database.transaction() as session:
        stored = Counter(session.scalars(select(ReplicateRow.taskid)))
        assert session.scalar(select(func.count()).select_from(ReplicateRow)) == 2 * tasks
    assert stored == given
    assert set(stored.values()) == {2}, "each trust-3 task got exactly two fresh replicates"
