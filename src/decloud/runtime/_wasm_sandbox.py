"""Run WASI modules for `decloud.runtime.wasm`: a fork server (run as a script) that forks
one child process per run.

Why a process per run: epoch interruption stops WebAssembly code but not a host call that
blocks (a WASI `poll_oneoff` sleep), so only killing a process bounds a run's wall time for
sure; a crash of the engine cannot take the worker down; and the worker's own environment
(keys, tokens) never shares an address space with the app: the server starts with an empty
environment and imports nothing from decloud.

Why a fork server: a fresh interpreter that imports wasmtime costs about 100 ms of CPU, more
than a small task's whole run. The server pays it once; a small module's run, fork included,
then costs about 12 ms. Forking copies only the calling thread, so it is safe only while the
server has no other thread: it never compiles (wasmtime compiles on a thread pool) nor
starts timers itself, and it checks its thread count before each fork. Everything else
happens in the child. Linux only (pidfd, PR_SET_PDEATHSIG, /proc).

Usage: `python -I _wasm_sandbox.py FD`, where FD is one end of a Unix socket pair, the
control socket. Each message on it carries three descriptors (SCM_RIGHTS): a stream socket
for the run, and the write ends of the app's stdout and stderr pipes. On the run socket the
runtime sends the job as one line of JSON (the module, its sha256, the compiled-module
cache, argv, env, the two directories, the limits, the entropy seed and the `result_path`);
the server answers `{"pid": N}` once the child runs, then `{"returncode": N}` (negative: the
signal that ended it) once it has ended, or `{"error": ...}` if it could not fork. A line
`kill` kills the child; a run socket closed early kills it too. The server ends, killing
its children, when the control socket closes: the runtime closed it, or its process died.
A child dies with the server (PR_SET_PDEATHSIG).

The child writes its verdict as JSON to the job's `result_path`:

- `{"status": "exited", "exit_code": N, ...}`: the app returned or called proc_exit;
- `{"status": "trapped", "trap": "out-of-fuel" | "interrupted" | "other", "message": ...}`;
- `{"status": "memory-exceeded", ...}`: a memory's minimum size is above the limit;
- `{"status": "invalid-module", "message": ...}`: the bytes are not a runnable WASI module;
plus `fuel_used` and `memory_bytes` (size of the exported memory at the end) when it ran.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import selectors
import signal
import socket
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime

WASM_PAGE = 65536
_ERRNO_SUCCESS = 0
_ERRNO_FAULT = 21
_ERRNO_INVAL = 28
_CLOCK_IDS = 4
"""WASI preview1 clocks: realtime, monotonic, process and thread CPU time."""
_CLOCK_STEP_NS = 1000
"""How far the virtual clock moves at each reading: time passes, but identically everywhere."""


def new_engine() -> wasmtime.Engine:
    """The engine configuration is part of every compiled module's identity: wasmtime refuses
    to load a module compiled under another one, so it is fixed here and nowhere else."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.cranelift_nan_canonicalization = True
    return wasmtime.Engine(config)


def load_module(engine: wasmtime.Engine, job: dict[str, Any]) -> wasmtime.Module:
    """The compiled module, from the cache when it holds it, else compiled and cached.

    The module bytes are hashed again here: the parent verified the file, but only what is
    read now is what runs.
    """
    cache_dir = Path(job["cache_dir"]) if job["cache_dir"] else None
    compiled = cache_dir / f"{job['sha256']}.cwasm" if cache_dir else None
    if compiled is not None and compiled.is_file():
        try:
            return wasmtime.Module.deserialize_file(engine, str(compiled))
        except wasmtime.WasmtimeError:
            pass  # compiled by another wasmtime version or config: compile again below
    wasm = Path(job["module"]).read_bytes()
    if hashlib.sha256(wasm).hexdigest() != job["sha256"]:
        raise ValueError("the module changed after its checksum was verified")
    module = wasmtime.Module(engine, wasm)
    if compiled is not None:
        _write_atomically(compiled, bytes(module.serialize()))
    return module


