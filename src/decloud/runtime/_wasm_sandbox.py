"""Run one WASI module, as a child process of `decloud.runtime.wasm` (run as a script).

Why a process of its own: epoch interruption stops WebAssembly code but not a host call that
blocks (a WASI `poll_oneoff` sleep), so only killing a process bounds a run's wall time for
sure; a crash of the engine cannot take the worker down; and the worker's own environment
(keys, tokens) never shares an address space with the app. The script imports nothing from
decloud, so it starts in about a tenth of a second.

Usage: `python -I _wasm_sandbox.py JOB.json`. The job names the module, its sha256, the
compiled-module cache, argv, env, the two directories, the limits and the entropy seed. The
app's stdout and stderr are this process's own; the verdict is written as JSON to the job's
`result_path`:

- `{"status": "exited", "exit_code": N, ...}`: the app returned or called proc_exit;
- `{"status": "trapped", "trap": "out-of-fuel" | "interrupted" | "other", "message": ...}`;
- `{"status": "memory-exceeded", ...}`: a memory's minimum size is above the limit;
- `{"status": "invalid-module", "message": ...}`: the bytes are not a runnable WASI module;
plus `fuel_used` and `memory_bytes` (size of the exported memory at the end) when it ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
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


def run(job: dict[str, Any]) -> dict[str, Any]:
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


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text())
    Path(job["result_path"]).write_text(json.dumps(run(job)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
