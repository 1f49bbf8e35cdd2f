"""Where a deal or a task stands: the chain's word, and the scheduler's when it answers.

The chain knows what is settled (a task's status, votes, deadlines); the workerpool's
scheduler knows what happens off-chain (which worker runs which replicate, and why one
failed, with what to do about it). A report holds both; the scheduler's part is None, with
a note saying why, when the scheduler is not configured, not reachable, or does not know
the task (yet): the chain's part is always there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from decloud.chain.hub import TaskView
from decloud.protocol.hub import (
    CONTRIBUTION_DEADLINE_RATIO,
    FINAL_DEADLINE_RATIO,
    TASK_ACTIVE,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_REVEALING,
    TASK_UNSET,
    Deal,
)
from decloud.protocol.ids import task_id
from decloud.scheduler.schemas import DealStatus, ReplicateStatus, TaskStatus
from decloud.scheduler.state import TASK_DONE
from decloud.sdk.connection import Connection
from decloud.sdk.errors import UnknownResource, chain_errors

CHAIN_STATUS = {
    TASK_UNSET: "unset",
    TASK_ACTIVE: "active",
    TASK_REVEALING: "revealing",
    TASK_COMPLETED: "completed",
    TASK_FAILED: "failed",
}
"""Names of the hub's task statuses; `unset`: nobody contributed yet (the first
contribution initializes a task)."""
CHAIN_DONE = frozenset({"completed", "failed"})
FAILED_REPLICATES = frozenset({"failed", "lost", "rejected"})
"""Replicates that ended without a result; each carries a cause and advice."""
MAX_LISTED_TASKS = 100
"""A deal lists the state of its first tasks only: a bag can hold thousands."""
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


class SchedulerUnavailable(Exception):
    """The scheduler did not answer, or answered something else than its API."""


class SchedulerView:
    """The requester side of a scheduler's HTTP API: task and deal states."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url.rstrip("/") + "/v1", timeout=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    def task(self, taskid: bytes) -> TaskStatus | None:
        """The task's replicates, causes and story; None if the scheduler does not know it."""
        return self._get(f"/tasks/0x{taskid.hex()}", TaskStatus)

    def deal(self, dealid: bytes) -> DealStatus | None:
        """The deal's tasks and their states; None if the scheduler does not know it."""
        return self._get(f"/deals/0x{dealid.hex()}", DealStatus)

    def _get(self, path: str, model: type[M]) -> M | None:
        try:
            answer = self._http.get(path)
        except httpx.HTTPError as error:
            raise SchedulerUnavailable(f"the scheduler at {self.url} is unreachable") from error
        if answer.status_code == 404:
            return None
        try:
            answer.raise_for_status()
            return model.model_validate(answer.json())
        except (httpx.HTTPStatusError, ValidationError, ValueError) as error:
            raise SchedulerUnavailable(
                f"the scheduler at {self.url} answered {answer.status_code} to GET {path}"
            ) from error


@dataclass(frozen=True)
class TaskReport:
    """A task as the chain and the scheduler see it."""

    taskid: bytes
    chain: TaskView
    scheduler: TaskStatus | None
    scheduler_note: str | None

    @property
    def chain_status(self) -> str:
        return CHAIN_STATUS.get(self.chain.status, str(self.chain.status))

    @property
    def state(self) -> str:
        """The most precise state known: the scheduler's, else the chain's."""
        settled = self.chain_status in CHAIN_DONE
        return self.chain_status if settled or self.scheduler is None else self.scheduler.state

    @property
    def done(self) -> bool:
        """Completed or failed for good (finalized or claimed on-chain)."""
        return self.chain_status in CHAIN_DONE or (
            self.scheduler is not None and self.scheduler.state in TASK_DONE
        )

    @property
    def failed_replicates(self) -> list[ReplicateStatus]:
        if self.scheduler is None:
            return []
        return [r for r in self.scheduler.replicates if r.state in FAILED_REPLICATES]

    def to_json(self) -> dict[str, Any]:
        return {
            "taskid": "0x" + self.taskid.hex(),
            "state": self.state,
            "done": self.done,
            "chain": {
                "status": self.chain_status,
                "contributors": self.chain.contributors,
                "reveals": self.chain.reveals,
                "winners": self.chain.winners,
                "contribution_deadline": self.chain.contribution_deadline,
                "reveal_deadline": self.chain.reveal_deadline,
            },
            "scheduler": None if self.scheduler is None else self.scheduler.model_dump(mode="json"),
            "scheduler_note": self.scheduler_note,
        }


