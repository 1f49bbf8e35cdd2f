"""The sample apps' builds and the trust the devnet's pool offers, without a chain."""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from decloud.devnet.cli import show_report
from decloud.devnet.offers import MIN_OFFERED_TRUST, offered_trust
from decloud.devnet.samples import MANDELBROT, Build, building
from decloud.protocol.hub import consensus_reached, worker_weight


def test_the_mandelbrot_sample_builds_the_module_its_build_script_builds(tmp_path: Path) -> None:
    reference = tmp_path / "reference.wasm"
    subprocess.run([str(MANDELBROT.build_script), str(reference)], check=True, capture_output=True)

    built = Build(MANDELBROT, tmp_path).result(timeout_s=60)

    assert built.problem is None and built.module == tmp_path / "mandelbrot.wasm"
    assert _sha256(built.module) == _sha256(reference)


def test_without_clang_the_sample_is_missing_and_the_problem_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    built = Build(MANDELBROT, tmp_path).result(timeout_s=60)

    assert built.module is None and built.problem is not None
    assert "clang not found" in built.problem
    assert "apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32" in built.problem


def test_without_a_source_checkout_the_problem_names_the_missing_script(tmp_path: Path) -> None:
    elsewhere = replace(MANDELBROT, build_script=tmp_path / "examples" / "build.sh")

    built = Build(elsewhere, tmp_path).result(timeout_s=60)

    assert built.module is None and built.problem is not None
    assert f"{tmp_path / 'examples' / 'build.sh'} does not exist" in built.problem


def test_a_failing_build_quotes_the_end_of_its_errors(tmp_path: Path) -> None:
    script = tmp_path / "build.sh"
    script.write_text("echo 'app.c:1: error: wasi-libc missing' >&2\nexit 1\n")

    built = Build(replace(MANDELBROT, build_script=script), tmp_path).result(timeout_s=60)

    assert built.module is None and built.problem is not None
    assert "failed (exit 1)" in built.problem and "wasi-libc missing" in built.problem


def test_a_build_still_running_when_up_fails_is_stopped_with_its_children(tmp_path: Path) -> None:
    script, sleeper = tmp_path / "build.sh", tmp_path / "sleeper.pid"
    script.write_text(f"sleep 60 &\necho $! > {sleeper}\nwait\n")
    started = time.monotonic()

    with building([replace(MANDELBROT, build_script=script)], tmp_path):
        while not sleeper.exists() or not sleeper.read_text().strip():
            time.sleep(0.01)

    assert time.monotonic() - started < 10
    _wait_until_gone(int(sleeper.read_text()))


def test_the_pool_offers_the_highest_trust_its_fresh_workers_reach_together() -> None:
    for workers in range(8):
        group = worker_weight(0) ** workers
        trust = offered_trust(workers)
        assert trust >= MIN_OFFERED_TRUST
        if trust > MIN_OFFERED_TRUST:
            assert consensus_reached(group, 1 + group, trust)
        assert not consensus_reached(group, 1 + group, trust + 1)
    assert offered_trust(2) == 4 and offered_trust(3) == 8


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_until_gone(pid: int) -> None:
    """Gone, or a zombie its new parent has not collected yet: either way not running."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} of the cancelled build still runs")


def test_status_says_why_a_sample_app_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    problem = "clang not found, so the sample app mandelbrot cannot be built: install it"
    report = {
        "dir": "/tmp/devnet", "processes": [], "chain_id": 31337, "rpc_url": "http://127.0.0.1:1",
        "head": 1, "workerpool": "0x72c54137382711007C0f809657dEfCfec00E4F25", "accounts": [],
        "apps": [], "missing_apps": {"mandelbrot": problem}, "orders": [],
    }  # fmt: skip

    show_report(report, as_json=False)

    assert f"no sample app mandelbrot: {problem}" in " ".join(capsys.readouterr().out.split())
