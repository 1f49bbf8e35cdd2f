"""The `decloud` command loads a group's module only when that group runs, so that help and
light commands start without web3, FastAPI or SQLAlchemy (seconds of CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import decloud.sdk
from decloud.cli import Bench, Decloud, Lazy, app

HEAVY = ("web3", "fastapi", "sqlalchemy")

# Runs `decloud ARGS...` as the console script does, then names the heavy packages loaded.
_PROBE = """
import json, sys
from decloud.cli import main
sys.argv = ["decloud", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def _run(*args: str) -> tuple[str, set[str]]:
    """The output of `decloud ARGS...` in a fresh interpreter, and the top-level packages
    it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return done.stdout, set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_decloud_help_lists_every_group_without_importing_any_of_them() -> None:
    output, imported = _run("--help")

    assert imported.isdisjoint(HEAVY), imported & set(HEAVY)
    for lazy in Decloud.lazy:
        assert lazy.name in output
        assert lazy.help[:40] in output


@pytest.mark.parametrize(
    "args", [["wallet", "list", "--help"], ["wallet", "--help"], ["bench", "--help"]]
)
def test_light_commands_import_no_web3_fastapi_or_sqlalchemy(args: list[str]) -> None:
    output, imported = _run(*args)

    assert "Usage: decloud" in output
    assert imported.isdisjoint(HEAVY), imported & set(HEAVY)


@pytest.mark.parametrize("lazy", [*Decloud.lazy, *Bench.lazy], ids=lambda lazy: lazy.target)
def test_each_group_is_listed_with_its_own_help(lazy: Lazy) -> None:
    loaded = lazy.load()

    assert loaded.name == lazy.name
    assert " ".join(loaded.help.split()) == lazy.help


def test_a_group_runs_once_named() -> None:
    runner = CliRunner()

    order = runner.invoke(app, ["order", "--help"])
    assert order.exit_code == 0, order.output
    for command in ("init", "sign", "publish", "show", "unpublish", "cancel"):
        assert command in order.output

    e2e = runner.invoke(app, ["bench", "e2e", "--help"])
    assert e2e.exit_code == 0, e2e.output
    assert "--samples" in e2e.output


def test_a_mistyped_group_is_answered_with_the_right_name() -> None:
    result = CliRunner().invoke(app, ["walet", "list"])

    assert result.exit_code == 2
    assert "Did you mean 'wallet'" in result.output


def test_every_name_of_the_sdk_is_found_on_first_use() -> None:
    for name in decloud.sdk.__all__:
        assert getattr(decloud.sdk, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        getattr(decloud.sdk, "Nothing")  # noqa: B009
