"""Follow the chain into the scheduler's state, from persisted, reorg-safe cursors.

Two event streams feed it: the marketplace's `DealCreated` (emitted in the transaction of
`SchedulerNotice`, with the deal's terms) for deals of this workerpool, and the hub's task
events for tasks the scheduler knows. Each poll is one database transaction: the state
changes the events cause, their story and the streams' cursors are committed together, so a
restarted scheduler resumes exactly after the last event it acted on. Delivery is at least
once and the machine ignores a fact it already knows.

Ordering between the two streams needs no care: a hub event of one of the pool's tasks needs
an authorization, which is signed only once the deal is stored, so its deal is always known
by then. Instances sharing a database take turns to poll (an advisory lock on PostgreSQL,
the write lock on SQLite).

A fact the transition tables refuse is logged with the task's story and skipped (`guarded`).
A reorganization is reported and logged; the state learnt from dropped blocks is not undone,
which `confirmations` makes unlikely on chains that reorganize.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from eth_utils.crypto import keccak
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from web3 import Web3

from decloud.chain.errors import ChainError
from decloud.chain.events import ChainEvent, EventStream, Reorg
from decloud.chain.registries import AppType
from decloud.protocol.hub import Deal
from decloud.protocol.tags import GPU, is_tee, tag_covers
from decloud.scheduler.chain import SchedulerChain
from decloud.scheduler.engine import ChainAction, Engine
from decloud.scheduler.models import DealRow, ReplicateRow, TaskRow
from decloud.scheduler.state import (
    ConsensusReached,
    DealMatched,
    Event,
    InvalidTransition,
    ReplicateContributed,
    ReplicateRevealed,
    ScoreChanged,
    TaskClaimed,
    TaskFinalized,
    TaskReopened,
)
from decloud.scheduler.store import hex32, terms_of
from decloud.service.cursors import SqlCursorStore

_log = logging.getLogger(__name__)


class ChainWatcher:
    """Turns the chain's events into state machine events for one workerpool."""

    def __init__(
        self,
        chain: SchedulerChain,
        engine: Engine,
        workerpool: str,
        *,
        start_block: int = 0,
        confirmations: int = 0,
    ) -> None:
        self.chain = chain
        self.engine = engine
        self.workerpool = Web3.to_checksum_address(workerpool)
        self.name = f"scheduler.{self.workerpool}"
        self._start_block = start_block
        self._confirmations = confirmations
        self._poll_lock_key = int.from_bytes(keccak(text=self.name)[:8], "big", signed=True)
        self._hub_events: dict[str, Callable[[ChainEvent, float], Event]] = {
            "TaskContribute": _contributed,
            "TaskConsensus": self._consensus,
            "TaskReveal": _revealed,
            "TaskReopen": _reopened,
            "TaskFinalize": _finalized,
            "TaskClaimed": _claimed,
        }

    def poll(self, session: Session, now: float) -> list[ChainAction]:
        """Act on every new event (in the caller's write transaction); the chain actions
        they call for. Returns at once when another instance is polling."""
        if not self._take_turn(session):
            return []
        store = SqlCursorStore(session)
        actions: list[ChainAction] = []
        for item in self._stream(self.chain.hub.marketplace, store, "marketplace").poll():
            if isinstance(item, Reorg):
                _log.warning("chain reorganized from block %d (deals)", item.from_block)
            elif item.name == "DealCreated" and item.args["workerpool"] == self.workerpool:
                self._deal_created(session, item, now)
        for item in self._stream(self.chain.hub.hub, store, "hub").poll():
            if isinstance(item, Reorg):
                _log.warning("chain reorganized from block %d (tasks)", item.from_block)
            else:
                actions += guarded(session, item, partial(self._hub_event, session, item, now))
        return actions

    def _stream(self, contract: Any, store: SqlCursorStore, suffix: str) -> EventStream:
        return EventStream(
            contract,
            store,
            name=f"{self.name}.{suffix}",
            start_block=self._start_block,
            confirmations=self._confirmations,
        )

    def _take_turn(self, session: Session) -> bool:
        if session.get_bind().dialect.name != "postgresql":
            return True
        return bool(session.scalar(select(func.pg_try_advisory_xact_lock(self._poll_lock_key))))

    def _deal_created(self, session: Session, item: ChainEvent, now: float) -> None:
        deal = Deal.decode(bytes(item.args["deal"]))
        row = self._deal_row(bytes(item.args["dealid"]), deal, str(item.args["params"]), item)
        event = DealMatched(
            now=now, terms=terms_of(row), first_index=deal.bot_first, size=deal.bot_size
        )
        self.engine.deal_matched(session, row, event)

    def _deal_row(self, dealid: bytes, deal: Deal, params: str, item: ChainEvent) -> DealRow:
        """The deal as stored, with its app and dataset read from the registries."""
        app = self.chain.app(deal.app)
        dataset = self.chain.dataset(deal.dataset)
        return DealRow(
            dealid=hex32(dealid),
            workerpool=deal.workerpool,
            requester=deal.requester,
            deal=deal.encode(),
            params=params,
            app_type=AppType.WASM.name if app is None else app.app_type.name,
            app_multiaddr="" if app is None else app.multiaddr,
            app_checksum=hex32(bytes(32) if app is None else app.checksum),
            app_mrenclave="" if app is None else app.mrenclave.hex(),
            dataset_multiaddr="" if dataset is None else dataset.multiaddr,
            dataset_checksum=hex32(bytes(32) if dataset is None else dataset.checksum),
            tee=is_tee(deal.tag),
            gpu=tag_covers(deal.tag, GPU),
            trust=deal.trust,
            time_ref=deal.time_ref,
            start_time=deal.start_time,
            block_number=item.block_number,
        )

    def contribution_mined(
        self, session: Session, tx_hash: str, taskid: bytes, worker: str, now: float
    ) -> None:
        """A worker says its contribution is mined: count it now, from the transaction's
        receipt, rather than at the next poll, so that the worker's slot is free for its
        next pull. Only the contribution itself is taken: the other facts of the receipt
        (a consensus) must come after those of earlier blocks, in the polls' order."""
        self._mined_fact(session, "TaskContribute", tx_hash, taskid, worker, now)

    def reveal_mined(
        self, session: Session, tx_hash: str, taskid: bytes, worker: str, now: float
    ) -> list[ChainAction]:
        """A worker says its reveal is mined: count it now, so that its result link is
        taken at once. Only once the state holds this vote as the task's consensus: the
        polls then saw every vote of the consensus group (none comes after a consensus),
        so counting the reveal before its block is polled decides exactly as the poll
        would."""
        task = session.get(TaskRow, hex32(taskid))
        replicate = session.get(ReplicateRow, (hex32(taskid), worker))
        if task is None or replicate is None or task.consensus is None:
            return []
        if replicate.state != "contributed" or replicate.result_hash != task.consensus:
            return []
        return self._mined_fact(session, "TaskReveal", tx_hash, taskid, worker, now)

    def _mined_fact(
        self, session: Session, name: str, tx_hash: str, taskid: bytes, worker: str, now: float
    ) -> list[ChainAction]:
        """Apply the event `name` of this task and worker from a mined transaction. With
        `confirmations`, the watcher alone decides when a block counts."""
        if self._confirmations:
            return []
        try:
            mined = self.chain.mined_events(tx_hash)
        except ChainError as error:
            _log.warning("receipt of %s: %s; the next poll takes it", tx_hash, error)
            return []
        actions: list[ChainAction] = []
        for item in mined:
            if (
                item.name == name
                and bytes(item.args["taskid"]) == taskid
                and str(item.args["worker"]).lower() == worker.lower()
            ):
                actions += guarded(session, item, partial(self._hub_event, session, item, now))
        return actions

    def _hub_event(self, session: Session, item: ChainEvent, now: float) -> list[ChainAction]:
        if item.name in ("AccurateContribution", "FaultyContribution"):
            worker = str(item.args["worker"])
            event = ScoreChanged(now=now, worker=worker, score=int(item.args["score"]))
            self.engine.worker_fact(session, event, worker)
            return []
        convert = self._hub_events.get(item.name)
        if convert is None or _vote_known(session, item):
            return []
        return self.engine.chain_fact(session, convert(item, now), bytes(item.args["taskid"]))

    def _consensus(self, item: ChainEvent, now: float) -> Event:
        return ConsensusReached(
            now=now,
            taskid=bytes(item.args["taskid"]),
            consensus=bytes(item.args["consensus"]),
            chain_now=self.chain.timestamp_of(item.block_number),
        )


