"""One scheduler instance: the loop that follows the chain, lets time pass and sends the
transactions the state machine decided, beside the HTTP API.

Every round polls the chain into the state, ticks the clock over due tasks, then hands the
finalize, reopen and claim transactions those events and the API's reports called for to a
few sender threads, so that the next round need not wait for them to be mined (`step`, for
tests, waits). A transaction the chain refuses goes back to the machine as `ActionFailed`,
which decides again after a delay; one sent but not yet seen on-chain when the scheduler
stops is decided again after its restart, since the decision is in the database: nothing
depends on this process's memory.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from decloud.chain.deploy import Deployment
from decloud.chain.errors import ChainError
from decloud.chain.registries import WorkerpoolRegistry
from decloud.scheduler.chain import SchedulerChain, deal_task
from decloud.scheduler.engine import ChainAction, Engine, write_transaction
from decloud.scheduler.metrics import SchedulerMetrics
from decloud.scheduler.migrations import migrate_scheduler
from decloud.scheduler.settings import SchedulerSettings
from decloud.scheduler.state import ActionFailed, Claim, Finalize, Reopen, short_id
from decloud.scheduler.store import hex32, task_with_deal
from decloud.scheduler.watcher import ChainWatcher
from decloud.service.db import Database

_log = logging.getLogger(__name__)
SENDERS = 4
"""Transactions sent at once: the owner's nonces keep their order, and the waits for
their receipts overlap."""


class SchedulerConfigError(RuntimeError):
    """The scheduler cannot start with these settings."""


class Scheduler:
    """A scheduler instance: its engine, chain, watcher and metrics."""

    def __init__(
        self, settings: SchedulerSettings, database: Database, chain: SchedulerChain
    ) -> None:
        self.settings = settings
        self.database = database
        self.chain = chain
        self.policy = settings.policy()
        self.engine = Engine(self.policy, chain.authorize)
        self.watcher = ChainWatcher(
            chain,
            self.engine,
            settings.workerpool,
            # Nothing of the protocol precedes its deployment.
            start_block=settings.start_block or chain.deployment.deployed_at,
            confirmations=settings.confirmations,
        )
        self.metrics = SchedulerMetrics(database, self.policy)
        self._queued: list[ChainAction] = []
        self._in_flight: set[tuple[type, bytes]] = set()
        self._polled_head: bytes | None = None
        self._senders = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="scheduler-tx")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def submit(self, actions: list[ChainAction]) -> None:
        """Transactions decided outside the loop (by the API), sent on its next round."""
        if actions:
            with self._lock:
                self._queued += actions
            self._wake.set()

    def wake(self) -> None:
        """Start the next round now: a worker reported a transaction the chain has mined."""
        self._wake.set()

    def step(self) -> None:
        """One round: follow the chain, let time pass, send what was decided; returns once
        the round's transactions are mined or refused."""
        for sent in self._round():
            sent.result()

    def _round(self) -> list[Future[None]]:
        """Follow the chain and let time pass; the transactions decided are handed to the
        senders, and the round does not wait for them: the watcher keeps following the
        chain (and freeing workers' slots) while a batch of finalizations is mined."""
        now = time.time()
        head, chain_now = self.chain.head()
        actions: list[ChainAction] = []
        # The same head block, hence no new event (a reorganization changes the head's
        # hash): the watcher's reads and its write lock are spared.
        if head != self._polled_head:
            with write_transaction(self.database) as session:
                actions += self.watcher.poll(session, now)
            self._polled_head = head
        with write_transaction(self.database) as session:
            actions += self.engine.tick(session, now, chain_now)
        with self._lock:
            actions += self._queued
            self._queued = []
        return [sent for action in actions if (sent := self._send(action)) is not None]

    def _send(self, action: ChainAction) -> Future[None] | None:
        """Send on a sender thread, unless the same action is being sent already."""
        key = (type(action), action.taskid)
        with self._lock:
            if key in self._in_flight:
                return None
            self._in_flight.add(key)
        return self._senders.submit(self._sent_once, action, key)

    def _sent_once(self, action: ChainAction, key: tuple[type, bytes]) -> None:
        try:
            self._act(action)
        except Exception:
            # The decision stays in the database: the machine's timers decide again.
            _log.exception("%s of task %s failed", type(action).__name__, short_id(action.taskid))
        finally:
            with self._lock:
                self._in_flight.discard(key)

    def _act(self, action: ChainAction) -> None:
        kind: Literal["finalize", "reopen", "claim"]
        with self.database.transaction() as session:
            found = task_with_deal(session, hex32(action.taskid))
        if found is None:
            return
        task = deal_task(found[1], found[0].task_index)
        try:
            match action:
                case Finalize():
                    kind = "finalize"
                    self.chain.finalize(
                        task, list(action.contributors), action.results, action.callback_data
                    )
                case Reopen():
                    kind = "reopen"
                    self.chain.reopen(task, action.consensus, list(action.supporters))
                case Claim():
                    kind = "claim"
                    self.chain.claim(task, list(action.contributors))
        except ChainError as error:
            self.metrics.actions.labels(kind, "refused").inc()
            _log.warning("%s of task %s refused: %s", kind, short_id(action.taskid), error)
            refused = ActionFailed(
                now=time.time(), taskid=action.taskid, action=kind, reason=str(error)
            )
            with write_transaction(self.database) as session:
                self.engine.on_task(session, refused, action.taskid)
        else:
            self.metrics.actions.labels(kind, "mined").inc()

    def run(self) -> None:
        """Run rounds until `stop`; a node or database that fails is retried, not fatal."""
        while not self._stopping.is_set():
            # Cleared before the round, so that a wake-up during it starts the next at once.
            self._wake.clear()
            try:
                self._round()
            except ChainError as error:
                _log.warning("scheduler round: %s; retrying", error)
            except Exception:
                _log.exception("scheduler round failed; retrying")
            self._wake.wait(self.settings.poll_interval_s)
        self._senders.shutdown(wait=True)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()


