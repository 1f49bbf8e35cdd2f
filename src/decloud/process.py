"""The child processes decloud starts and waits for (anvil, Podman's service, ...): started
with their output in a file, waited for until they answer, stopped by their own PID."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

POLL_INTERVAL_S = 0.05
"""How often a starting child is asked whether it answers yet."""
OUTPUT_TAIL = 2000
"""Characters of a child's output quoted when it fails to start."""


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Ask `process` to exit (SIGTERM), then kill it if it has not within `timeout` seconds.

    Always reaps the child, so no zombie is left behind.
    """
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Child:
    """A child process whose output goes to a temporary file: a pipe nobody reads while it
    runs could fill up and block it. The file is read back to say why it failed."""

    def __init__(self, name: str, command: list[str], error: type[Exception], **popen: Any):
        self.name = name
        self._error = error
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                **popen,
            )  # fmt: skip
        except BaseException:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_until_ready(self, answers: Callable[[], bool], timeout: float, where: str) -> None:
        """Return once `answers()` is true; the `error` type naming the exit status or the
        timeout, with the child's output, if it exits or stays silent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._error(
                    f"{self.name} exited with status {self.process.returncode}: {self.output()}"
                )
            if answers():
                return
            time.sleep(POLL_INTERVAL_S)
        raise self._error(
            f"{self.name} did not answer on {where} within {timeout} s: {self.output()}"
        )

    def output(self) -> str:
        """The end of what the child wrote so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-OUTPUT_TAIL:] or "(no output)"

    def stop(self, timeout: float) -> None:
        """Stop the child (see `stop_process`) and drop its output."""
        try:
            stop_process(self.process, timeout)
        finally:
            self._log.close()
