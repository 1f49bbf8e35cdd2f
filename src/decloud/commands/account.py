"""`decloud account deposit|withdraw|show`: tokens between a wallet and its hub account.

Amounts are in the token's smallest unit (the devnet token has 18 decimals, and sample
prices are in nano-tokens, 10**9 units)."""

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
from decloud.sdk.account import Balances, Movement
from decloud.sdk.requester import Requester
from decloud.sdk.worker import Standing, Worker

app = typer.Typer(
    help="Deposit tokens into the hub, withdraw them, and show balances and reputation.",
    no_args_is_help=True,
)

Amount = Annotated[int, typer.Argument(min=1, help="Tokens, in the token's smallest unit")]


@app.command("deposit")
@reports_errors
def deposit(
    amount: Amount,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move tokens from the wallet into its hub account (to pay for deals, or to stake)."""
    _print_movement(
        "deposited", amount, Requester(signing(config, wallet)).deposit(amount), as_json
    )


@app.command("withdraw")
@reports_errors
def withdraw(
    amount: Amount,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move free tokens from the hub account back to the wallet."""
    movement = Requester(signing(config, wallet)).withdraw(amount)
    _print_movement("withdrew", amount, movement, as_json)


@app.command("show")
@reports_errors
def show(
    address: Annotated[
        str | None, typer.Argument(help="Any account (default: the wallet's)")
    ] = None,
    wallet: WalletOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tokens in the wallet, free and locked in the hub, and the reputation score."""
    connection = reading(config, wallet, as_wallet=address is None)
    standing = Worker(connection).standing(address)
    if as_json:
        print_json(standing.to_json())
        return
    _print_standing(standing)


def _balance_rows(balances: Balances) -> list[tuple[str, object]]:
    return [
        ("wallet", balances.wallet),
        ("free in the hub", balances.free),
        ("locked in the hub", balances.locked),
        ("score", balances.score),
    ]


def _print_standing(standing: Standing) -> None:
    rows = [*_balance_rows(standing.balances), ("weight in consensus", standing.weight)]
    print_fields(f"account {standing.balances.address}", rows)


def _print_movement(verb: str, amount: int, movement: Movement, as_json: bool) -> None:
    if as_json:
        print_json(movement.to_json())
        return
    rows = [*_balance_rows(movement.balances), ("transaction", movement.transaction.tx_hash)]
    print_fields(f"{verb} {amount}: account {movement.balances.address}", rows)