def _write_atomically(path: Path, data: bytes) -> None:
    """Concurrent runs of one module may compile it at once; readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".compiling-")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def required_memory(module: wasmtime.Module) -> int:
    """The largest minimum size, in bytes, of a memory the module defines or imports."""
    types = [item.type for item in module.exports] + [item.type for item in module.imports]
    return max(
        (kind.limits.min * WASM_PAGE for kind in types if isinstance(kind, wasmtime.MemoryType)),
        default=0,
    )


def wasi_config(job: dict[str, Any]) -> wasmtime.WasiConfig:
    """argv, env, stdio and the two preopened directories; nothing else of the host.

    WASI preview1 has no sockets, so the app has no network at all.
    """
    wasi = wasmtime.WasiConfig()
    wasi.argv = job["argv"]
    wasi.env = [tuple(pair) for pair in job["env"]]
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.preopen_dir(job["input_dir"], "/iexec_in", False)
    wasi.preopen_dir(job["output_dir"], "/iexec_out", True)
    return wasi


def define_deterministic_wasi(linker: wasmtime.Linker, seed: bytes) -> None:
    """Replace WASI's clocks and random bytes with deterministic ones.

    Replicates of a task must produce the same bytes; an app that stamps the time or seeds
    from `getentropy` would otherwise disagree with itself on every worker. Random bytes are
    SHAKE-256 of the seed and a call counter; every clock starts at 0 and moves 1 µs per
    reading.
    """
    calls = {"random": 0, "clock": 0}

    def random_get(caller: wasmtime.Caller, pointer: int, length: int) -> int:
        index = calls["random"]
        calls["random"] += 1
        data = hashlib.shake_256(seed + index.to_bytes(8, "big")).digest(length)
        return _write_guest(caller, pointer, data)

    def clock_time_get(caller: wasmtime.Caller, clock: int, _precision: int, pointer: int) -> int:
        if not 0 <= clock < _CLOCK_IDS:
            return _ERRNO_INVAL
        calls["clock"] += 1
        return _write_guest(
            caller, pointer, (calls["clock"] * _CLOCK_STEP_NS).to_bytes(8, "little")
        )

    def clock_res_get(caller: wasmtime.Caller, clock: int, pointer: int) -> int:
        if not 0 <= clock < _CLOCK_IDS:
            return _ERRNO_INVAL
        return _write_guest(caller, pointer, _CLOCK_STEP_NS.to_bytes(8, "little"))

    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    linker.allow_shadowing = True
    for name, params, function in (
        ("random_get", [i32, i32], random_get),
        ("clock_time_get", [i32, i64, i32], clock_time_get),
        ("clock_res_get", [i32, i32], clock_res_get),
    ):
        linker.define_func(
            "wasi_snapshot_preview1",
            name,
            wasmtime.FuncType(params, [i32]),
            function,
            access_caller=True,
        )


def _write_guest(caller: wasmtime.Caller, pointer: int, data: bytes) -> int:
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        return _ERRNO_FAULT
    if pointer < 0 or pointer + len(data) > memory.data_len(caller):
        return _ERRNO_FAULT
    if data:
        memory.write(caller, data, pointer)
    return _ERRNO_SUCCESS


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Compile (or load), instantiate and run the module's `_start` within the limits."""
    wasm_engine = new_engine()
    try:
        module = load_module(wasm_engine, job)
    except (wasmtime.WasmtimeError, ValueError, OSError) as error:
        return {"status": "invalid-module", "message": str(error)}
    required = required_memory(module)
    if required > job["memory_bytes"]:
        return {"status": "memory-exceeded", "memory_bytes": required}
    store = wasmtime.Store(wasm_engine)
    store.set_wasi(wasi_config(job))
    store.set_fuel(job["fuel"])
    store.set_limits(memory_size=job["memory_bytes"])
    store.set_epoch_deadline(1)
    linker = wasmtime.Linker(wasm_engine)
    linker.define_wasi()
    define_deterministic_wasi(linker, bytes.fromhex(job["entropy_seed"]))
    timer = threading.Timer(job["wall_time_s"], wasm_engine.increment_epoch)
    timer.daemon = True
    timer.start()
    instance: wasmtime.Instance | None = None
    try:
        instance = linker.instantiate(store, module)
        start = instance.exports(store).get("_start")
        if not isinstance(start, wasmtime.Func):
            return {"status": "invalid-module", "message": "the module exports no _start"}
        start(store)
        verdict: dict[str, Any] = {"status": "exited", "exit_code": 0}
    except wasmtime.ExitTrap as exit_trap:
        verdict = {"status": "exited", "exit_code": exit_trap.code}
    except wasmtime.Trap as trap:
        verdict = {"status": "trapped", "trap": _trap_kind(trap), "message": trap.message}
    except wasmtime.WasmtimeError as error:
        verdict = {"status": "trapped", "trap": "other", "message": str(error)}
    finally:
        timer.cancel()
    verdict["fuel_used"] = job["fuel"] - store.get_fuel()
    verdict["memory_bytes"] = _memory_size(instance, store)
    return verdict


def _trap_kind(trap: wasmtime.Trap) -> str:
    if trap.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
        return "out-of-fuel"
    if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
        return "interrupted"
    return "other"


def _memory_size(instance: wasmtime.Instance | None, store: wasmtime.Store) -> int:
    if instance is None:
        return 0
    memory = instance.exports(store).get("memory")
    return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)
_RUN_FDS = 3
"""A run's descriptors on the control socket: its run socket, the app's stdout and stderr."""
_KILL = b"kill"


@dataclass(eq=False)
class _Run:
    """One run, from its request to the reaping of its child."""

    connection: socket.socket | None
    stdout_fd: int
    stderr_fd: int
    request: bytearray = field(default_factory=bytearray)
    pid: int | None = None
    pidfd: int | None = None


