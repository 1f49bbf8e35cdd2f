"""The requester: pays for tasks, and follows its deals and tasks to their results.

Deposits fund the requester's hub account, from which matchOrders locks the price of a
whole deal; what a task does not use is refunded when it fails (claim). Deal and task
reports combine the chain and the workerpool's scheduler (`decloud.sdk.status`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from decloud.sdk.account import Escrow
from decloud.sdk.errors import TaskTimeout
from decloud.sdk.status import (
    DealReport,
    SchedulerView,
    TaskReport,
    deal_report,
    task_report,
)
from decloud.sdk.values import parse_bytes32


class Requester(Escrow):
    """Deposits, withdraws, and reads deals and tasks, as the connection's wallet."""

    def deal(self, dealid: str) -> DealReport:
        """The deal's terms, deadlines and tasks."""
        with self._scheduler() as scheduler:
            return deal_report(self.connection, scheduler, parse_bytes32(dealid, "a deal id"))

    def task(self, taskid: str) -> TaskReport:
        """The task's state on-chain and, when the scheduler answers, its replicates."""
        with self._scheduler() as scheduler:
            return task_report(self.connection, scheduler, parse_bytes32(taskid, "a task id"))

    def watch_task(
        self, taskid: str, *, timeout_s: float, interval_s: float = 1.0
    ) -> Iterator[TaskReport]:
        """A report every `interval_s` until the task is done (the last report yielded is
        the final one); TaskTimeout if it is not done after `timeout_s`."""
        task = parse_bytes32(taskid, "a task id")
        deadline = time.monotonic() + timeout_s
        with self._scheduler() as scheduler:
            while True:
                report = task_report(self.connection, scheduler, task)
                yield report
                if report.done:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TaskTimeout(
                        f"task {taskid} is still {report.state} after {timeout_s:g} s",
                        "watch it again with a longer --timeout: the task goes on meanwhile",
                    )
                time.sleep(min(interval_s, left))

    @contextmanager
    def _scheduler(self) -> Iterator[SchedulerView | None]:
        url = self.connection.config.services.scheduler
        if url is None:
            yield None
            return
        with SchedulerView(url) as view:
            yield view
