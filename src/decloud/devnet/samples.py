"""The sample apps a devnet registers, built from `examples/` while the chain deploys.

A module is built from source on the machine that runs the devnet rather than shipped: the
build is reproducible (the same compiler gives the same bytes), takes a fraction of a
second, and runs in the background while anvil starts and the protocol deploys. A sample
that cannot be built (no toolchain, no source checkout) leaves the devnet without it, and
`up` and `status` say why and what to install; the rest of the devnet does not depend on it.

Standard library only, like the other light modules (see decloud.devnet.layout).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
"""The sample apps' sources, in a source checkout of decloud."""
_ERROR_LINES = 10
"""How much of a failed build's output a problem quotes."""


@dataclass(frozen=True)
class SampleApp:
    """An app of `examples/` the devnet registers under `name`."""

    name: str
    build_script: Path
    """Run as `sh SCRIPT OUTPUT`: builds the module into OUTPUT."""
    module: str
    """The module's file name in the devnet's apps directory."""
    app_type: str
    """The runtime, as named by decloud.chain.registries.AppType."""
    toolchain: tuple[str, ...]
    """Commands the build runs, checked first so a missing one gets a clear message."""
    install: str
    """How to install the toolchain."""


MANDELBROT = SampleApp(
    name="mandelbrot",
    build_script=EXAMPLES / "mandelbrot-wasm" / "build.sh",
    module="mandelbrot.wasm",
    app_type="WASM",
    toolchain=("clang",),
    install="apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32",
)
SAMPLE_APPS = (MANDELBROT,)
"""Registered by every devnet. WASM only: the workers run WASM unless given a Docker
Engine, and a WASM module is bit-for-bit deterministic, as replicated tasks need."""


@dataclass(frozen=True)
class Built:
    """A sample app's module, or the reason there is none."""

    app: SampleApp
    module: Path | None
    problem: str | None = None


class Build:
    """One sample app's build, running in the background from the moment it is created."""

    def __init__(self, app: SampleApp, directory: Path) -> None:
        self.app = app
        self._output = directory / app.module
        self._process: subprocess.Popen[bytes] | None = None
        self._problem = _unbuildable(app)
        if self._problem is None:
            self._process = subprocess.Popen(
                ["sh", str(app.build_script), str(self._output)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )

    def result(self, timeout_s: float) -> Built:
        """The module once the build is over (waiting at most `timeout_s`)."""
        if self._process is None:
            return Built(self.app, None, self._problem)
        try:
            _, errors = self._process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.cancel()
            return self._failed(f"did not finish within {timeout_s:g} s")
        if self._process.returncode != 0 or not self._output.is_file():
            quoted = "\n".join(errors.decode(errors="replace").strip().splitlines()[-_ERROR_LINES:])
            return self._failed(f"failed (exit {self._process.returncode}):\n{quoted}")
        return Built(self.app, self._output)

    def cancel(self) -> None:
        """Stop the build if it still runs (`up` failed before it needed the module)."""
        if self._process is not None and self._process.poll() is None:
            # The script's compiler runs in the script's group, whose id is the script's PID.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.communicate()

    def _failed(self, what: str) -> Built:
        return Built(
            self.app,
            None,
            f"{self.app.build_script} {what}\n(the toolchain it needs: {self.app.install})",
        )


@contextmanager
def building(apps: Sequence[SampleApp], directory: Path) -> Iterator[list[Build]]:
    """Start every app's build into `directory`; those still running at the end are stopped."""
    builds = [Build(app, directory) for app in apps]
    try:
        yield builds
    finally:
        for build in builds:
            build.cancel()


def _unbuildable(app: SampleApp) -> str | None:
    """Why the app cannot be built on this machine at all, if it cannot."""
    if not app.build_script.is_file():
        return (
            f"{app.build_script} does not exist: the sample apps are built from a source "
            "checkout of decloud (its examples/ directory)"
        )
    missing = [command for command in app.toolchain if shutil.which(command) is None]
    if missing:
        return (
            f"{', '.join(missing)} not found: install the toolchain ({app.install}), then "
            "`decloud devnet down` and `decloud devnet up` again"
        )
    return None