@dataclass(frozen=True)
class DealTask:
    """One task of a deal: its id and states."""

    index: int
    taskid: bytes
    chain_status: str
    scheduler_state: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "taskid": "0x" + self.taskid.hex(),
            "chain_status": self.chain_status,
            "scheduler_state": self.scheduler_state,
        }


@dataclass(frozen=True)
class DealReport:
    """A deal's terms (from its DealCreated event), deadlines and tasks."""

    dealid: bytes
    deal: Deal
    params: str
    block_number: int
    tasks: list[DealTask]
    scheduler_note: str | None

    @property
    def contribution_deadline(self) -> int:
        return self.deal.start_time + CONTRIBUTION_DEADLINE_RATIO * self.deal.time_ref

    @property
    def final_deadline(self) -> int:
        return self.deal.start_time + FINAL_DEADLINE_RATIO * self.deal.time_ref

    def to_json(self) -> dict[str, Any]:
        return {
            "dealid": "0x" + self.dealid.hex(),
            "block_number": self.block_number,
            "params": self.params,
            "terms": deal_terms_json(self.deal),
            "task_price": str(self.deal.task_price),
            "contribution_deadline": self.contribution_deadline,
            "final_deadline": self.final_deadline,
            "tasks": [task.to_json() for task in self.tasks],
            "scheduler_note": self.scheduler_note,
        }


def deal_terms_json(deal: Deal) -> dict[str, Any]:
    """The deal's fields: amounts as decimal strings, bytes as 0x-hex, as in the APIs."""
    amounts = {"app_price", "dataset_price", "workerpool_price", "worker_stake"}
    terms: dict[str, Any] = {}
    for name, value in vars(deal).items():
        if isinstance(value, bytes):
            terms[name] = "0x" + value.hex()
        else:
            terms[name] = str(value) if name in amounts else value
    return terms


def task_report(
    connection: Connection, scheduler: SchedulerView | None, taskid: bytes
) -> TaskReport:
    with chain_errors():
        chain = connection.hub.task(taskid)
    status, note = _ask(scheduler, lambda view: view.task(taskid), "task")
    return TaskReport(taskid, chain, status, note)


def deal_report(
    connection: Connection, scheduler: SchedulerView | None, dealid: bytes
) -> DealReport:
    deal, params, block_number = _deal_created(connection, dealid)
    status, note = _ask(scheduler, lambda view: view.deal(dealid), "deal")
    states = {} if status is None else {t.index: t.state for t in status.tasks}
    tasks = []
    for index in deal.task_indexes()[:MAX_LISTED_TASKS]:
        taskid = task_id(dealid, index)
        with chain_errors():
            chain = connection.hub.task(taskid)
        name = CHAIN_STATUS.get(chain.status, str(chain.status))
        tasks.append(DealTask(index, taskid, name, states.get(index)))
    return DealReport(dealid, deal, params, block_number, tasks, note)


def _deal_created(connection: Connection, dealid: bytes) -> tuple[Deal, str, int]:
    """The deal's terms, from the DealCreated event the marketplace logged for it."""
    event = connection.hub.marketplace.events.DealCreated
    with chain_errors():
        logs = list(
            event.get_logs(
                argument_filters={"dealid": dealid},
                from_block=connection.config.contracts.deployed_at,
            )
        )
    if not logs:
        raise UnknownResource(
            f"no deal 0x{dealid.hex()} on this chain",
            "check the id: the matchOrders transaction's DealCreated event names it",
        )
    args = logs[0]["args"]
    return Deal.decode(bytes(args["deal"])), str(args["params"]), int(logs[0]["blockNumber"])


def _ask(
    scheduler: SchedulerView | None, question: Callable[[SchedulerView], R | None], what: str
) -> tuple[R | None, str | None]:
    """The scheduler's answer, or None and why there is none."""
    if scheduler is None:
        return None, "no scheduler in the config ([services] scheduler)"
    try:
        answer = question(scheduler)
    except SchedulerUnavailable as error:
        return None, str(error)
    if answer is None:
        return None, f"the scheduler at {scheduler.url} does not know this {what} (yet)"
    return answer, None
