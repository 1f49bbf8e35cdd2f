"""The devnet's processes: started detached, recorded by PID, stopped by that PID.

The chain and the services must outlive the `devnet up` command that starts them, so each
runs in its own session (a terminal's Ctrl-C in the shell does not reach it) with its output
in a log file. A PID alone is not an identity: after a reboot the same number may belong to
another program. The record therefore keeps the process's start time as the kernel reports
it, and a process counts as ours only while both match, so `down` never signals a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PROC = Path("/proc")
_POLL_S = 0.05
TAIL_LINES = 20


@dataclass(frozen=True)
class ProcessRecord:
    """A process the devnet started: its name, PID and start time, its log and its URL."""

    name: str
    pid: int
    started: int | None
    """Start time in clock ticks after boot (/proc/PID/stat); None where there is no /proc."""
    log: Path
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "started": self.started,
            "log": str(self.log),
            "url": self.url,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=data["name"],
            pid=data["pid"],
            started=data["started"],
            log=Path(data["log"]),
            url=data["url"],
        )

    def alive(self) -> bool:
        """Whether this very process still runs (not a zombie, not a reused PID)."""
        if not _PROC.is_dir():
            return _exists(self.pid)
        return self.started is not None and _start_time(self.pid) == self.started


def launch(
    name: str,
    command: Sequence[str],
    log: Path,
    *,
    url: str | None = None,
) -> ProcessRecord:
    """Start `command` detached from this process, its output appended to `log`."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return recorded(name, process.pid, log, url)


def recorded(name: str, pid: int, log: Path, url: str | None = None) -> ProcessRecord:
    """The record of a running process, with the start time that identifies it."""
    return ProcessRecord(name, pid, _start_time(pid), log, url)


def stop(processes: Iterable[ProcessRecord], timeout_s: float) -> list[str]:
    """Terminate the processes (and anything each started), kill those still running after
    `timeout_s`; the names of those that had to be killed."""
    running = [record for record in processes if record.alive()]
    for record in running:
        _signal_group(record, signal.SIGTERM)
    _wait_until_gone(running, timeout_s)
    stubborn = [record for record in running if record.alive()]
    for record in stubborn:
        _signal_group(record, signal.SIGKILL)
    _wait_until_gone(stubborn, timeout_s)
    return [record.name for record in stubborn]


def _wait_until_gone(processes: list[ProcessRecord], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(record.alive() for record in processes):
        _reap(processes)
        time.sleep(_POLL_S)


def tail(log: Path, lines: int = TAIL_LINES) -> str:
    """The end of a log, to show why a process did not come up."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def _signal_group(record: ProcessRecord, number: signal.Signals) -> None:
    # Each process leads its own session and group (start_new_session), whose id is its PID.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, number)


def _reap(processes: Iterable[ProcessRecord]) -> None:
    """Collect the exit status of those that are this process's children (when `up`
    stops what it started after a failure), so that they do not linger as zombies."""
    for record in processes:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, os.WNOHANG)


def _start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat; None if there is no such live process."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
