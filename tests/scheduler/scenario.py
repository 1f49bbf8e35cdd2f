"""A scheduler state machine under test: a clock, a deal, workers, and the events that move
them, with `validate_state` checked after every event."""

from __future__ import annotations

from dataclasses import dataclass, field

from decloud.protocol.ids import result_hash, task_id
from decloud.scheduler.policy import Policy
from decloud.scheduler.state import (
    Assign,
    Capabilities,
    CapabilitiesRegistered,
    ConsensusReached,
    DealMatched,
    Event,
    Instruction,
    ReplicateContributed,
    ReplicateRevealed,
    Requirements,
    SchedulerState,
    Terms,
    Tick,
    WorkerLoggedIn,
    WorkPulled,
)

START = 1_000_000
"""Block time when the deal was matched."""
T = 300
DEALID = bytes.fromhex("d1" * 32)
WASM = Capabilities(cores=2, memory_mb=2048, runtimes=frozenset({"WASM"}))
RIGHT = b"\x11" * 32
WRONG = b"\x22" * 32


def worker_address(number: int) -> str:
    return f"0x{number:040X}"


@dataclass
class Scenario:
    policy: Policy = field(default_factory=Policy)
    now: float = 1_000.0
    chain_now: int = START
    state: SchedulerState = field(init=False)
    instructions: list[Instruction] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = SchedulerState(self.policy)

    def send(self, event: Event) -> list[Instruction]:
        instructions = self.state.handle(event)
        self.state.validate_state()
        self.instructions += instructions
        return instructions

    def later(self, seconds: float) -> None:
        self.now += seconds
        self.chain_now += int(seconds)

    def deal(self, trust: int, size: int = 1, runtime: str = "WASM") -> list[bytes]:
        terms = Terms(DEALID, trust, T, START, Requirements(runtime))
        self.send(DealMatched(now=self.now, terms=terms, first_index=0, size=size))
        return [task_id(DEALID, index) for index in range(size)]

    def worker(self, number: int, score: int = 0, capabilities: Capabilities = WASM) -> str:
        address = worker_address(number)
        self.send(WorkerLoggedIn(now=self.now, worker=address, score=score))
        self.send(CapabilitiesRegistered(now=self.now, worker=address, capabilities=capabilities))
        return address

    def pull(self, worker: str) -> bytes | None:
        """The task the worker got, None if none."""
        instructions = self.send(WorkPulled(now=self.now, worker=worker, chain_now=self.chain_now))
        assigned = [i.taskid for i in instructions if isinstance(i, Assign)]
        return assigned[0] if assigned else None

    def tick(self) -> list[Instruction]:
        return self.send(Tick(now=self.now, chain_now=self.chain_now))

    def contribute(
        self, taskid: bytes, worker: str, digest: bytes = RIGHT, weight: int = 2
    ) -> None:
        self.send(
            ReplicateContributed(
                now=self.now,
                taskid=taskid,
                worker=worker,
                result_hash=result_hash(taskid, digest),
                weight=weight,
            )
        )

    def consensus(self, taskid: bytes, digest: bytes = RIGHT) -> None:
        self.send(
            ConsensusReached(
                now=self.now,
                taskid=taskid,
                consensus=result_hash(taskid, digest),
                chain_now=self.chain_now,
            )
        )

    def reveal(self, taskid: bytes, worker: str, digest: bytes = RIGHT) -> list[Instruction]:
        return self.send(
            ReplicateRevealed(now=self.now, taskid=taskid, worker=worker, digest=digest)
        )
