"""The WASM runtime: WASI preview1 modules run by wasmtime, the natural runtime for
replicated tasks.

A run is deterministic: fuel counts WebAssembly instructions, not time, so two workers
running the same module on the same inputs produce identical outputs and use identical fuel;
WASI's clocks and random bytes are replaced by deterministic ones (seeded by the spec's
`entropy_seed`), and NaN bit patterns are canonicalized. The app sees its input directory
read-only at /iexec_in, its output directory at /iexec_out, its args and env, and nothing
else: WASI preview1 has no sockets, so it has no network.

Limits: fuel (exhausted -> OUT_OF_FUEL), linear memory (a store limiter; see
`_memory_failure` for how exceeding it is recognised), and wall time (epoch interruption
traps running code -> TIMEOUT; a child process that is still alive shortly after is killed,
which also bounds host calls such as a WASI sleep).

Each run happens in a child process (`_wasm_sandbox.py`, see its docstring for why).
Compiled modules are cached in `cache_dir`, keyed by the module's sha256; the cache must be
private to the worker, since wasmtime trusts the compiled code it loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decloud.chain.registries import AppType
from decloud.runtime.capture import LogCapture, drain_pipe
from decloud.runtime.checksum import file_checksum, verify_checksum
from decloud.runtime.output import conclude, prepare_directories
from decloud.runtime.spec import (
    DEFAULT_LOG_CAP,
    Failure,
    FailureCause,
    RunOutcome,
    RunSpec,
)

_SANDBOX = Path(__file__).with_name("_wasm_sandbox.py")
APP_NAME = "app"
"""argv[0] of every module: the same on every worker, unlike the module's path."""


@dataclass(frozen=True)
class _Execution:
    """What the sandbox process reported, plus what the parent saw of it."""

    verdict: dict[str, Any] | None
    killed: bool
    returncode: int
    duration_s: float


