"""What every command group shares: its options, how it finds the config and the wallet,
how it prints, and how it fails.

It imports no chain client at module level: `decloud wallet ...` uses it without web3.

Every command prints for people (rich) or, with `--json`, one JSON document on stdout.
A `DecloudError` becomes two lines on stderr, what went wrong and what to do, and exit
status 1; usage errors exit with 2, as in every typer program.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from decloud.sdk.config import ClientConfig, WalletSettings
from decloud.sdk.errors import ConfigError, DecloudError, WrongPassword
from decloud.sdk.wallet import Keystore, Wallet, WalletInfo, password_from_env

if TYPE_CHECKING:
    from decloud.sdk.connection import Connection

EXIT_FAILED = 1

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="DECLOUD_CONFIG",
        dir_okay=False,
        help="Config file (default: ~/.decloud/config.toml)",
        show_default=False,
    ),
]
WalletOption = Annotated[
    str | None,
    typer.Option(
        "--wallet",
        envvar="DECLOUD_WALLET",
        help="Wallet to act as (default: the config's default wallet, or the only wallet)",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document")]
MarketOption = Annotated[
    str | None,
    typer.Option(
        "--market",
        help="URL of the market (default: the config's [services] market)",
        show_default=False,
    ),
]

P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Print a `DecloudError` as what went wrong and what to do, and exit with status 1.

    Other exceptions are bugs: their traceback is what a bug report needs."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except DecloudError as error:
            fail(error)
            raise typer.Exit(EXIT_FAILED) from error

    return run


def fail(error: DecloudError) -> None:
    """Say on stderr what went wrong and what to do (messages are never rich markup)."""
    errors = Console(stderr=True, soft_wrap=True)
    errors.print(f"error: {error}", style="red", markup=False, highlight=False)
    if error.advice:
        errors.print(f"what to do: {error.advice}", markup=False, highlight=False)


def console() -> Console:
    """The console of human output; made per call so that it writes to the current
    stdout (a test runner swaps it). Lines are not wrapped: ids and hashes stay whole."""
    return Console(highlight=False, soft_wrap=True)


def say(text: str, style: str | None = None) -> None:
    """One line for people; `text` may quote anything (names, service messages), so it is
    never read as rich markup."""
    console().print(text, style=style, markup=False)


def warn(text: str) -> None:
    """One line on stderr, in red; never read as rich markup (it may quote a service)."""
    Console(stderr=True, soft_wrap=True).print(text, style="red", markup=False, highlight=False)


def print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2))


def print_fields(title: str, rows: Iterable[tuple[str, Any]]) -> None:
    """A title line, then a two-column table of a record's fields (values are data, never
    markup)."""
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, Text(str(value)))
    say(title, style="bold")
    console().print(table)


def when(timestamp: int | None) -> str:
    """A chain timestamp as local time (deadlines are block times, in seconds)."""
    if not timestamp:
        return "-"
    moment = datetime.datetime.fromtimestamp(timestamp).astimezone()
    return moment.isoformat(timespec="seconds")


def keystore_of(config: Path | None) -> tuple[Keystore, WalletSettings]:
    """The keystore of the config's [wallet] table, and that table."""
    settings = WalletSettings.load(config)
    return Keystore(settings.keystore), settings


def chosen_wallet(config: Path | None, name: str | None) -> WalletInfo:
    """The wallet a command acts as, without unlocking it."""
    keystore, settings = keystore_of(config)
    return keystore.show(keystore.choose(name, settings.default))


def unlock(config: Path | None, name: str | None) -> Wallet:
    """The chosen wallet, unlocked with DECLOUD_WALLET_PASSWORD, else the config's
    `[wallet] password` (a devnet's), else a hidden prompt: a wallet a person added to a
    devnet's keystore has a password of its own."""
    keystore, settings = keystore_of(config)
    chosen = keystore.choose(name, settings.default)
    keystore.show(chosen)
    password = password_from_env()
    if password is None and settings.password is not None:
        try:
            return keystore.unlock(chosen, settings.password)
        except WrongPassword:
            pass
    if password is None:
        password = typer.prompt(f"password of wallet {chosen}", hide_input=True, err=True)
    return keystore.unlock(chosen, password)


def new_password() -> str:
    """A password for a new wallet: DECLOUD_WALLET_PASSWORD, or typed twice."""
    password = password_from_env()
    if password is None:
        password = typer.prompt(
            "password of the new wallet", hide_input=True, confirmation_prompt=True, err=True
        )
    return password


def signing(config: Path | None, wallet: str | None) -> Connection:
    """A connection that signs as the chosen wallet (asks for its password)."""
    from decloud.sdk.connection import connect

    client_config = ClientConfig.load(config)
    return connect(client_config, unlock(config, wallet))


def reading(
    config: Path | None, wallet: str | None = None, *, as_wallet: bool = False
) -> Connection:
    """A read-only connection; with `as_wallet`, acting for the chosen wallet's address
    (no password needed)."""
    from decloud.sdk.connection import connect

    client_config = ClientConfig.load(config)
    address = chosen_wallet(config, wallet).address if as_wallet else None
    return connect(client_config, address=address)


def market_url(config: Path | None, override: str | None) -> str:
    """The market a command talks to: `--market`, else the config's [services] market."""
    if override:
        return override
    client_config = ClientConfig.load(config)
    if client_config.services.market is None:
        raise ConfigError(
            f"the config {client_config.source} names no market",
            "add `market = URL` to its [services] table, or pass --market URL",
        )
    return client_config.services.market


@contextmanager
def market_errors(url: str) -> Iterator[None]:
    """A market that cannot be reached, or that refuses a request, as a `DecloudError`:
    a refusal quotes the market's message and names its rule."""
    from decloud.market.client import MarketError

    try:
        yield
    except MarketError as error:
        if error.rule is None:
            raise DecloudError(
                str(error),
                f"check that a market runs at {url} ([services] market in the config, or "
                "--market URL)",
            ) from error
        raise DecloudError(f"the market refused: {error}") from error
