"""`decloud app deploy|show`: register apps and read them from the app registry."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from decloud.chain.registries import AppType
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
from decloud.sdk.app_developer import AppDeveloper, AppInfo
from decloud.sdk.values import parse_bytes32, parse_hex

app = typer.Typer(help="Register apps and show them.", no_args_is_help=True)


class AppTypeName(StrEnum):
    """The runtimes, by the names people type."""

    WASM = "WASM"
    OCI = "OCI"


Checksum = Annotated[
    str | None,
    typer.Option(help="sha256 to register, 0x-hex (or give --file to compute it)"),
]
ArtifactFile = Annotated[
    Path | None,
    typer.Option(
        "--file",
        exists=True,
        dir_okay=False,
        help="Compute the checksum from this file: the WASM module, or the OCI image saved "
        "as a docker-archive (`docker save`)",
    ),
]


@app.command("deploy")
@reports_errors
def deploy(
    name: Annotated[str, typer.Argument(help="Name, unique among the wallet's apps")],
    app_type: Annotated[AppTypeName, typer.Option("--type", help="Runtime of the app")],
    multiaddr: Annotated[
        str, typer.Option(help="Where workers get it: module URL or CID, or image reference")
    ],
    checksum: Checksum = None,
    file: ArtifactFile = None,
    mrenclave: Annotated[
        str, typer.Option(help="Enclave fingerprint (hex), for apps that run in a TEE")
    ] = "",
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an app owned by the wallet; its owner is paid the app price per task."""
    info = AppDeveloper(signing(config, wallet)).deploy(
        name,
        AppType[app_type.value],
        multiaddr,
        checksum=None if checksum is None else parse_bytes32(checksum, "the checksum"),
        artifact=file,
        mrenclave=parse_hex(mrenclave, "the enclave fingerprint"),
    )
    _print_app(info, as_json)


@app.command("show")
@reports_errors
def show(
    address: Annotated[str, typer.Argument(help="The app's address")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """An app's registration and owner."""
    _print_app(AppDeveloper(reading(config)).show(address), as_json)


def _print_app(info: AppInfo, as_json: bool) -> None:
    document = info.to_json()
    if as_json:
        print_json(document)
        return
    print_fields(f"app {document.pop('address')}", document.items())
