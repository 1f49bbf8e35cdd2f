"""`decloud worker run`.

`decloud.cli` loads this group when it runs; `python -m decloud.worker` runs the same.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from decloud.chain.errors import ChainError
from decloud.service.logs import JsonLogsOption, LogLevel, LogLevelOption, configure_logging
from decloud.service.settings import SettingsError
from decloud.worker.agent import Worker
from decloud.worker.client import SchedulerError
from decloud.worker.journal import JournalError
from decloud.worker.service import WorkerConfigError, build_worker
from decloud.worker.settings import load_worker_settings

app = typer.Typer(help="The worker agent, which runs replicates for a workerpool.")


@app.callback()
def _group() -> None:
    """Keeps `run` a subcommand even while it is the only one."""


@app.command("run")
def run(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="DECLOUD_CONFIG",
            exists=True,
            dir_okay=False,
            help="Config file (table \\[worker]); DECLOUD_WORKER_* variables override it",
        ),
    ] = None,
    as_json: JsonLogsOption = False,
    log_level: LogLevelOption = LogLevel.INFO,
) -> None:
    """Run replicates for the workerpool of a scheduler, until SIGTERM or SIGINT.

    A signal drains: the replicates in hand finish, no new ones are taken, then the worker
    exits 0. A second signal stops at once; the replicates left resume at the next start.
    """
    configure_logging(as_json=as_json, level=log_level)
    errors = (SettingsError, WorkerConfigError, SchedulerError, JournalError, ChainError)
    try:
        worker = build_worker(load_worker_settings(config))
        _on_signals(worker)
        try:
            worker.run()
        finally:
            worker.close()
    except errors as error:
        Console(stderr=True).print(f"worker: {error}", markup=False, style="red")
        raise typer.Exit(1) from error


def _on_signals(worker: Worker) -> None:
    def handle(number: int, _frame: FrameType | None) -> None:
        if worker.draining:
            logging.getLogger(__name__).warning("stopping now: replicates resume at next start")
            worker.stop()
        else:
            logging.getLogger(__name__).info(
                "draining (%s): no new work", signal.Signals(number).name
            )
            worker.drain()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
