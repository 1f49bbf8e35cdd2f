"""What a runtime is asked to run, and what it reports back.

The worker describes one replicate's execution as a `RunSpec` and gets a `RunOutcome`: the
exit code, the head of stdout and stderr, the fuel used (WASM), the result digest when the
run succeeded, or a typed `Failure` whose cause the scheduler records and `decloud task show`
explains. A runtime never raises for something the app did or lacks; exceptions are kept
for programming errors (a spec handed to the wrong runtime).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from decloud.chain.registries import AppType

KIB = 1024
MIB = 1024 * KIB

DEFAULT_LOG_CAP = 1 * MIB
"""How much of stdout and of stderr a run keeps: enough to debug an app, small enough that a
chatty or hostile app cannot fill the worker's memory or the scheduler's database."""


class FailureCause(StrEnum):
    """Why a run produced no result, in terms the requester can act on."""

    MODULE_MISSING = "module-missing"
    IMAGE_MISSING = "image-missing"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    APP_EXITED = "app-exited"
    OUT_OF_FUEL = "out-of-fuel"
    OUT_OF_MEMORY = "out-of-memory"
    TIMEOUT = "timeout"
    OUTPUT_INVALID = "output-invalid"
    RUNTIME_ERROR = "runtime-error"

    @property
    def advice(self) -> str:
        """What to do about a failure of this kind."""
        return _ADVICE[self]


_ADVICE = {
    FailureCause.MODULE_MISSING: (
        "Download the app's module again from its multiaddr; the worker's copy is gone."
    ),
    FailureCause.IMAGE_MISSING: (
        "Pull or load the app's image into the worker's container engine, then retry."
    ),
    FailureCause.CHECKSUM_MISMATCH: (
        "The artifact is not the one registered on-chain, so it was not run. Download it "
        "again; if it still differs, the app owner publishes something else than they registered."
    ),
    FailureCause.APP_EXITED: (
        "Read the app's stderr (`decloud task logs`) and check the request's args and inputs."
    ),
    FailureCause.OUT_OF_FUEL: (
        "The task needs more computation than its fuel limit: choose a larger category or "
        "give the app less work per task."
    ),
    FailureCause.OUT_OF_MEMORY: (
        "The app needs more memory than its limit: choose a larger category or reduce the "
        "app's memory use."
    ),
    FailureCause.TIMEOUT: (
        "The app ran past its wall-clock limit and was stopped: choose a larger category, and "
        "check that it does not wait for input or for a network (it has none)."
    ),
    FailureCause.OUTPUT_INVALID: (
        "The app must write only regular files and directories below /iexec_out, and a "
        "computed.json whose deterministic-output-path stays inside it."
    ),
    FailureCause.RUNTIME_ERROR: (
        "The worker could not run the app. Unless the detail blames the app, check the "
        "worker's runtime (wasmtime, container engine) and retry."
    ),
}


@dataclass(frozen=True)
class Failure:
    """A run that produced no result: its cause, what exactly happened, and the exit code
    when the app exited by itself."""

    cause: FailureCause
    detail: str
    exit_code: int | None = None

    @property
    def message(self) -> str:
        """What happened and what to do, for a person."""
        return f"{self.detail}. {self.cause.advice}"

    def __str__(self) -> str:
        return f"{self.cause}: {self.message}"


@dataclass(frozen=True)
class Limits:
    """The resources one run may use.

    `fuel` bounds WASM instructions (each costs about one unit) and is what makes a WASM
    run's cost identical on every worker; `memory_bytes` bounds the linear memory (WASM) or
    the container's memory; `wall_time_s` is a backstop against an app that waits; `cpus`
    and `pids` apply to containers only.
    """

    fuel: int = 10**11
    memory_bytes: int = 512 * MIB
    wall_time_s: float = 300.0
    cpus: float = 1.0
    pids: int = 128

    def __post_init__(self) -> None:
        for name in ("fuel", "memory_bytes", "pids"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"limits: {name} must be a positive int, got {value!r}")
        for name in ("wall_time_s", "cpus"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"limits: {name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class RunSpec:
    """One execution of an app.

    `app` is the path of the module file (WASM) or the image reference (OCI). `checksum`, when
    given, is the registry's 32-byte checksum of that artifact; the runtime verifies it before
    running anything. `input_dir` is mounted read-only and `output_dir`, which must be empty
    or absent, receives the results. `args` come from the request's params and `env` from
    `app_environment`. `entropy_seed` seeds the random bytes a WASM app reads (the task id is
    a good seed: every replicate then draws the same bytes). `gpu` is true only for
    GPU-tagged tasks.
    """

    kind: AppType
    app: str
    input_dir: Path
    output_dir: Path
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    checksum: bytes | None = None
    entropy_seed: bytes = b""
    gpu: bool = False

    def __post_init__(self) -> None:
        if not self.app:
            raise ValueError("run spec: app must name a module file or an image")
        if self.checksum is not None and len(self.checksum) != 32:
            raise ValueError(f"run spec: checksum must be 32 bytes, got {len(self.checksum)}")
        for arg in self.args:
            if "\0" in arg:
                raise ValueError(f"run spec: argument {arg!r} contains a NUL byte")
        for name, value in self.env.items():
            if not name or "=" in name or "\0" in name or "\0" in value:
                raise ValueError(f"run spec: invalid environment variable {name!r}")


@dataclass(frozen=True)
class CapturedLog:
    """The head of one output stream of the app: at most the runtime's cap, plus how many
    bytes the app wrote in all."""

    data: bytes
    total_bytes: int

    @property
    def truncated(self) -> bool:
        return self.total_bytes > len(self.data)

    def render(self) -> bytes:
        """The kept bytes, followed by a marker line when some were dropped, so nobody
        mistakes a cut log for the whole of it."""
        if not self.truncated:
            return self.data
        dropped = self.total_bytes - len(self.data)
        return self.data + f"\n[decloud: log truncated, {dropped} more bytes dropped]\n".encode()


EMPTY_LOG = CapturedLog(b"", 0)


@dataclass(frozen=True)
class RunOutcome:
    """What happened: `digest` (the canonical result digest) is set exactly when the run
    succeeded, `failure` exactly when it did not."""

    exit_code: int | None
    stdout: CapturedLog
    stderr: CapturedLog
    duration_s: float
    fuel_used: int | None = None
    digest: bytes | None = None
    failure: Failure | None = None

    def __post_init__(self) -> None:
        if (self.digest is None) == (self.failure is None):
            raise ValueError("run outcome: exactly one of digest and failure must be set")

    @classmethod
    def not_started(cls, failure: Failure) -> RunOutcome:
        """The outcome of a run refused before the app could start."""
        return cls(None, EMPTY_LOG, EMPTY_LOG, 0.0, failure=failure)

    @property
    def succeeded(self) -> bool:
        return self.failure is None


class Runtime(Protocol):
    """Runs apps of one kind; the worker picks the runtime by the app's type."""

    @property
    def kind(self) -> AppType: ...

    def run(self, spec: RunSpec) -> RunOutcome:
        """Run the app to completion (or to a limit) and report what happened."""
        ...