class WasmRuntime:
    """Runs WASI modules; safe to share between threads (each run is its own process).

    `kill_grace_s` is how long after the wall-time limit a sandbox that did not stop by
    itself is killed: long enough for epoch interruption to report a clean TIMEOUT, short
    enough that a blocked app does not hold the worker.
    """

    kind = AppType.WASM

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        log_cap: int = DEFAULT_LOG_CAP,
        kill_grace_s: float = 2.0,
        python: str = sys.executable,
    ) -> None:
        self._cache_dir = cache_dir
        self._log_cap = log_cap
        self._kill_grace_s = kill_grace_s
        self._python = python

    def run(self, spec: RunSpec) -> RunOutcome:
        if spec.kind is not AppType.WASM:
            raise ValueError(f"WasmRuntime runs WASM apps, not {spec.kind.name}")
        module = Path(spec.app)
        refused = verify_checksum(module, spec.checksum) or prepare_directories(spec)
        if refused is not None:
            return RunOutcome.not_started(refused)
        try:
            sha256 = spec.checksum or file_checksum(module)
        except OSError as error:
            return RunOutcome.not_started(
                Failure(FailureCause.MODULE_MISSING, f"the module {module} cannot be read: {error}")
            )
        stdout, stderr = LogCapture(self._log_cap), LogCapture(self._log_cap)
        try:
            with tempfile.TemporaryDirectory(prefix="decloud-wasm-") as private:
                execution = self._execute(spec, sha256, Path(private), stdout, stderr)
        except OSError as error:
            return RunOutcome.not_started(
                Failure(FailureCause.RUNTIME_ERROR, f"the WASM sandbox cannot start: {error}")
            )
        digest, failure = conclude(spec, _failure(spec, execution))
        verdict = execution.verdict or {}
        exit_code = verdict.get("exit_code")
        # An interrupted run's fuel depends on when the clock struck (and wasmtime does not
        # even account for it then): only a run that ended by itself has a meaningful count.
        timed_out = failure is not None and failure.cause is FailureCause.TIMEOUT
        fuel_used = None if timed_out else verdict.get("fuel_used")
        return RunOutcome(
            exit_code=exit_code,
            stdout=stdout.result(),
            stderr=stderr.result(),
            duration_s=execution.duration_s,
            fuel_used=fuel_used,
            digest=digest,
            failure=failure,
        )

    def _execute(
        self,
        spec: RunSpec,
        sha256: bytes,
        private: Path,
        stdout: LogCapture,
        stderr: LogCapture,
    ) -> _Execution:
        """Run the sandbox process to its end, or kill it after the wall time and grace."""
        job_path, result_path = private / "job.json", private / "result.json"
        job_path.write_text(json.dumps(self._job(spec, sha256, result_path)))
        started = time.monotonic()
        process = subprocess.Popen(
            [self._python, "-I", str(_SANDBOX), str(job_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={},
        )
        assert process.stdout is not None and process.stderr is not None
        readers = [drain_pipe(process.stdout, stdout), drain_pipe(process.stderr, stderr)]
        killed = False
        try:
            process.wait(timeout=spec.limits.wall_time_s + self._kill_grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            killed = True
        finally:
            duration = time.monotonic() - started
            for reader in readers:
                reader.join()
        return _Execution(_read_verdict(result_path), killed, process.returncode, duration)

    def _job(self, spec: RunSpec, sha256: bytes, result_path: Path) -> dict[str, Any]:
        return {
            "module": str(Path(spec.app).resolve()),
            "sha256": sha256.hex(),
            "cache_dir": str(self._cache_dir.resolve()) if self._cache_dir else None,
            "argv": [APP_NAME, *spec.args],
            "env": sorted(spec.env.items()),
            "input_dir": str(spec.input_dir.resolve()),
            "output_dir": str(spec.output_dir.resolve()),
            "fuel": spec.limits.fuel,
            "memory_bytes": spec.limits.memory_bytes,
            "wall_time_s": spec.limits.wall_time_s,
            "entropy_seed": spec.entropy_seed.hex(),
            "result_path": str(result_path),
        }


def _read_verdict(path: Path) -> dict[str, Any] | None:
    """The sandbox's verdict; None if it died before writing all of it."""
    try:
        verdict = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return verdict if isinstance(verdict, dict) else None


def _failure(spec: RunSpec, execution: _Execution) -> Failure | None:
    """Why the run failed, from the sandbox's verdict; None when the app exited with 0."""
    limits = spec.limits
    verdict = execution.verdict
    if execution.killed or (verdict is not None and verdict.get("trap") == "interrupted"):
        return Failure(
            FailureCause.TIMEOUT, f"the app was still running after {limits.wall_time_s:g} s"
        )
    if verdict is None:
        return Failure(
            FailureCause.RUNTIME_ERROR,
            f"the WASM sandbox ended with status {execution.returncode} without a verdict "
            "(see stderr)",
        )
    status = verdict["status"]
    if status == "invalid-module":
        return Failure(FailureCause.RUNTIME_ERROR, f"the module cannot run: {verdict['message']}")
    if status == "memory-exceeded":
        return Failure(
            FailureCause.OUT_OF_MEMORY,
            f"the module needs {verdict['memory_bytes']} bytes of memory to start, the limit "
            f"is {limits.memory_bytes}",
        )
    if verdict.get("trap") == "out-of-fuel":
        return Failure(FailureCause.OUT_OF_FUEL, f"the app used all its {limits.fuel} fuel")
    failed = status == "trapped" or verdict["exit_code"] != 0
    if failed and _memory_failure(verdict["memory_bytes"], limits.memory_bytes):
        return Failure(
            FailureCause.OUT_OF_MEMORY,
            f"the app failed with its memory at {verdict['memory_bytes']} bytes of its "
            f"{limits.memory_bytes}-byte limit, so an allocation was most likely refused",
            exit_code=verdict.get("exit_code"),
        )
    if status == "trapped":
        return Failure(FailureCause.APP_EXITED, f"the app trapped: {verdict['message']}")
    if verdict["exit_code"] != 0:
        return Failure(
            FailureCause.APP_EXITED,
            f"the app exited with code {verdict['exit_code']}",
            exit_code=verdict["exit_code"],
        )
    return None


def _memory_failure(memory_bytes: int, limit: int) -> bool:
    """Whether a failed run is best explained by its memory limit.

    wasmtime does not trap when the limit refuses a `memory.grow`: the instruction returns -1,
    malloc returns NULL, and the app exits or aborts as it sees fit. What is left to see is
    the memory's final size: allocators grow the heap geometrically or in chunks smaller
    than it, so a failure with less headroom left than the memory already holds is taken
    for an allocation the limit refused. Failures far below the limit stay APP_EXITED.
    """
    return memory_bytes * 2 >= limit
