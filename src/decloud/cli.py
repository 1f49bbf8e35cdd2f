"""The `decloud` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from decloud.commands import add_commands
from decloud.devnet.cli import app as devnet_app
from decloud.market.cli import app as order_app
from decloud.market.cli import bench_market, market_app, orderbook_app
from decloud.scheduler.cli import app as scheduler_app
from decloud.storage.cli import app as storage_app
from decloud.worker.cli import app as worker_app

app = typer.Typer(
    help="decloud: an open, decentralized marketplace for cloud computing.", no_args_is_help=True
)
bench = typer.Typer(help="Benchmarks; each prints JSON with --json.", no_args_is_help=True)
app.add_typer(bench, name="bench")
app.add_typer(order_app, name="order")
add_commands(app, order_app)
app.add_typer(orderbook_app, name="orderbook")
app.add_typer(market_app, name="market")
bench.command("market")(bench_market)
app.add_typer(storage_app, name="storage")
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(worker_app, name="worker")
app.add_typer(devnet_app, name="devnet")


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
