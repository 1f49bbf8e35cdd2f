"""`decloud dataset deploy|show`: register datasets and read them from the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from decloud.commands.common import (
    ConfigOption,
    JsonOption,
    WalletOption,
    print_fields,
    print_json,
    reading,
    reports_errors,
    signing,
)
from decloud.sdk.dataset_owner import DatasetInfo, DatasetOwner
from decloud.sdk.values import parse_bytes32

app = typer.Typer(help="Register datasets and show them.", no_args_is_help=True)


@app.command("deploy")
@reports_errors
def deploy(
    name: Annotated[str, typer.Argument(help="Name, unique among the wallet's datasets")],
    multiaddr: Annotated[str, typer.Option(help="Where workers download it: URL or CID")],
    checksum: Annotated[
        str | None,
        typer.Option(help="sha256 of the file workers download, 0x-hex (or give --file)"),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", exists=True, dir_okay=False, help="Compute the checksum from this file"
        ),
    ] = None,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a dataset owned by the wallet; its owner is paid the dataset price per task."""
    info = DatasetOwner(signing(config, wallet)).deploy(
        name,
        multiaddr,
        checksum=None if checksum is None else parse_bytes32(checksum, "the checksum"),
        file=file,
    )
    _print_dataset(info, as_json)


@app.command("show")
@reports_errors
def show(
    address: Annotated[str, typer.Argument(help="The dataset's address")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """A dataset's registration and owner."""
    _print_dataset(DatasetOwner(reading(config)).show(address), as_json)


def _print_dataset(info: DatasetInfo, as_json: bool) -> None:
    document = info.to_json()
    if as_json:
        print_json(document)
        return
    print_fields(f"dataset {document.pop('address')}", document.items())