class _Server:
    """The fork server's loop: one thread, one selector, no timers."""

    def __init__(self, control: socket.socket) -> None:
        self._control = control
        self._selector = selectors.DefaultSelector()
        self._selector.register(control, selectors.EVENT_READ)
        self._children: dict[int, _Run] = {}

    def serve(self) -> None:
        """Serve runs until the control socket closes, then kill the children left."""
        try:
            while True:
                for key, _events in self._selector.select():
                    if key.fileobj is self._control:
                        if not self._accept():
                            return
                    elif isinstance(key.fileobj, socket.socket):
                        self._on_request(key.data)
                    else:
                        self._on_exit(key.data)
        finally:
            for pid in self._children:
                _kill(pid)
            for pid in self._children:
                os.waitpid(pid, 0)

    def _accept(self) -> bool:
        """Take a new run from the control socket; False once the runtime closed it."""
        message, fds, _flags, _address = socket.recv_fds(self._control, 1, _RUN_FDS)
        if not message or len(fds) != _RUN_FDS:
            for fd in fds:
                os.close(fd)
            return bool(message)
        connection = socket.socket(fileno=fds[0])
        self._selector.register(connection, selectors.EVENT_READ, _Run(connection, fds[1], fds[2]))
        return True

    def _on_request(self, run: _Run) -> None:
        connection = run.connection
        assert connection is not None
        try:
            data = connection.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._abandon(run)
        elif run.pid is not None:
            if _KILL in data:
                _kill(run.pid)
        else:
            run.request += data
            line, newline, rest = run.request.partition(b"\n")
            if newline:
                try:
                    job = json.loads(line)
                except ValueError as error:
                    _reply(run, {"error": f"the run's request is not JSON: {error}"})
                    self._abandon(run)
                    return
                self._fork(run, job)
                if run.pid is not None and _KILL in rest:
                    _kill(run.pid)

    def _fork(self, run: _Run, job: dict[str, Any]) -> None:
        threads = len(os.listdir("/proc/self/task"))
        if threads != 1:
            # Another thread may hold a lock the child would wait on forever. Exiting makes
            # the runtime start a fresh server for the next run.
            _reply(
                run,
                {
                    "error": f"the WASM fork server had {threads} threads, so it could "
                    "not fork safely; it is restarted for the next run"
                },
            )
            self._finish(run)
            raise SystemExit(1)
        server = os.getpid()
        try:
            pid = os.fork()
        except OSError as error:
            # Out of processes or memory: this run fails, the others go on.
            _reply(run, {"error": f"the WASM fork server could not fork: {error}"})
            self._abandon(run)
            return
        if pid == 0:
            _child(run, job, server)
        os.close(run.stdout_fd)
        os.close(run.stderr_fd)
        run.pid = pid
        run.pidfd = os.pidfd_open(pid)
        self._children[pid] = run
        self._selector.register(run.pidfd, selectors.EVENT_READ, run)
        _reply(run, {"pid": pid})

    def _on_exit(self, run: _Run) -> None:
        assert run.pid is not None and run.pidfd is not None
        _pid, status = os.waitpid(run.pid, 0)
        del self._children[run.pid]
        self._selector.unregister(run.pidfd)
        os.close(run.pidfd)
        _reply(run, {"returncode": os.waitstatus_to_exitcode(status)})
        self._finish(run)

    def _abandon(self, run: _Run) -> None:
        """The runtime gave up on the run: its child, if any, is killed and reaped later."""
        if run.pid is None:
            os.close(run.stdout_fd)
            os.close(run.stderr_fd)
        else:
            _kill(run.pid)
        self._finish(run)

    def _finish(self, run: _Run) -> None:
        if run.connection is not None:
            self._selector.unregister(run.connection)
            run.connection.close()
            run.connection = None


def _reply(run: _Run, message: dict[str, Any]) -> None:
    if run.connection is None:
        return
    # A runtime that is gone gets no reply; its child is reaped all the same.
    with contextlib.suppress(OSError):
        run.connection.sendall(json.dumps(message).encode() + b"\n")


def _kill(pid: int) -> None:
    """Only ever called on an unreaped child, so the pid cannot name another process."""
    os.kill(pid, signal.SIGKILL)


def _child(run: _Run, job: dict[str, Any], server: int) -> None:
    """The forked child: becomes the sandbox of one run and never returns."""
    code = 1
    try:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != server:
            return  # the server died before prctl: nobody waits for this run
        _take_stdio(run.stdout_fd, run.stderr_fd)
        verdict = run_job(job)
        Path(job["result_path"]).write_text(json.dumps(verdict))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _take_stdio(stdout_fd: int, stderr_fd: int) -> None:
    """The run's pipes as stdout and stderr, and no other descriptor of the server: another
    run's pipe held open here would keep that run's capture from ever ending."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd, 2)
    highest = max(int(name) for name in os.listdir("/proc/self/fd"))
    os.closerange(3, highest + 1)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print(f"usage: python -I {argv[0]} CONTROL_FD", file=sys.stderr)
        return 2
    _Server(socket.socket(fileno=int(argv[1]))).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
