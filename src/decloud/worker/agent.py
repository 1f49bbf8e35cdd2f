"""The worker's loop: join the scheduler, resume what the journal holds, pull work while a
slot is free, ping on a timer, and drain on request.

Threads: the loop itself (pulls), one pinger, and one driver per replicate. A driver carries
its replicate's instructions out one at a time; a replicate waiting for a consensus holds no
slot, so the worker computes the next one meanwhile, as the scheduler expects (it counts a
worker busy until its vote is on-chain).

Draining (`drain`, on the first SIGTERM): no more pulls; every replicate goes on to its end,
for at most `drain_timeout_s`; then `run` returns. Stopping (`stop`, a second signal, or the
drain's timeout): drivers end after their current instruction, and what is left is in the
journal, resumed at the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial

from decloud.scheduler.schemas import CapabilitiesBody
from decloud.worker.client import SchedulerClient, SchedulerError, SchedulerUnavailable
from decloud.worker.journal import Journal, encode
from decloud.worker.shell import Shell, TryAgain
from decloud.worker.state import (
    BUSY,
    FINAL,
    Event,
    Instruction,
    ReplicateMachine,
    ReplicateState,
    Report,
    ReportFailure,
    Withdrawn,
)

_log = logging.getLogger(__name__)
BACKOFF_S = (0.5, 30.0)
"""First and longest wait before trying an instruction, or the scheduler, again."""
STOP_GRACE_S = 10.0
"""How long `run` waits for drivers once told to stop (a running app cannot be interrupted:
it ends at its own wall-time limit)."""


def _short(taskid: bytes) -> str:
    return "0x" + taskid.hex()[:12]


class ReplicateDriver:
    """Carries one replicate through its machine, in its own thread: each event is handled
    and its change persisted before the instructions it calls for are carried out."""

    def __init__(
        self,
        machine: ReplicateMachine,
        shell: Shell,
        journal: Journal,
        stopping: threading.Event,
        *,
        pulled_at: float,
        on_change: Callable[[ReplicateDriver, bool], None],
    ) -> None:
        self.machine = machine
        self.pulled_at = pulled_at
        """Monotonic time of the pull (0 for a resumed replicate): a ping sent before it
        cannot know the replicate."""
        self._shell = shell
        self._journal = journal
        self._stopping = stopping
        self._on_change = on_change
        self._lock = threading.Lock()
        self._queue: deque[Instruction] = deque(machine.resume())
        self.thread = threading.Thread(
            target=self._run, name=f"replicate-{_short(machine.taskid)}", daemon=True
        )

    @property
    def state(self) -> ReplicateState:
        return self.machine.state

    def deliver(self, event: Event) -> None:
        """Hand an event to the machine (from any thread). Reaching a final state replaces
        the instructions still pending: they were for a replicate that is over."""
        with self._lock:
            record = self.machine.record
            before = encode(record)
            instructions = self.machine.handle(event)
            self.machine.validate()
            if encode(record) != before:
                self._journal.save(record)
            if self.machine.state in FINAL and instructions:
                self._queue.clear()
            self._queue.extend(instructions)
        self._on_change(self, False)

    def _run(self) -> None:
        try:
            while (instruction := self._next()) is not None:
                if isinstance(instruction, Report | ReportFailure):
                    self._report(instruction)
                    continue
                event = self._carry_out(instruction)
                if event is not None:
                    self.deliver(event)
            if self.machine.state in FINAL and not self._stopping.is_set():
                self._journal.finish(self.machine.record)
                self._log_end()
        except Exception:
            _log.exception("replicate %s: the worker gave it up", _short(self.machine.taskid))
        finally:
            self._on_change(self, True)

    def _next(self) -> Instruction | None:
        with self._lock:
            if self._stopping.is_set() or not self._queue:
                return None
            return self._queue.popleft()

    def _report(self, instruction: Report | ReportFailure) -> None:
        """Progress goes out in the background; a failure is sent before the record is
        archived, since it is all the requester will learn of the cause."""
        sent = self._shell.report(instruction)
        if isinstance(instruction, ReportFailure):
            sent.result()
        else:
            sent.add_done_callback(partial(self._answered, instruction))

    def _answered(self, report: Report, sent: Future[Event | None]) -> None:
        try:
            event = sent.result()
            if event is not None:
                self.deliver(event)
            elif report.step == "contributed":
                # The scheduler counts the vote now, so it counts the slot free: a pull
                # made when the vote was mined may have been refused for want of it.
                self._on_change(self, False)
        except Exception:
            _log.exception("replicate %s: a report's answer", _short(self.machine.taskid))

    def _carry_out(self, instruction: Instruction) -> Event | None:
        """The instruction's event; tried again, with growing waits, until it can be
        carried out or the worker stops (None)."""
        wait, longest = BACKOFF_S
        assignment = self.machine.record.assignment
        while not self._stopping.is_set():
            try:
                return self._shell.execute(assignment, instruction)
            except TryAgain as error:
                _log.warning(
                    "%s: %s; trying again in %g s", type(instruction).__name__, error, wait
                )
            except Exception:
                _log.exception("%s failed; trying again in %g s", type(instruction).__name__, wait)
            self._stopping.wait(wait)
            wait = min(wait * 2, longest)
        return None

    def _log_end(self) -> None:
        record = self.machine.record
        level = logging.WARNING if record.state == "failed" else logging.INFO
        detail = f" ({record.cause}: {record.message})" if record.cause else ""
        if record.state == "dropped":
            detail = f" ({record.message})"
        _log.log(level, "replicate %s %s%s", _short(record.taskid), record.state, detail)


@dataclass(frozen=True)
class LoopSettings:
    slots: int
    pull_interval_s: float
    drain_timeout_s: float
    keep_finished_s: float


class Worker:
    """One worker agent; `run` blocks until it has drained or was stopped."""

    def __init__(
        self,
        *,
        shell: Shell,
        scheduler: SchedulerClient,
        journal: Journal,
        capabilities: CapabilitiesBody,
        settings: LoopSettings,
        stopping: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.shell = shell
        self.scheduler = scheduler
        self.journal = journal
        self.capabilities = capabilities
        self.settings = settings
        self._stopping = stopping
        self._clock = clock
        self._draining = threading.Event()
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._drivers: dict[bytes, ReplicateDriver] = {}
        self._drivers_lock = threading.Lock()
        self._ping_interval_s = 10.0

    def __repr__(self) -> str:
        return f"Worker({self.scheduler.address})"

    # --- control ----------------------------------------------------------------------------

    def drain(self) -> None:
        """Take no more work; finish what is in hand, then let `run` return."""
        self._draining.set()
        self._wake.set()

    def stop(self) -> None:
        """End after the current instruction of each replicate; the journal keeps the rest."""
        self._stopping.set()
        self.drain()

    def close(self) -> None:
        """Release the connections, once `run` has returned."""
        self.shell.close()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def states(self) -> dict[bytes, ReplicateState]:
        """What each replicate in hand is doing."""
        with self._drivers_lock:
            return {taskid: driver.state for taskid, driver in self._drivers.items()}

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        self.journal.prune(self._clock(), self.settings.keep_finished_s)
        for record in self.journal.active():
            _log.info("resuming replicate %s (%s)", _short(record.taskid), record.state)
            self._start(ReplicateMachine(record), pulled_at=0.0)
        pinger = threading.Thread(target=self._ping_loop, name="worker-ping", daemon=True)
        try:
            if self._join():
                pinger.start()
                self._pull_loop()
            self._wait_for_drivers()
        finally:
            self._closing.set()
            if pinger.is_alive():
                pinger.join(timeout=STOP_GRACE_S)

    def _join(self) -> bool:
        """Log in and register, trying again while the scheduler is out of reach; False if
        told to drain meanwhile."""
        wait, longest = BACKOFF_S
        while not self._draining.is_set():
            try:
                answer = self.scheduler.join(self.capabilities)
            except SchedulerUnavailable as error:
                _log.warning("%s; trying again in %g s", error, wait)
                self._draining.wait(wait)
                wait = min(wait * 2, longest)
                continue
            self._ping_interval_s = answer.ping_interval_s
            _log.info("joined workerpool %s as %s", self.scheduler.workerpool, answer.worker)
            return True
        return False

    def _pull_loop(self) -> None:
        while not self._draining.is_set():
            self._wake.clear()
            if self._busy() < self.settings.slots and self._pull():
                continue  # another slot may be free: ask again at once
            self._wake.wait(self.settings.pull_interval_s)

    def _pull(self) -> bool:
        """Ask for a replicate and start it; whether one came."""
        try:
            assignment = self.scheduler.pull()
        except SchedulerError as error:
            _log.warning("pull: %s", error)
            return False
        if assignment is None:
            return False
        machine = ReplicateMachine.pulled(assignment, self._clock())
        if self.journal.knows(machine.taskid):
            _log.warning("pull: replicate %s is known already, ignored", _short(machine.taskid))
            return False
        self.journal.save(machine.record)
        _log.info("pulled replicate %s", _short(machine.taskid))
        self._start(machine, pulled_at=time.monotonic())
        return True

    def _start(self, machine: ReplicateMachine, *, pulled_at: float) -> None:
        driver = ReplicateDriver(
            machine,
            self.shell,
            self.journal,
            self._stopping,
            pulled_at=pulled_at,
            on_change=self._changed,
        )
        with self._drivers_lock:
            self._drivers[machine.taskid] = driver
        driver.thread.start()

    def _changed(self, driver: ReplicateDriver, ended: bool) -> None:
        """A replicate moved or ended: a slot may be free."""
        if ended:
            with self._drivers_lock:
                self._drivers.pop(driver.machine.taskid, None)
        self._wake.set()

    def _busy(self) -> int:
        with self._drivers_lock:
            return sum(1 for driver in self._drivers.values() if driver.state in BUSY)

    def _wait_for_drivers(self) -> None:
        """Let every replicate end, within the drain timeout; then stop what is left."""
        grace = STOP_GRACE_S if self._stopping.is_set() else self.settings.drain_timeout_s
        if not self._join_drivers(time.monotonic() + grace):
            _log.warning("replicates left for the next start: %s", self._unfinished())
            self._stopping.set()
            self._join_drivers(time.monotonic() + STOP_GRACE_S)

    def _join_drivers(self, deadline: float) -> bool:
        """Wait until every driver ended or `deadline`; whether they all ended."""
        with self._drivers_lock:
            drivers = list(self._drivers.values())
        for driver in drivers:
            driver.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(driver.thread.is_alive() for driver in drivers)

    def _unfinished(self) -> str:
        states = self.states()
        return ", ".join(f"{_short(t)} ({s})" for t, s in states.items()) or "none"

    # --- pings ------------------------------------------------------------------------------

    def _ping_loop(self) -> None:
        while not self._closing.wait(self._ping_interval_s):
            self._ping()

    def _ping(self) -> None:
        """Stay alive; replicates the scheduler no longer lists are withdrawn (the machine
        gives up only those not voted yet)."""
        sent_at = time.monotonic()
        try:
            answer = self.scheduler.ping()
        except SchedulerError as error:
            _log.warning("ping: %s", error)
            return
        expected = {brief.taskid.lower() for brief in answer.replicates}
        with self._drivers_lock:
            drivers = list(self._drivers.values())
        for driver in drivers:
            if driver.pulled_at < sent_at and f"0x{driver.machine.taskid.hex()}" not in expected:
                try:
                    driver.deliver(
                        Withdrawn(
                            self._clock(), "the scheduler no longer lists it (lost or cancelled)"
                        )
                    )
                except Exception:
                    _log.exception("withdrawing replicate %s", _short(driver.machine.taskid))
