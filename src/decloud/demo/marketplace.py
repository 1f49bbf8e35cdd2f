"""`decloud demo`: the whole marketplace on this machine, one task bought and delivered.

A devnet comes up in a temporary directory (anvil, the market, the result store, a
scheduler and three workers; the sample Mandelbrot app registered and offered on the
market). The requester asks the market for the cheapest orders that run the app at trust 3,
matches them, follows the task while two workers agree on the image, downloads the result
and checks it against the digest the workers revealed on-chain. The table at the end is
what the task moved between the accounts. The devnet is taken down at the end, whatever
happens.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from decloud.devnet.accounts import TOKEN
from decloud.devnet.cast import DEVNET_PASSWORD
from decloud.devnet.lifecycle import UpOptions, down, up
from decloud.sdk.config import ClientConfig
from decloud.sdk.connection import Connection, connect
from decloud.sdk.requester import Requester
from decloud.sdk.wallet import Keystore, password_from_env

APP = "mandelbrot"
"""The sample app the devnet registers and offers (examples/mandelbrot-wasm)."""
ARGS = "96 64 200 -0.75 0 1.2"
"""Width, height, iterations, centre and zoom: small enough to render in a blink."""
TRUST = 3
WORKERS = 3
TASK_TIMEOUT_S = 45.0
PREVIEW_COLUMNS = 48
ROLES = ("requester", "app_developer", "workerpool_owner")


@dataclass(frozen=True)
class Balance:
    free: int
    locked: int
    score: int


def run_marketplace_demo(
    console: Console, *, as_json: bool = False, output: Path | None = None
) -> dict[str, Any]:
    """Plays the demo; prints it on `console` (and as JSON with `as_json`). The result is
    kept in `output` (default: a new temporary directory)."""
    started = time.monotonic()
    steps: list[dict[str, Any]] = []

    def step(title: str, **details: Any) -> None:
        elapsed = round(time.monotonic() - started, 2)
        steps.append({"step": title, "at_s": elapsed, **details})
        console.print(f"[bold green]•[/bold green] {title}  [dim]({elapsed:.1f} s)[/dim]")
        for key, value in details.items():
            console.print(f"    {key}: {value}", markup=False, soft_wrap=True)

    result_dir = output or Path(tempfile.mkdtemp(prefix="decloud-demo-result-"))
    with tempfile.TemporaryDirectory(prefix="decloud-demo-") as root:
        config = Path(root) / "config.toml"
        options = UpOptions(config=config, root=Path(root) / "devnet", workers=WORKERS)
        console.print("[bold]decloud demo[/bold]: a marketplace on this machine\n")
        try:
            record = up(options)
            step(
                f"devnet up: anvil, market, result store, scheduler and {WORKERS} workers",
                seconds=record.up_seconds,
                chain=record.rpc_url,
            )
            report = _buy_and_deliver(config, step, console, result_dir)
        finally:
            down(config, options.root)
    report = {"steps": steps, **report, "total_s": round(time.monotonic() - started, 2)}
    console.print(f"\n[bold]done in {report['total_s']:.1f} s[/bold]; devnet taken down")
    if as_json:
        print(json.dumps(report, indent=2))
    return report


def _buy_and_deliver(
    config_file: Path,
    step: Callable[..., None],
    console: Console,
    result_dir: Path,
) -> dict[str, Any]:
    config = ClientConfig.load(config_file)
    keystore = Keystore(config.wallet.keystore)
    requester_wallet = keystore.unlock("requester", password_from_env() or DEVNET_PASSWORD)
    connection = connect(config, requester_wallet)
    requester = Requester(connection)
    accounts = _accounts(config_file)
    before = {name: _balance(connection, address) for name, address in accounts.items()}

    quote = requester.quote(APP, args=ARGS, trust=TRUST)
    step(
        f"the market's cheapest orders for `{APP}` at trust {TRUST}",
        app=f"{_tokens(quote.app.price)} per task ({quote.app.source})",
        workerpool=f"{_tokens(quote.workerpool.price)} per task ({quote.workerpool.source})",
        total=_tokens(quote.total),
    )
    run = requester.run(quote)
    (taskid,) = run.taskids
    step(
        "the requester signed its request order and matched it on-chain",
        deal=run.dealid,
        task=taskid,
        gas=run.gas_used,
    )

    states: list[str] = []
    final = None
    for report in requester.watch_task(taskid, timeout_s=TASK_TIMEOUT_S, interval_s=0.2):
        if not states or states[-1] != report.state:
            states.append(report.state)
            console.print(f"    task: {report.state}", style="cyan")
        final = report
    assert final is not None
    if final.state != "completed":
        raise RuntimeError(f"the task ended {final.state}: see `decloud task show {taskid}`")
    names = {address.lower(): name for name, address in accounts.items()}
    replicates = final.scheduler.replicates if final.scheduler else []
    workers = sorted(names.get(r.worker.lower(), r.worker) for r in replicates)
    step("the workers agreed on the result and the scheduler finalized", workers=workers)

    downloaded = requester.download_result(taskid, result_dir / taskid)
    step(
        "downloaded the result; its digest equals the one revealed on-chain",
        directory=str(downloaded.path),
        digest=downloaded.digest,
    )
    _preview(console, downloaded.path / "mandelbrot.ppm")

    after = {name: _balance(connection, address) for name, address in accounts.items()}
    payments = {
        name: {
            "free": after[name].free - before[name].free,
            "locked": after[name].locked - before[name].locked,
            "score": after[name].score - before[name].score,
        }
        for name in accounts
    }
    _print_payments(console, payments)
    return {
        "quote": quote.to_json(),
        "deal": run.dealid,
        "task": taskid,
        "states": states,
        "result": {"directory": str(downloaded.path), "digest": downloaded.digest},
        "payments": payments,
    }


def _accounts(config_file: Path) -> dict[str, str]:
    """The roles whose payments are shown: the people, then the workers, as the devnet's
    config file names them."""
    devnet: dict[str, str] = tomllib.loads(config_file.read_text())["devnet"]["accounts"]
    names = [*ROLES, *sorted(name for name in devnet if name.startswith("worker-"))]
    return {name: devnet[name] for name in names if name in devnet}


def _balance(connection: Connection, address: str) -> Balance:
    account = connection.hub.account(address)
    return Balance(free=account.free, locked=account.locked, score=account.score)


def _tokens(amount: int) -> str:
    """An amount in DCLD (18 decimals), as people read it."""
    return f"{amount / TOKEN:+,.4f} DCLD".removeprefix("+")


def _print_payments(console: Console, payments: dict[str, dict[str, int]]) -> None:
    table = Table(title="what the task moved (DCLD in the hub; score)")
    for column in ("account", "free", "locked", "score"):
        table.add_column(column, justify="left" if column == "account" else "right")
    for name, change in payments.items():
        free, locked = (f"{change[key] / TOKEN:+,.4f}" for key in ("free", "locked"))
        table.add_row(name, free, locked, f"{change['score']:+}")
    console.print()
    console.print(table)


def _preview(console: Console, ppm: Path) -> None:
    """The image in the terminal: two pixel rows per line, as coloured half blocks (only
    where colours show)."""
    width, height, pixels = _read_ppm(ppm)
    if console.color_system is None:
        console.print(f"    {ppm.name}: a {width}x{height} image (run in a terminal to see it)")
        return
    step = max(1, width // PREVIEW_COLUMNS)
    for y in range(0, height - step, 2 * step):
        line = Text("    ")
        for x in range(0, width, step):
            top, bottom = pixels(x, y), pixels(x, y + step)
            line.append("▀", style=f"rgb{top} on rgb{bottom}")
        console.print(line)


def _read_ppm(path: Path) -> tuple[int, int, Callable[[int, int], tuple[int, int, int]]]:
    """Width, height and a pixel reader of a binary (P6), 8-bit PPM."""
    data = path.read_bytes()
    header = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    if header is None:
        raise ValueError(f"{path} is not an 8-bit binary PPM")
    width, height = int(header[1]), int(header[2])
    body = memoryview(data)[header.end() :]

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        offset = 3 * (min(y, height - 1) * width + min(x, width - 1))
        return body[offset], body[offset + 1], body[offset + 2]

    return width, height, pixel