def guarded(
    session: Session, item: ChainEvent, apply: Callable[[], list[ChainAction]]
) -> list[ChainAction]:
    """Apply one chain fact in a savepoint. A fact the transition tables refuse is a bug of
    the tables, since the chain is the truth: it is logged with the task's story and
    skipped, so that one task cannot stop the whole pool from following the chain."""
    try:
        with session.begin_nested():
            return apply()
    except InvalidTransition as error:
        _log.error("%s of block %d skipped: %s", item.name, item.block_number, error)
        return []


def _vote_known(session: Session, item: ChainEvent) -> bool:
    """Whether this is a contribution or a reveal the state holds already (a worker's
    report brought it first): the machine would ignore it, so the task is not even loaded."""
    if item.name not in ("TaskContribute", "TaskReveal"):
        return False
    key = (hex32(bytes(item.args["taskid"])), str(item.args["worker"]))
    row = session.get(ReplicateRow, key)
    if row is None:
        return False
    if item.name == "TaskContribute":
        return row.result_hash is not None
    return row.state == "revealed"


def _contributed(item: ChainEvent, now: float) -> Event:
    return ReplicateContributed(
        now=now,
        taskid=bytes(item.args["taskid"]),
        worker=str(item.args["worker"]),
        result_hash=bytes(item.args["result_hash"]),
        weight=int(item.args["weight"]),
    )


def _revealed(item: ChainEvent, now: float) -> Event:
    return ReplicateRevealed(
        now=now,
        taskid=bytes(item.args["taskid"]),
        worker=str(item.args["worker"]),
        digest=bytes(item.args["result_digest"]),
    )


def _reopened(item: ChainEvent, now: float) -> Event:
    return TaskReopened(
        now=now,
        taskid=bytes(item.args["taskid"]),
        contribution_deadline=int(item.args["contribution_deadline"]),
    )


def _finalized(item: ChainEvent, now: float) -> Event:
    results = bytes(item.args["results"]).decode(errors="replace")
    return TaskFinalized(now=now, taskid=bytes(item.args["taskid"]), results=results)


def _claimed(item: ChainEvent, now: float) -> Event:
    return TaskClaimed(now=now, taskid=bytes(item.args["taskid"]))
