"""`decloud result download`: a completed task's result, verified against the chain.

The archive is fetched from the config's result store by the CID the task was finalized
with, and kept only if its canonical digest is the one the task's winners revealed
on-chain; anything else is refused and nothing is left behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from decloud.commands.app import RESULTS_DIR
from decloud.commands.common import (
    ConfigOption,
    JsonOption,
    print_fields,
    print_json,
    reading,
    reports_errors,
)
from decloud.sdk.requester import Requester

app = typer.Typer(help="Download task results, verified against the chain.", no_args_is_help=True)


@app.command("download")
@reports_errors
def download(
    taskid: Annotated[str, typer.Argument(help="The task id (0x, 32 bytes)")],
    output: Annotated[
        Path | None,
        typer.Option(
            help="New directory for the result (default ./decloud-results/TASKID)",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a completed task's result and check it is the one agreed on-chain."""
    destination = output if output is not None else RESULTS_DIR / taskid
    result = Requester(reading(config)).download_result(taskid, destination)
    if as_json:
        print_json(result.to_json())
        return
    print_fields(
        f"result of task 0x{result.taskid.hex()}",
        [
            ("directory", result.path),
            ("digest", f"{result.digest} (equal to the one revealed on-chain)"),
            ("cid", result.cid),
        ],
    )
