"""The requester: pays for tasks, and follows its deals and tasks to their results.

Deposits fund the requester's hub account, from which matchOrders locks the price of a
whole deal; what a task does not use is refunded when it fails (claim). A run is a quote
(the orders chosen and their price), then the match; then the task is followed, its logs
read and its result downloaded (`decloud.sdk.execution`). Deal and task reports combine the
chain and the workerpool's scheduler (`decloud.sdk.status`).

```python
requester = Requester(connect(config, wallet))
quote = requester.quote("mandelbrot", args="64 64 100", trust=1)
(taskid,) = requester.run(quote).taskids
for report in requester.watch_task(taskid, timeout_s=300):
    print(report.state)
print(requester.download_result(taskid, Path("result")).digest)
```
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from decloud.sdk import execution
from decloud.sdk.account import Escrow
from decloud.sdk.errors import TaskTimeout
from decloud.sdk.execution import DownloadedResult, Quote, ReplicateLogs, RunStarted
from decloud.sdk.status import (
    DealReport,
    SchedulerView,
    TaskReport,
    deal_report,
    task_report,
)
from decloud.sdk.values import parse_bytes32


class Requester(Escrow):
    """Deposits, withdraws, buys runs of apps, and reads deals, tasks, logs and results, as
    the connection's wallet."""

    def quote(
        self,
        app: str,
        *,
        dataset: str | None = None,
        args: str = "",
        input_files: Sequence[str] = (),
        trust: int = 1,
        category: int = 0,
        tag: bytes | str | None = None,
        workerpool: str | None = None,
        volume: int = 1,
        max_price: int | None = None,
        orders: Sequence[Path] | None = None,
    ) -> Quote:
        """The orders a run of `app` (an address, or a name of the config's [apps]) would be
        matched with, and its price; nothing is sent.

        The orders come from the files `orders` (signed order files), else from the
        config's market (the cheapest compatible), else are signed by the wallet for what
        it owns. `max_price` caps the price of one task (app + dataset + workerpool); `tag`
        is a bytes32 or names (`tee,gpu`). Raises `NoMatchingOrder` naming the constraint
        nothing satisfies, and `InsufficientFunds` when the free balance in the hub does
        not cover the whole volume.
        """
        return execution.quote(
            self.connection, app, dataset=dataset, args=args, input_files=input_files,
            trust=trust, category=category, tag=tag, workerpool=workerpool, volume=volume,
            max_price=max_price, orders=orders,
        )  # fmt: skip

    def run(self, quote: Quote) -> RunStarted:
        """Sign the quote's request and match it: the deal, its tasks and the transaction."""
        return execution.run(self.connection, quote)

    def logs(self, taskid: str) -> list[ReplicateLogs]:
        """The app's stdout and stderr in each replicate of the task, as the scheduler keeps
        them (the head of each stream, up to its size cap); only the task's requester may
        read them (`Refused` otherwise)."""
        return execution.logs(self.connection, taskid)

    def download_result(self, taskid: str, destination: Path) -> DownloadedResult:
        """Download the completed task's result from the config's result store into the
        new directory `destination`, streaming, and keep it only if its digest is the
        consensus digest revealed on-chain (`ResultMismatch` otherwise;
        `TaskNotCompleted` before the task completed)."""
        return execution.download_result(self.connection, taskid, destination)

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
