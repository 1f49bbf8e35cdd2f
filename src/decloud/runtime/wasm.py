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

Each run happens in a process of its own, forked by the runtime's sandbox server
(`_wasm_sandbox.py`, see its docstring for why and how): the server is started on the first
run, started again if it died, and stopped by `close` (or by the end of the worker's process).
Compiled modules are cached in `cache_dir`, keyed by the module's sha256; the cache must be
private to the worker, since wasmtime trusts the compiled code it loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
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
_KILL_WAIT_S = 10.0
"""How long a killed run may take to be reaped before the run is reported without it."""
_SERVER_STOP_S = 5.0
"""How long a server told to stop may take to kill its runs and exit before it is killed."""


@dataclass(frozen=True)
class _Execution:
    """What the sandbox process reported, plus what the parent saw of it."""

    verdict: dict[str, Any] | None
    killed: bool
    returncode: int | None
    duration_s: float
    problem: str | None = None
    """Why the run has no returncode: the server could not fork it, or stopped."""


class _SandboxServer:
    """The fork server of one runtime: started on first use, started again if it died."""

    def __init__(self, python: str) -> None:
        self._python = python
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._process.pid if self._process is not None else None

    def submit(self, stdout_fd: int, stderr_fd: int) -> socket.socket:
        """Hand the server a new run and the app's stdout and stderr pipes; the socket
        returned is the run's line to it."""
        ours, theirs = socket.socketpair()
        try:
            with self._lock:
                for attempt in range(2):
                    try:
                        socket.send_fds(
                            self._running(), [b"r"], [theirs.fileno(), stdout_fd, stderr_fd]
                        )
                        return ours
                    except OSError:
                        # The server died since it was last used: once, start a new one.
                        # A live one (the error is ours, say too many open files) keeps
                        # serving the runs it holds.
                        if attempt or (self._process is not None and self._process.poll() is None):
                            raise
                        self._stop()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _running(self) -> socket.socket:
        if self._process is not None and self._process.poll() is None:
            assert self._control is not None
            return self._control
        self._stop()
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [self._python, "-I", str(_SANDBOX), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env={},
                # Keeps a terminal's Ctrl-C for the worker, which drains before it stops.
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._control = ours
        return ours

    def _stop(self) -> None:
        """Closing the control socket tells the server to kill its children and exit."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            try:
                self._process.wait(timeout=_SERVER_STOP_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


class WasmRuntime:
    """Runs WASI modules; safe to share between threads (each run is its own process).

    `close` stops the sandbox server; a closed runtime starts a new one if used again.

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
        self._server = _SandboxServer(python)

    @property
    def server_pid(self) -> int | None:
        """The sandbox server's process id; None before the first run and after `close`."""
        return self._server.pid

    def close(self) -> None:
        """Stop the sandbox server, killing any run still going."""
        self._server.close()

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
        request = json.dumps(self._job(spec, sha256, private / "result.json")).encode() + b"\n"
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        try:
            connection = self._server.submit(stdout_write, stderr_write)
        except BaseException:
            os.close(stdout_read)
            os.close(stderr_read)
            raise
        finally:
            os.close(stdout_write)
            os.close(stderr_write)
        readers = [
            drain_pipe(os.fdopen(stdout_read, "rb"), stdout),
            drain_pipe(os.fdopen(stderr_read, "rb"), stderr),
        ]
        started = time.monotonic()
        with connection:
            connection.sendall(request)
            killed, returncode, problem = _await_end(
                _Replies(connection), started + spec.limits.wall_time_s + self._kill_grace_s
            )
        duration = time.monotonic() - started
        for reader in readers:
            reader.join()
        verdict = _read_verdict(private / "result.json")
        return _Execution(verdict, killed, returncode, duration, problem)

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


class _Replies:
    """The server's JSON lines on a run socket."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._buffer = bytearray()

    def kill(self) -> None:
        # A server that is gone took its children with it.
        with contextlib.suppress(OSError):
            self._connection.sendall(b"kill\n")

    def next(self, deadline: float) -> dict[str, Any] | None:
        """The next reply; None if the server closed the run socket first.

        Raises TimeoutError at the deadline.
        """
        while b"\n" not in self._buffer:
            self._connection.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                data = self._connection.recv(4096)
            except ConnectionError:
                data = b""
            if not data:
                return None
            self._buffer += data
        line, _newline, rest = self._buffer.partition(b"\n")
        self._buffer = rest
        reply = json.loads(line)
        assert isinstance(reply, dict)
        return reply


def _await_end(replies: _Replies, deadline: float) -> tuple[bool, int | None, str | None]:
    """Wait for the run's end, killing it at the deadline: (killed, returncode, problem)."""
    killed = False
    while True:
        try:
            reply = replies.next(deadline)
        except TimeoutError:
            if killed:
                return True, None, f"the sandbox was not reaped {_KILL_WAIT_S:g} s after its kill"
            replies.kill()
            killed = True
            deadline = time.monotonic() + _KILL_WAIT_S
            continue
        if reply is None:
            return killed, None, "the WASM sandbox server stopped during the run"
        if "returncode" in reply:
            return killed, int(reply["returncode"]), None
        if "error" in reply:
            return killed, None, str(reply["error"])


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
        ended = execution.problem or f"the WASM sandbox ended with status {execution.returncode}"
        return Failure(FailureCause.RUNTIME_ERROR, f"{ended} without a verdict (see stderr)")
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
