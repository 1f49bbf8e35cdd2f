"""`decloud demo` (the README's first command) on a real devnet: the task is bought on the
market, completes at trust 3, its result is downloaded and verified, and the payments add
up to what the requester paid."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from decloud.demo.marketplace import ARGS, TRUST, run_marketplace_demo

pytestmark = pytest.mark.anvil

DEMO_BOUND_S = 60.0
"""The issue's bound for the whole demo, devnet up and down included."""


def test_the_demo_buys_a_trust_3_run_and_everybody_is_paid_what_the_requester_paid(
    tmp_path: Path,
) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system="truecolor", width=100)

    report = run_marketplace_demo(console, output=tmp_path)

    assert report["states"][-1] == "completed"
    assert report["total_s"] < DEMO_BOUND_S
    quote = report["quote"]
    assert quote["request"]["trust"] == TRUST
    assert ARGS in quote["request"]["params"]
    assert {quote["app"]["source"], quote["workerpool"]["source"]} == {"market"}
    image = Path(report["result"]["directory"]) / "mandelbrot.ppm"
    assert image.read_bytes().startswith(b"P6\n96 64\n255\n")

    payments = report["payments"]
    assert payments["requester"]["free"] == -int(quote["total"])
    assert payments["app_developer"]["free"] == int(quote["app"]["price"])
    assert all(change["locked"] == 0 for change in payments.values()), "every stake unlocked"
    assert sum(change["free"] for change in payments.values()) == 0, "nothing created or lost"
    winners = [name for name, change in payments.items() if change["score"] == 1]
    assert len(winners) == 2 and all(name.startswith("worker-") for name in winners)
    assert "▀" in screen.getvalue(), "the image is previewed in a terminal"
