"""Fixtures of the end-to-end tests: the sample apps built from source, and the log tails of
every process of a failed test's cluster in its report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import MANDELBROT_BUILD, Cluster, build


@pytest.fixture(scope="session")
def mandelbrot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample WASM app, built by its own recipe."""
    module = tmp_path_factory.mktemp("apps") / "mandelbrot.wasm"
    build([str(MANDELBROT_BUILD), str(module)])
    return module


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Cluster):
                report.sections.append(("logs of the cluster's processes", value.tails()))
