"""Replicates made up for tests that need no chain: an assignment as the scheduler would
hand it out, and the events that carry its machine to each state."""

from __future__ import annotations

from decloud.protocol.hub import TASK_ACTIVE, TASK_REVEALING
from decloud.protocol.ids import task_id
from decloud.scheduler.schemas import WorkAssignment
from decloud.worker.state import (
    ChainChecked,
    Computed,
    Contributed,
    Event,
    Fetched,
    ReplicateMachine,
    ReplicateState,
    Revealed,
    TaskSeen,
    Uploaded,
)

DEALID = bytes.fromhex("d1" * 32)
TASKID = task_id(DEALID, 0)
START = 1_000_000
T = 300
CONTRIBUTION_DEADLINE = START + 7 * T
FINAL_DEADLINE = START + 10 * T
STAKE = 90
DIGEST = b"\x42" * 32
ZERO = "0x" + "00" * 20
POOL = "0x00000000000000000000000000000000000000F0"


def assignment(*, stake: int = STAKE, params: str = '{"iexec_args":"32 32 64"}') -> WorkAssignment:
    deal = {
        "app": "0x00000000000000000000000000000000000000A0", "app_owner": ZERO,
        "app_price": "1", "dataset": ZERO, "dataset_owner": ZERO, "dataset_price": "0",
        "workerpool": POOL, "workerpool_owner": ZERO, "workerpool_price": "3",
        "requester": ZERO, "beneficiary": ZERO, "callback": ZERO, "category": "0",
        "time_ref": str(T), "start_time": str(START), "trust": "3", "tag": "0x" + "00" * 32,
        "bot_first": "0", "bot_size": "1", "worker_stake": str(stake),
        "scheduler_reward_ratio": "1",
    }  # fmt: skip
    return WorkAssignment.model_validate(
        {
            "taskid": "0x" + TASKID.hex(),
            "dealid": "0x" + DEALID.hex(),
            "index": 0,
            "deal": deal,
            "params": params,
            "app": {
                "address": "0x00000000000000000000000000000000000000A0",
                "type": "WASM",
                "multiaddr": "file:///apps/app.wasm",
                "checksum": "0x" + "11" * 32,
                "mrenclave": "",
            },
            "dataset": None,
            "authorization": "0x" + "ab" * 65,
            "enclave_challenge": ZERO,
            "contribution_deadline": CONTRIBUTION_DEADLINE,
            "final_deadline": FINAL_DEADLINE,
        }
    )


def checked(now: float = 1.0, *, free: int = 10**6, status: int = TASK_ACTIVE) -> ChainChecked:
    return ChainChecked(
        now=now,
        chain_now=START + 10,
        status=status,
        contribution_deadline=CONTRIBUTION_DEADLINE,
        free_balance=free,
        already_voted=False,
    )


def seen(
    *, status: int = TASK_REVEALING, ours: bool = True, chain_now: int = START + 20
) -> TaskSeen:
    return TaskSeen(
        now=5.0,
        chain_now=chain_now,
        status=status,
        vote_is_consensus=ours,
        reveal_deadline=START + 20 + 2 * T,
    )


PATH: list[tuple[ReplicateState, Event]] = [
    ("downloading", checked()),
    ("running", Fetched(2.0, "/cache/app.wasm", None, ())),
    ("contributing", Computed(3.0, DIGEST, b"")),
    ("contributed", Contributed(4.0, "0x" + "c0" * 32)),
    ("revealing", seen()),
    ("uploading", Revealed(6.0, "0x" + "e0" * 32)),
    ("done", Uploaded(7.0, "/ipfs/bafyresult")),
]
"""The events of a replicate that goes all the way, and the state each one leads to."""


def machine_in(state: ReplicateState) -> ReplicateMachine:
    """A fresh machine carried along PATH up to `state`."""
    machine = ReplicateMachine.pulled(assignment(), 0.0)
    for target, event in PATH:
        if machine.state == state:
            break
        machine.handle(event)
        assert machine.state == target
    assert machine.state == state, f"{state} is not on the path"
    return machine
