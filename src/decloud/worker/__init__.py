"""The worker agent: runs replicates for a workerpool (DESIGN.md sections 1 and 3, "Worker").

It pulls a replicate from the pool's scheduler, checks on-chain that it may still vote,
downloads and verifies the app and dataset, runs the app in its runtime, computes the result
digest, votes with its stake, waits for the consensus, reveals, uploads the result to the
result store and reports each step; it resumes after its own restart and drains on SIGTERM.

- `state`: a replicate's lifecycle as a declared state machine without I/O;
- `journal`: the records of the replicates, one JSON file each, written atomically;
- `shell`, `fetch`, `chain`, `client`: the I/O the machine's instructions call for;
- `agent`: the loop (pull, ping, drive each replicate, drain);
- `settings`, `service`, `cli`: `decloud worker run`.

docs/worker.md describes the whole.
"""

from decloud.worker.agent import Worker
from decloud.worker.service import WorkerConfigError, build_worker
from decloud.worker.settings import WorkerSettings, load_worker_settings
from decloud.worker.state import ReplicateMachine, ReplicateRecord

__all__ = [
    "ReplicateMachine",
    "ReplicateRecord",
    "Worker",
    "WorkerConfigError",
    "WorkerSettings",
    "build_worker",
    "load_worker_settings",
]
