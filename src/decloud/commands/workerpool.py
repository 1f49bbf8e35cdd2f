"""`decloud workerpool deploy|show|policy`: register a pool and set the policy its deals
snapshot."""

from __future__ import annotations

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
from decloud.sdk.workerpool_owner import WorkerpoolInfo, WorkerpoolOwner

app = typer.Typer(
    help="Register workerpools, set their policy and show them.", no_args_is_help=True
)

Address = Annotated[str, typer.Argument(help="The workerpool's address")]


@app.command("deploy")
@reports_errors
def deploy(
    description: Annotated[
        str, typer.Argument(help="Description, unique among the wallet's pools")
    ],
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a workerpool owned by the wallet, with the default policy."""
    _print_workerpool(WorkerpoolOwner(signing(config, wallet)).deploy(description), as_json)


@app.command("show")
@reports_errors
def show(address: Address, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """A workerpool's description, policy and owner."""
    _print_workerpool(WorkerpoolOwner(reading(config)).show(address), as_json)


@app.command("policy")
@reports_errors
def policy(
    address: Address,
    worker_stake_ratio: Annotated[
        int | None,
        typer.Option(min=0, help="Percent of the workerpool price a worker stakes per task"),
    ] = None,
    scheduler_reward_ratio: Annotated[
        int | None,
        typer.Option(min=0, help="Percent of the workerpool price the owner keeps"),
    ] = None,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change the policy of future deals (running deals keep theirs); a ratio not given
    keeps its value."""
    info = WorkerpoolOwner(signing(config, wallet)).set_policy(
        address,
        worker_stake_ratio=worker_stake_ratio,
        scheduler_reward_ratio=scheduler_reward_ratio,
    )
    _print_workerpool(info, as_json)


def _print_workerpool(info: WorkerpoolInfo, as_json: bool) -> None:
    document = info.to_json()
    if as_json:
        print_json(document)
        return
    print_fields(f"workerpool {document.pop('address')}", document.items())
