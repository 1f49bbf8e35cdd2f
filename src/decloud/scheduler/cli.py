"""`decloud scheduler run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from decloud.chain.errors import ChainError
from decloud.scheduler.api import create_app
from decloud.scheduler.service import SchedulerConfigError, build_scheduler
from decloud.scheduler.settings import SchedulerSettings
from decloud.service.logs import (
    JsonLogsOption,
    LogLevel,
    LogLevelOption,
    configure_logging,
    uvicorn_options,
)
from decloud.service.settings import SettingsError, load_settings

app = typer.Typer(help="The scheduler service, which runs a workerpool.", no_args_is_help=True)


@app.command("run")
def run(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="DECLOUD_CONFIG",
            exists=True,
            dir_okay=False,
            help="Config file ([scheduler] table); DECLOUD_SCHEDULER_* variables override it",
        ),
    ] = None,
    as_json: JsonLogsOption = False,
    log_level: LogLevelOption = LogLevel.INFO,
) -> None:
    """Follow the workerpool's deals on the chain, hand replicates to workers, finalize
    tasks, and serve the scheduler's HTTP API until interrupted."""
    configure_logging(as_json=as_json, level=log_level)
    try:
        settings = load_settings(SchedulerSettings, "scheduler", config)
        scheduler = build_scheduler(settings)
    except (SettingsError, SchedulerConfigError, ChainError) as error:
        Console(stderr=True).print(f"cannot start: {error}", markup=False, style="red")
        raise typer.Exit(1) from error
    uvicorn.run(
        create_app(scheduler), host=settings.host, port=settings.port, **uvicorn_options(log_level)
    )
