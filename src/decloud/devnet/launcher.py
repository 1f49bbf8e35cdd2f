"""The devnet's end of `decloud.devnet.launch`: the process that forks the services.

Started first thing in `devnet up`, it imports every service while `up` imports the chain
client and sets up the chain; by the time the config file is written, starting a service
costs a fork.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from decloud.devnet.layout import CONFIG_VARIABLE
from decloud.devnet.processes import ProcessRecord, recorded, tail

_EXIT_S = 5.0
_SERVICE_PREFIXES = ("DECLOUD_MARKET_", "DECLOUD_STORAGE_", "DECLOUD_SCHEDULER_", "DECLOUD_WORKER_")


class StartError(RuntimeError):
    """A process of the devnet did not come up."""


def service_environment(config: Path) -> dict[str, str]:
    """This environment, reading `config`, without the caller's `DECLOUD_<SERVICE>_*`
    overrides: the devnet runs what its config file says, so that the file tells the truth."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(_SERVICE_PREFIXES)
    }
    return environment | {CONFIG_VARIABLE: str(config)}


class Launcher:
    """A running `decloud.devnet.launch`; use it as a context manager."""

    def __init__(self, log: Path, env: Mapping[str, str], timeout_s: float) -> None:
        self._log = log
        self._timeout_s = timeout_s
        with log.open("ab") as output:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "decloud.devnet.launch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=output,
                env=dict(env),
                start_new_session=True,
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:
            # `up` failed: the launcher may still be importing; do not wait for it.
            self._process.kill()
        self.close()

    def start(
        self, name: str, service: str, log: Path, env: Mapping[str, str], url: str | None = None
    ) -> ProcessRecord:
        """`decloud SERVICE run` in a new process, its output appended to `log`; waits
        (bounded) while the launcher is still importing."""
        assert self._process.stdin is not None and self._process.stdout is not None
        request = {"service": service, "log": str(log), "env": dict(env)}
        try:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise StartError(self._failure(f"exited before starting {name}")) from None
        ready, _, _ = select.select([self._process.stdout], [], [], self._timeout_s)
        answer = self._process.stdout.readline() if ready else b""
        if not answer:
            raise StartError(self._failure(f"did not start {name} within {self._timeout_s:g} s"))
        return recorded(name, int(json.loads(answer)["pid"]), log, url)

    def close(self) -> None:
        """End the launcher; the processes it started live on."""
        assert self._process.stdin is not None and self._process.stdout is not None
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=_EXIT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()

    def _failure(self, what: str) -> str:
        return f"the service launcher {what}; the end of {self._log}:\n{tail(self._log)}"
