"""`decloud bench e2e` with tiny counts, on a real devnet: the report has every figure, each
positive, and the devnet is gone afterwards. No figure is compared with a target here: the
machine's load decides them (docs/benchmarks.md has the measured values)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from decloud.bench import e2e

pytestmark = pytest.mark.anvil

LATENCY_FIELDS = {"samples", "p50", "p95", "min", "max"}


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, dict):
        return [number for item in value.values() for number in _numbers(item)]
    if isinstance(value, list):
        return [number for item in value for number in _numbers(item)]
    return []


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """The command as the lead mounts it (`decloud bench e2e`), with tiny counts."""
    app = typer.Typer()
    app.command()(e2e.bench_e2e)

    result = CliRunner().invoke(
        app, ["--samples", "2", "--bag", "4", "--workers", "2", "--json"], catch_exceptions=False
    )

    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_the_report_has_latency_at_both_trusts_and_throughput(report: dict[str, Any]) -> None:
    for trust in ("trust1", "trust3"):
        figures = report["latency_s"][trust]
        assert set(figures) == LATENCY_FIELDS
        assert figures["samples"] == 2
        assert figures["min"] <= figures["p50"] <= figures["p95"] <= figures["max"]
    assert report["bag"]["tasks"] == 4
    assert report["throughput_tasks_per_min"] > 0
    assert report["devnet"]["workers"] == 2
    assert report["host"]["cpus"] >= 1


def test_every_measured_figure_is_positive(report: dict[str, Any]) -> None:
    measured = {key: report[key] for key in ("latency_s", "warmup_s", "bag")}
    numbers = [*_numbers(measured), report["throughput_tasks_per_min"]]
    assert numbers and all(number > 0 for number in numbers), measured


def test_the_report_names_the_devnets_timing(report: dict[str, Any]) -> None:
    assert report["devnet"]["scheduler"]["poll_interval_s"] > 0
    assert report["devnet"]["worker"]["pull_interval_s"] > 0


def test_the_bench_leaves_no_devnet_behind(report: dict[str, Any]) -> None:
    leftovers = list(Path(tempfile.gettempdir()).glob("decloud-bench-e2e-*"))
    assert leftovers == []


def test_one_worker_is_refused_with_what_to_do() -> None:
    with pytest.raises(e2e.BenchError, match="--workers 2 or more"):
        e2e.run(samples=1, bag=1, workers=1)
