"""`decloud wallet create|import|list|show`: the encrypted keys every other command signs
with (`decloud.sdk.wallet`). Keys are never printed; passwords come from
DECLOUD_WALLET_PASSWORD or a hidden prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from decloud.commands.common import (
    ConfigOption,
    JsonOption,
    console,
    keystore_of,
    new_password,
    print_fields,
    print_json,
    reports_errors,
    say,
)
from decloud.sdk.wallet import WalletInfo

app = typer.Typer(
    help="Create, import and list wallets: the encrypted keys commands sign with.",
    no_args_is_help=True,
)

LightKdf = Annotated[
    bool,
    typer.Option(
        "--light-kdf",
        help="Fast, weaker key derivation, for throwaway devnet wallets (as geth's --lightkdf)",
    ),
]


@app.command("create")
@reports_errors
def create(
    name: Annotated[str, typer.Argument(help="Name of the new wallet")],
    light_kdf: LightKdf = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a wallet with a new random key."""
    keystore, settings = keystore_of(config)
    info = keystore.create(name, new_password(), light=light_kdf)
    _print_wallet(info, settings.default, as_json)


@app.command("import")
@reports_errors
def import_key(
    name: Annotated[str, typer.Argument(help="Name of the new wallet")],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            exists=True,
            dir_okay=False,
            help="File holding the private key in hex; without it, the key is asked for "
            "(hidden). Never pass a key on the command line: it would stay in the history.",
        ),
    ] = None,
    light_kdf: LightKdf = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Keep an existing private key as an encrypted wallet."""
    keystore, settings = keystore_of(config)
    if key_file is not None:
        key = key_file.read_text().strip()
    else:
        key = typer.prompt("private key (hex)", hide_input=True, err=True)
    info = keystore.import_key(name, key, new_password(), light=light_kdf)
    _print_wallet(info, settings.default, as_json)


@app.command("list")
@reports_errors
def list_wallets(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Every wallet of the keystore."""
    keystore, settings = keystore_of(config)
    wallets = keystore.list()
    if as_json:
        print_json({"wallets": [_wallet_json(w, settings.default) for w in wallets]})
        return
    table = Table("name", "address", "default")
    for wallet in wallets:
        table.add_row(wallet.name, wallet.address, "yes" if wallet.name == settings.default else "")
    say(f"wallets in {keystore.directory}", style="bold")
    console().print(table)


@app.command("show")
@reports_errors
def show(
    name: Annotated[
        str | None, typer.Argument(help="Wallet (default: the one commands act as)")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """A wallet's address and keystore file (no password needed)."""
    keystore, settings = keystore_of(config)
    info = keystore.show(keystore.choose(name, settings.default))
    _print_wallet(info, settings.default, as_json)


def _wallet_json(info: WalletInfo, default: str | None) -> dict[str, Any]:
    return {
        "name": info.name,
        "address": info.address,
        "file": str(info.file),
        "default": info.name == default,
    }


def _print_wallet(info: WalletInfo, default: str | None, as_json: bool) -> None:
    if as_json:
        print_json(_wallet_json(info, default))
        return
    print_fields(
        f"wallet {info.name}",
        [("address", info.address), ("file", info.file), ("default", info.name == default)],
    )
