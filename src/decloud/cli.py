"""The `decloud` command.

Its groups import the world (web3, FastAPI, SQLAlchemy, wasmtime, docker): seconds of CPU
that `decloud --help` or `decloud wallet list` should not pay for the groups they do not
use. So the root command knows each group only by name, module and one-line help, and
imports a group's module when that group runs (`LazyGroup`). `tests/test_cli.py` checks
that each declared help is the group's own.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
import typer.main
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Lazy:
    """A sub-command known by its name and help until it runs. `target` is
    "module:attribute": a `typer.Typer` group, or a command function."""

    name: str
    target: str
    help: str

    def load(self) -> Any:
        """The click command of the target (importing its module)."""
        module, attribute = self.target.split(":")
        found = getattr(importlib.import_module(module), attribute)
        if isinstance(found, typer.Typer):
            command: Any = typer.main.get_group(found)
        else:
            holder = typer.Typer(add_completion=False)
            holder.command(self.name)(found)
            command = typer.main.get_command(holder)
        command.name = self.name
        return command


class _Unloaded(TyperCommand):
    """Stands for a lazy sub-command: lists it in the parent's help with its declared help,
    and turns into the real command as soon as a context is made for it, which is what
    running it, its `--help` or completing its arguments does."""

    def __init__(self, lazy: Lazy) -> None:
        super().__init__(lazy.name, help=lazy.help)
        self.lazy = lazy
        self._loaded: Any = None

    def loaded(self) -> Any:
        if self._loaded is None:
            self._loaded = self.lazy.load()
        return self._loaded

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        return self.loaded().make_context(*args, **kwargs)


class LazyGroup(TyperGroup):
    """A group whose sub-commands in `lazy` are imported only when one of them runs; they
    come first in `--help`, in their declared order, before the group's own commands."""

    lazy: ClassVar[tuple[Lazy, ...]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        own = dict(self.commands)
        self.commands = {entry.name: _Unloaded(entry) for entry in self.lazy}
        self.commands.update(own)


class Decloud(LazyGroup):
    lazy = (
        Lazy(
            "wallet",
            "decloud.commands.wallet:app",
            "Create, import and list wallets: the encrypted keys commands sign with.",
        ),
        Lazy(
            "account",
            "decloud.commands.account:app",
            "Deposit tokens into the hub, withdraw them, and show balances and reputation.",
        ),
        Lazy(
            "app",
            "decloud.commands.app:app",
            "Register apps, show them, and buy runs of them (app run).",
        ),
        Lazy("dataset", "decloud.commands.dataset:app", "Register datasets and show them."),
        Lazy(
            "workerpool",
            "decloud.commands.workerpool:app",
            "Register workerpools, set their policy and show them.",
        ),
        Lazy("category", "decloud.commands.category:app", "The categories of tasks."),
        Lazy(
            "order",
            "decloud.commands.order:app",
            "Write, sign, publish, show, unpublish and cancel orders.",
        ),
        Lazy("orderbook", "decloud.commands.orderbook:app", "Browse the market's orderbooks."),
        Lazy("deal", "decloud.commands.deal:app", "Show deals."),
        Lazy("task", "decloud.commands.task:app", "Show tasks, follow them live, read their logs."),
        Lazy(
            "result",
            "decloud.commands.result:app",
            "Download task results, verified against the chain.",
        ),
        Lazy("market", "decloud.market.cli:market_app", "The market service."),
        Lazy("storage", "decloud.storage.cli:app", "The result store."),
        Lazy(
            "scheduler",
            "decloud.scheduler.cli:app",
            "The scheduler service, which runs a workerpool.",
        ),
        Lazy(
            "worker",
            "decloud.worker.cli:app",
            "The worker agent, which runs replicates for a workerpool.",
        ),
        Lazy(
            "devnet",
            "decloud.devnet.cli:app",
            "A whole decloud marketplace on this machine: chain, services, workers.",
        ),
    )


class Bench(LazyGroup):
    lazy = (
        Lazy(
            "market",
            "decloud.market.cli:bench_market",
            "Publish rate (signature and chain checks included) and query latency with a "
            "full book, through `decloud market run` on a fresh anvil and a throwaway "
            "PostgreSQL.",
        ),
        Lazy(
            "e2e",
            "decloud.bench.e2e:bench_e2e",
            "Latency from matchOrders to a downloadable result (trust 1 and trust 3) and the "
            "throughput of a bag of tasks, on a fresh devnet in a temporary directory.",
        ),
    )


app = typer.Typer(
    cls=Decloud,
    help="decloud: an open, decentralized marketplace for cloud computing.",
    no_args_is_help=True,
)
bench = typer.Typer(
    cls=Bench, help="Benchmarks; each prints JSON with --json.", no_args_is_help=True
)
app.add_typer(bench, name="bench")


@app.command()
def demo(
    protocol: bool = typer.Option(
        False,
        "--protocol",
        help="Play the protocol alone on a bare chain instead: one trust-3 task with a wrong "
        "worker, every transaction and its gas.",
    ),
    output: Annotated[
        Path | None,
        typer.Option(help="Keep the downloaded result here (default: a new temporary directory)."),
    ] = None,
    as_json: bool = typer.Option(False, "--json", help="Print the steps and payments as JSON."),
) -> None:
    """Bring up a devnet, buy a trust-3 run of the sample WASM app through the market,
    download its verified result and show who was paid what; then take the devnet down."""
    if protocol:
        from decloud.demo.protocol import run_demo

        run_demo(Console(quiet=as_json), as_json=as_json)
        return
    from decloud.demo.marketplace import run_marketplace_demo

    run_marketplace_demo(Console(quiet=as_json), as_json=as_json, output=output)


@bench.command("gas")
def bench_gas(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Gas of every protocol call per scenario, on a fresh anvil, next to PoCo's."""
    from decloud.bench import gas

    report = gas.run()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title="gas per scenario (decloud vs PoCo test-suite averages)")
    for column in ("scenario", "decloud", "PoCo", "ratio", "target"):
        table.add_column(column, justify="left" if column in ("scenario", "target") else "right")
    for row in gas.table(report):
        table.add_row(*row)
    Console().print(table)


def main() -> None:
    app()
