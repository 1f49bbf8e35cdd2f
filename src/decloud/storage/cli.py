"""`decloud storage ...`: run the result store, compute a file's IPFS CID."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from decloud.service.logs import JsonLogsOption, LogLevel, LogLevelOption, configure_logging

app = typer.Typer(help="The result store.", no_args_is_help=True)


@app.command("run")
def run(
    config: Annotated[
        Path | None,
        typer.Option(envvar="DECLOUD_CONFIG", dir_okay=False, help="TOML config ([storage] table)"),
    ] = None,
    as_json: JsonLogsOption = False,
    log_level: LogLevelOption = LogLevel.INFO,
) -> None:
    """Serve the result store: check the chain, migrate its index, answer the API."""
    from decloud.service.settings import load_settings
    from decloud.storage.service import run as serve
    from decloud.storage.settings import StorageSettings

    configure_logging(as_json=as_json, level=log_level)
    serve(load_settings(StorageSettings, "storage", config), log_level)


@app.command("cid")
def cid(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A file, e.g. a result archive")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The CID `ipfs add` gives the file with kubo's defaults (CIDv0, 256 KiB chunks)."""
    from decloud.storage.archive import identify

    archive = identify(path)
    if as_json:
        typer.echo(
            json.dumps({"cid": archive.cid, "sha256": archive.sha256.hex(), "size": archive.size})
        )
    else:
        typer.echo(archive.cid)
