"""`decloud demo --protocol`: one replicated task played on a bare local chain, step by step.

A requester buys one execution of an app at trust 3 from a workerpool of three workers,
one of which returns a wrong result. The demo deploys the protocol on a fresh anvil, plays
every transaction of the task through the same facades the services use, and shows who
was paid what and what each call cost in gas.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from decloud.chain.anvil import Anvil
from decloud.chain.hub import AccountBalance
from decloud.chain.localnet import LocalMarket
from decloud.protocol.digest import result_digest

PARTIES = ["requester", "app_owner", "pool_owner", "worker1", "worker2", "worker3"]
HONEST, FAULTY = ["worker1", "worker2"], "worker3"
TRACK_RECORD = 12


def run_demo(console: Console, *, as_json: bool = False) -> dict[str, Any]:
    """Plays the demo; prints it on `console` (and as JSON with `as_json`)."""
    steps: list[dict[str, Any]] = []

    def step(title: str, gas: int | None = None, **details: Any) -> None:
        steps.append({"step": title, "gas": gas, **details})
        suffix = f"  [dim]({gas:,} gas)[/dim]" if gas is not None else ""
        console.print(f"[bold green]•[/bold green] {title}{suffix}")
        for key, value in details.items():
            console.print(f"    {key}: {value}")

    with Anvil() as anvil:
        console.print(f"[bold]decloud demo[/bold] on a local anvil chain at {anvil.rpc_url}\n")
        market = LocalMarket.create(anvil.rpc_url, list(anvil.private_keys), PARTIES)
        deployment = market.deployment
        step(
            "deployed the protocol",
            hub=deployment.hub,
            marketplace=deployment.marketplace,
            token=deployment.token,
        )
        step(
            "each party deposited tokens in the hub; the app owner registered an app, the "
            "workerpool owner a workerpool",
            app=market.app,
            workerpool=market.workerpool,
        )
        market.build_reputation(HONEST, TRACK_RECORD)
        step(
            f"{' and '.join(HONEST)} built a track record of {TRACK_RECORD} tasks each (score "
            f"{TRACK_RECORD}, vote weight 3); {FAULTY} is new (weight 2)"
        )

        before = {name: market[name].hub.account() for name in PARTIES}
        deal = market.match(trust=3)
        step(
            "the requester signed a request order (trust 3) and matched it with the app and "
            "workerpool orders",
            gas=deal.receipt.gas_used,
            deal=deal.dealid.hex(),
            price=f"app {deal.deal.app_price:,} + workerpool {deal.deal.workerpool_price:,} locked",
            worker_stake=f"{deal.deal.worker_stake:,}",
        )

        good, bad = _results()
        index = deal.deal.bot_first
        receipt = market.contribute(deal, index, FAULTY, bad)
        step(f"{FAULTY} contributed a WRONG result", gas=receipt.gas_used, digest=bad.hex())
        for worker in HONEST:
            receipt = market.contribute(deal, index, worker, good)
            step(f"{worker} contributed the right result", gas=receipt.gas_used, digest=good.hex())
        task = market["requester"].hub.task(deal.task_id(index))
        step(
            "consensus reached: the right result outweighs the wrong one at trust 3",
            winners=task.winners,
            contributors=task.contributors,
        )
        for worker in HONEST:
            receipt = market.reveal(deal, index, worker, good)
            step(f"{worker} revealed its digest", gas=receipt.gas_used)
        receipt = market.finalize(deal, index, [*HONEST, FAULTY])
        step("the scheduler finalized the task: everybody is paid", gas=receipt.gas_used)

        after = {name: market[name].hub.account() for name in PARTIES}
        kitty = market["requester"].hub.kitty()

    payments = {name: _change(before[name], after[name]) for name in PARTIES}
    _print_payments(console, payments)
    report = {"steps": steps, "payments": payments, "kitty": kitty}
    if as_json:
        print(json.dumps(report, indent=2))
    return report


def _results() -> tuple[bytes, bytes]:
    """Canonical digests of a right and a wrong result directory."""
    with tempfile.TemporaryDirectory() as root:
        good, bad = Path(root, "good"), Path(root, "bad")
        for directory, text in (
            (good, "mandelbrot 64x64: 1337 points inside\n"),
            (bad, "mandelbrot 64x64: 0 points inside\n"),
        ):
            directory.mkdir()
            (directory / "result.txt").write_text(text)
        return result_digest(good), result_digest(bad)


def _change(before: AccountBalance, after: AccountBalance) -> dict[str, int]:
    return {key: asdict(after)[key] - value for key, value in asdict(before).items()}


def _print_payments(console: Console, payments: dict[str, dict[str, int]]) -> None:
    table = Table(title="what the task changed (free and locked balances in token units, score)")
    for column in ("party", "free", "locked", "score"):
        table.add_column(column, justify="left" if column == "party" else "right")
    for name, change in payments.items():
        table.add_row(
            name, f"{change['free']:+,}", f"{change['locked']:+,}", f"{change['score']:+}"
        )
    console.print()
    console.print(table)
