"""Processes are recorded by PID and start time, and stopped by that PID only."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

from decloud.devnet.processes import ProcessRecord, launch, recorded, stop, tail


def test_a_launched_process_is_alive_until_stopped(tmp_path: Path) -> None:
    record = launch("sleeper", ["sleep", "60"], tmp_path / "sleeper.log")
    try:
        assert record.alive()
        assert stop([record], timeout_s=5) == []
        assert not record.alive()
    finally:
        stop([record], timeout_s=1)


def test_a_process_that_ignores_sigterm_is_killed_and_named(tmp_path: Path) -> None:
    script = "trap '' TERM; echo ready; while true; do sleep 0.1; done"
    record = launch("stubborn", ["sh", "-c", script], tmp_path / "stubborn.log")
    try:
        _wait_for_output(record.log, "ready")
        assert stop([record], timeout_s=0.5) == ["stubborn"]
        assert not record.alive()
    finally:
        stop([record], timeout_s=1)


def test_a_reused_pid_is_not_ours_and_is_never_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        now = recorded("other", other.pid, tmp_path / "other.log")
        assert now.alive() and now.started is not None
        # What a record says after its process died and the PID went to `other`, which
        # started a second (100 clock ticks) later.
        stale = dataclasses.replace(now, started=now.started - 100)
        assert not stale.alive()
        assert stop([stale], timeout_s=1) == []
        assert other.poll() is None, "the stranger was left alone"
    finally:
        other.kill()
        other.wait()


def test_the_record_survives_its_json_form(tmp_path: Path) -> None:
    record = ProcessRecord("market", 123, 456, tmp_path / "m.log", "http://127.0.0.1:1")
    assert ProcessRecord.from_json(record.to_json()) == record


def test_tail_gives_the_last_lines_of_a_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    assert tail(log, 2) == "line 98\nline 99"
    assert tail(tmp_path / "missing.log") == "(no log)"


def _wait_for_output(log: Path, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{log} never said {text!r}"
        time.sleep(0.05)
