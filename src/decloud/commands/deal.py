"""`decloud deal show`: a deal's terms, deadlines and tasks, from the chain and the
workerpool's scheduler."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from decloud.commands.common import (
    ConfigOption,
    JsonOption,
    console,
    print_fields,
    print_json,
    reading,
    reports_errors,
    say,
    when,
)
from decloud.sdk.requester import Requester
from decloud.sdk.status import DealReport, deal_terms_json

app = typer.Typer(help="Show deals.", no_args_is_help=True)


@app.command("show")
@reports_errors
def show(
    dealid: Annotated[str, typer.Argument(help="The deal id (0x, 32 bytes)")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """A deal's terms, deadlines and the state of its tasks."""
    report = Requester(reading(config)).deal(dealid)
    if as_json:
        print_json(report.to_json())
        return
    _print_deal(report)


def _print_deal(report: DealReport) -> None:
    deal = report.deal
    rows = [
        *deal_terms_json(deal).items(),
        ("params", report.params),
        ("task price", deal.task_price),
        ("matched in block", report.block_number),
        ("contributions until", when(report.contribution_deadline)),
        ("final deadline", when(report.final_deadline)),
    ]
    print_fields(f"deal 0x{report.dealid.hex()}", rows)
    table = Table("index", "task id", "on-chain", "scheduler")
    for task in report.tasks:
        table.add_row(
            str(task.index),
            "0x" + task.taskid.hex(),
            task.chain_status,
            task.scheduler_state or "-",
        )
    say("tasks", style="bold")
    console().print(table)
    if len(report.tasks) < deal.bot_size:
        say(f"showing the first {len(report.tasks)} of {deal.bot_size} tasks")
    if report.scheduler_note:
        say(f"scheduler: {report.scheduler_note}", style="yellow")