def read_key(path: Path) -> bytes:
    """The private key in a file (hex, with or without 0x)."""
    try:
        text = path.read_text().strip()
        key = bytes.fromhex(text.removeprefix("0x"))
    except (OSError, ValueError) as error:
        # The error text could quote the file: say only what is wrong with it.
        raise SchedulerConfigError(f"owner key file {path}: not readable as a hex key") from error
    if len(key) != 32:
        raise SchedulerConfigError(f"owner key file {path}: a key has 32 bytes")
    return key


def build_scheduler(settings: SchedulerSettings) -> Scheduler:
    """A scheduler for these settings: database migrated, chain and ownership checked."""
    if not settings.deployment.exists():
        raise SchedulerConfigError(
            f"deployment file {settings.deployment} not found: deploy the protocol first, "
            "or set [scheduler] deployment (DECLOUD_SCHEDULER_DEPLOYMENT)"
        )
    deployment = Deployment.load(settings.deployment)
    chain = SchedulerChain(settings.rpc_url, deployment, read_key(settings.owner_key_file))
    if chain.client.chain_id != deployment.chain_id:
        raise SchedulerConfigError(
            f"the node of [scheduler] rpc_url serves chain {chain.client.chain_id}, but the "
            f"deployment {settings.deployment} is on chain {deployment.chain_id}"
        )
    pools = WorkerpoolRegistry(chain.client, deployment.workerpool_registry)
    owner = pools.owner_of(settings.workerpool)
    if owner != chain.owner:
        raise SchedulerConfigError(
            f"workerpool {settings.workerpool} is owned by {owner}, not by the key of "
            f"[scheduler] owner_key_file ({chain.owner})"
        )
    database = Database(settings.database_url)
    migrate_scheduler(database)
    return Scheduler(settings, database, chain)
