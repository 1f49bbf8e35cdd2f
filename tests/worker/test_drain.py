"""`decloud worker run` as a process: SIGTERM lets the replicate in hand finish, takes no
new work, and exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from decloud.worker.journal import Journal
from tests.worker.pool import SLOW, TIMEOUT_S, Apps, Pool, wait_for


def write_config(pool: Pool, directory: Path) -> tuple[Path, Path]:
    """A config file with a [worker] table for worker1; the file and the state dir."""
    settings = pool.worker_settings("worker1", directory)
    lines = ["[worker]"]
    for name, value in settings.model_dump(exclude_none=True).items():
        lines.append(
            f"{name} = {value!r}" if isinstance(value, int | float) else f'{name} = "{value}"'
        )
    config = directory / "decloud.toml"
    config.write_text("\n".join(lines) + "\n")
    return config, settings.state_dir


def test_sigterm_finishes_the_replicate_in_hand_takes_no_more_and_exits_0(
    pool: Pool, apps: Apps, tmp_path: Path
) -> None:
    config, state_dir = write_config(pool, tmp_path)
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "decloud.worker", "run", "--config", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: b"joined workerpool" in log.read_bytes(), "the worker joins")
        in_hand = pool.match(apps.by_file, trust=1, params=SLOW)
        journal = Journal(state_dir)
        wait_for(
            lambda: any(r.taskid == in_hand and r.state == "running" for r in journal.active()),
            "the worker runs the app",
        )

        process.send_signal(signal.SIGTERM)
        later = pool.match(apps.by_file, trust=1)
        assert process.wait(timeout=TIMEOUT_S) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=TIMEOUT_S)

    finished = journal.finished(in_hand)
    assert finished is not None and finished.state == "done", log.read_text()
    text = log.read_text()
    assert text.index("draining (SIGTERM)") < text.index(f"replicate 0x{in_hand.hex()[:12]} done")
    assert journal.active() == []
    pool.wait_for_task(in_hand, "completed")
    assert not journal.knows(later), "no work is taken while draining"
    assert pool.wait_for_task(later, "pending")["replicates"] == []
