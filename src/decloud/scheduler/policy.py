"""Replication policy: how many replicates a task still needs, and which worker gets one.

Pure functions over numbers, no clock and no I/O, so that every rule can be tested by itself.

How many: the hub accepts a result once its group of votes wins under Sarmenta credibility
(`decloud.protocol.hub.consensus_reached`), where each vote weighs `worker_weight(score)`.
A replicate that was handed out but has not voted yet is counted *optimistically*: it is
assumed to join the largest group, as if every worker were honest. Only when even that would
not reach consensus does the task get more replicates, each assumed to weigh what the worker
asking for work weighs; the hub's cap of MAX_CONTRIBUTORS votes per task bounds the count.
Fresh workers (weight 2) thus need 1 replicate at trust 1, 2 at trust 3, 3 at trust 5 and 7 at
trust 100; one reputed worker (score >= 12) is enough up to trust 3.

Who: among the workers that asked for work recently, idle before busy, reliable before
flaky, reputed before fresh, and least recently served first, so that equal workers take
turns. A worker is served only while the work waiting is more than the better-ranked workers
can take.

When a replicate is given up: its worker missed its pings (lost), or it made no progress in
time (stalled). It then no longer counts as pending, so the count above asks for a new one.

Constants (defaults of `Policy`)

| name                  | default | meaning                                                      |
|-----------------------|---------|--------------------------------------------------------------|
| lost_after_s          | 30      | a worker silent this long is lost, with its replicates       |
| start_timeout_s       | 60      | an assigned replicate must be started within this            |
| progress_timeout_s    | None    | a started replicate must vote within this (None: T + 60 s)   |
| ready_window_s        | 5       | a worker that pulled this recently is waiting for work       |
| upload_wait_s         | 30      | once every winner revealed, wait this long for the results   |
| action_retry_s        | 15      | a refused finalize, reopen or claim is retried after this    |
| assign_cutoff_s       | 60      | no replicate starts this close to the contribution deadline  |
| final_margin_s        | 60      | this close to the final deadline, finalize without waiting   |
| max_failed_replicates | 3       | a task whose replicates failed this often gets no more       |
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from decloud.protocol.hub import (
    MAX_CONTRIBUTORS,
    consensus_reached,
    grown_group_weight,
    worker_weight,
)

__all__ = [
    "Policy",
    "Standing",
    "group_weight",
    "rank",
    "replicates_needed",
    "serves",
    "worker_weight",
]


@dataclass(frozen=True)
class Policy:
    """The scheduler's tunable rules; see the module's table."""

    lost_after_s: float = 30.0
    start_timeout_s: float = 60.0
    progress_timeout_s: float | None = None
    ready_window_s: float = 5.0
    upload_wait_s: float = 30.0
    action_retry_s: float = 15.0
    assign_cutoff_s: int = 60
    final_margin_s: int = 60
    max_failed_replicates: int = 3

    def progress_timeout(self, time_ref: int) -> float:
        """How long a started replicate may run without contributing: the category's T
        bounds an app's run, plus a minute to download and send the contribution."""
        if self.progress_timeout_s is not None:
            return self.progress_timeout_s
        return time_ref + 60.0


def group_weight(weights: Iterable[int]) -> int:
    """A group's weight as the hub computes it: the product of its voters' weights,
    saturated (0 for an empty group)."""
    weight = 0
    for voter in weights:
        weight = grown_group_weight(weight, voter)
    return weight


def replicates_needed(
    trust: int,
    groups: Mapping[bytes, Sequence[int]],
    pending: Sequence[int],
    newcomer: int,
    contributions: int,
) -> int:
    """How many more replicates a task needs for consensus to be reachable.

    `groups` maps each result hash the hub still counts to its voters' weights; `pending`
    are the weights of replicates handed out that have not voted; `newcomer` is the weight
    assumed for each new replicate; `contributions` counts every vote the task ever had
    (the hub's cap counts them all, even those a reopen discarded).
    """
    weights = {result: group_weight(voters) for result, voters in groups.items()}
    largest = max(weights.values(), default=0)
    others = sum(weights.values()) - largest
    weight = largest
    for voter in pending:
        weight = grown_group_weight(weight, voter)
    room = max(MAX_CONTRIBUTORS - contributions - len(pending), 0)
    needed = 0
    while needed < room and not consensus_reached(weight, 1 + others + weight, trust):
        weight = grown_group_weight(weight, newcomer)
        needed += 1
    return needed


@dataclass(frozen=True)
class Standing:
    """How a worker compares to others when work is handed out."""

    address: str
    active: int
    """Replicates it holds that are not finished (assigned or running)."""
    slots: int
    """How many replicates it runs at once."""
    score: int
    successes: int
    """Replicates it revealed."""
    failures: int
    """Replicates it failed, lost or got wrong."""
    last_assigned: float | None

    @property
    def load(self) -> float:
        return self.active / self.slots

    @property
    def unreliability(self) -> float:
        """Share of its finished replicates that went wrong, with one imaginary success and
        one imaginary failure so that a new worker starts in the middle (Laplace's rule)."""
        return (self.failures + 1) / (self.successes + self.failures + 2)


def rank(standings: Iterable[Standing]) -> list[Standing]:
    """Best first: idle, then reliable, then reputed, then the one that waited longest."""
    return sorted(
        standings,
        key=lambda s: (s.load, s.unreliability, -s.score, s.last_assigned or 0.0, s.address),
    )


def serves(puller: str, ready: Iterable[Standing], demand: int) -> bool:
    """Whether the worker `puller` gets work now, given the workers waiting for work
    (`ready`, which includes it) and the number of replicates waiting to be handed out:
    yes while fewer better-ranked workers wait than there is work."""
    for better, standing in enumerate(rank(ready)):
        if standing.address == puller:
            return better < demand
    return False
