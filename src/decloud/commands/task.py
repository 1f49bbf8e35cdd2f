"""`decloud task show [--watch]`: where a task stands, and why a replicate failed;
`decloud task logs`: what the app wrote in each replicate, for the task's requester.

With `--watch`, a live display follows the task through its states (pending, active,
revealing, finalizing, completed) and its replicates through theirs, polling the chain and
the scheduler, until the task completes or fails or the timeout passes. Each replicate that
ended without a result is then listed with its cause and what to do about it.

Exit status: 0 when the task is shown (with `--watch`: completed), 1 when a watched task
failed or on an error, 3 when the watch timed out (the task goes on).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from decloud.commands.common import (
    EXIT_FAILED,
    ConfigOption,
    JsonOption,
    WalletOption,
    console,
    fail,
    print_fields,
    print_json,
    reading,
    reports_errors,
    say,
    signing,
    when,
)
from decloud.sdk.errors import TaskTimeout
from decloud.sdk.requester import Requester
from decloud.sdk.status import TaskReport

EXIT_TIMEOUT = 3
STAGES = ("pending", "active", "revealing", "finalizing", "completed")
"""The states a task passes through when all goes well, in order."""
STATE_STYLES = {
    "completed": "green",
    "revealed": "green",
    "contributed": "cyan",
    "running": "cyan",
    "failed": "red",
    "lost": "red",
    "rejected": "red",
    "claimable": "red",
    "reopening": "yellow",
    "cancelled": "dim",
}

app = typer.Typer(help="Show tasks, follow them live, read their logs.", no_args_is_help=True)


@app.command("show")
@reports_errors
def show(
    taskid: Annotated[str, typer.Argument(help="The task id (0x, 32 bytes)")],
    watch: Annotated[
        bool, typer.Option("--watch", help="Follow the task live until it completes or fails")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0, help="With --watch: give up after this many seconds")
    ] = 600.0,
    interval: Annotated[
        float, typer.Option(min=0.05, help="With --watch: seconds between polls")
    ] = 1.0,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """A task's state on-chain and at the scheduler, its replicates, and the cause of each
    failed replicate with what to do about it."""
    requester = Requester(reading(config))
    if not watch:
        print_report(requester.task(taskid), as_json)
        return
    last, timed_out = follow(requester, taskid, timeout, interval, live=not as_json)
    print_report(last, as_json)
    raise typer.Exit(exit_status(last, timed_out))


@app.command("logs")
@reports_errors
def logs(
    taskid: Annotated[str, typer.Argument(help="The task id (0x, 32 bytes)")],
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """The app's stdout and stderr in each replicate of the task, as its workerpool's
    scheduler keeps them (the head of each stream, size-capped); for the task's requester
    only, so the wallet signs the request."""
    replicates = Requester(signing(config, wallet)).logs(taskid)
    if as_json:
        print_json({"taskid": taskid, "replicates": [r.to_json() for r in replicates]})
        return
    if not replicates:
        say("no logs yet: no worker has sent the logs of a run of this task", style="yellow")
    for replicate in replicates:
        say(f"replicate of worker {replicate.worker}", style="bold")
        _print_stream("stdout", replicate.stdout, replicate.stdout_total_bytes)
        _print_stream("stderr", replicate.stderr, replicate.stderr_total_bytes)


def _print_stream(name: str, head: bytes, total: int) -> None:
    if total > len(head):
        say(f"--- {name}: truncated, the first {len(head)} of {total} bytes", style="yellow")
    else:
        say(f"--- {name}: {total} bytes", style="dim")
    if head:
        typer.echo(head.decode(errors="replace").rstrip("\n"))


def follow(
    requester: Requester, taskid: str, timeout: float, interval: float, *, live: bool
) -> tuple[TaskReport, TaskTimeout | None]:
    """Watch the task until it is done or `timeout` passes (with a live display for a
    person); the last report, and the timeout if it ended the watch."""
    reports = requester.watch_task(taskid, timeout_s=timeout, interval_s=interval)
    if live:
        return _follow_live(reports, timeout)
    return _follow(reports, lambda _report: None)


def exit_status(last: TaskReport, timed_out: TaskTimeout | None) -> int:
    """0 completed, 1 failed, 3 the watch timed out (said on stderr; the task goes on)."""
    if timed_out is not None:
        fail(timed_out)
        return EXIT_TIMEOUT
    return EXIT_FAILED if last.state == "failed" else 0


def _follow(
    reports: Iterator[TaskReport], seen: Callable[[TaskReport], None]
) -> tuple[TaskReport, TaskTimeout | None]:
    """The last report, and the timeout that ended the watch if one did (the watch yields
    a report before it first checks the time)."""
    last = next(reports)
    seen(last)
    try:
        for report in reports:
            seen(report)
            last = report
    except TaskTimeout as error:
        return last, error
    return last, None


def _follow_live(
    reports: Iterator[TaskReport], timeout: float
) -> tuple[TaskReport, TaskTimeout | None]:
    started = time.monotonic()
    with Live(console=console(), refresh_per_second=10, transient=True) as live:
        return _follow(
            reports,
            lambda report: live.update(_progress(report, time.monotonic() - started, timeout)),
        )


def _progress(report: TaskReport, elapsed: float, timeout: float) -> RenderableType:
    """The live view: a spinner with the state and the time, the stages passed, and the
    replicates."""
    reason = report.scheduler.reason if report.scheduler is not None else ""
    status = f"task {_short(report.taskid)}: {report.state}"
    status += f" ({reason})" if reason else ""
    status += f"  {elapsed:.0f}s / {timeout:.0f}s"
    return Group(Spinner("dots", text=Text(status)), _stages(report.state), _replicates(report))


def _stages(state: str) -> Text:
    """pending ▸ active ▸ ... with the stages passed in green and the current one bold."""
    line = Text()
    # Without the scheduler's view, a task nobody contributed to yet is still pending.
    state = "pending" if state == "unset" else state
    reached = STAGES.index(state) if state in STAGES else -1
    for index, stage in enumerate(STAGES):
        style = "green" if index < reached else "bold" if index == reached else "dim"
        line.append(stage, style=style)
        if index < len(STAGES) - 1:
            line.append(" ▸ ", style="dim")
    if reached < 0:
        line.append(f"   {state}", style=STATE_STYLES.get(state, "bold"))
    return line


def _replicates(report: TaskReport) -> RenderableType:
    if report.scheduler is None:
        return Text(f"scheduler: {report.scheduler_note}", style="yellow")
    if not report.scheduler.replicates:
        return Text("no replicate handed out yet", style="dim")
    table = Table("worker", "state", "cause", title="replicates", title_justify="left")
    for replicate in report.scheduler.replicates:
        table.add_row(
            replicate.worker,
            Text(replicate.state, style=STATE_STYLES.get(replicate.state, "")),
            replicate.cause or "",
        )
    return table


def print_report(report: TaskReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    chain = report.chain
    scheduler = report.scheduler
    rows: list[tuple[str, object]] = [
        ("state", report.state),
        ("on-chain", f"{report.chain_status}: {chain.contributors} contributions, "
                     f"{chain.reveals} reveals, {chain.winners} winners"),
        ("contributions until", when(chain.contribution_deadline)),
        ("reveals until", when(chain.reveal_deadline)),
    ]  # fmt: skip
    if scheduler is not None:
        rows += [
            ("deal", f"{scheduler.dealid} (task {scheduler.index})"),
            ("scheduler says", scheduler.reason or "-"),
            ("final deadline", when(scheduler.final_deadline)),
            ("results", scheduler.results or "-"),
        ]
    print_fields(f"task 0x{report.taskid.hex()}", rows)
    console().print(_replicates(report))
    _print_failures(report)


def _print_failures(report: TaskReport) -> None:
    """Each replicate that ended without a result: why, and what to do about it."""
    out = console()
    for replicate in report.failed_replicates:
        out.print(
            f"replicate of {replicate.worker} {replicate.state}: {replicate.cause or 'no cause'}",
            style="red",
            markup=False,
            soft_wrap=True,
        )
        if replicate.message:
            out.print(f"  {replicate.message}", markup=False, soft_wrap=True)
        if replicate.advice:
            out.print(f"  what to do: {replicate.advice}", markup=False, soft_wrap=True)


def _short(taskid: bytes) -> str:
    return f"0x{taskid.hex()[:8]}…"
