"""The WASM runtime's sandbox server: one long-lived process that forks a child per run.

Each run must still be a process of its own, gone when the run is over, whatever ended it;
the server is started on the first run, replaced when it died, and stopped with the
runtime, leaving no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from decloud.chain.registries import AppType
from decloud.runtime import FailureCause, Limits, RunOutcome, RunSpec, WasmRuntime
from tests.runtime.wat_apps import SLEEPS_FOR_A_DAY

SpecFor = Callable[..., RunSpec]

SAYS_HELLO = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[WasmRuntime]:
    with contextlib.closing(WasmRuntime(tmp_path / "compiled", kill_grace_s=0.5)) as wasm:
        yield wasm


def children_of(pid: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while we looked
        # The command name, in parentheses, may hold spaces: fields are counted after it.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            children.add(int(entry.name))
    return children


def is_running(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_server_starts_on_the_first_run_has_one_thread_and_stops_on_close(
    tmp_path: Path, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    runtime = WasmRuntime(tmp_path / "compiled")
    assert runtime.server_pid is None

    outcome = runtime.run(spec_for(AppType.WASM, wat_module(SAYS_HELLO)))
    server = runtime.server_pid

    assert outcome.succeeded, outcome.failure
    assert outcome.stdout.data == b"hello\n"
    assert server is not None and is_running(server)
    assert len(os.listdir(f"/proc/{server}/task")) == 1  # forking is safe only then
    assert children_of(server) == set()  # the run's process is gone with the run
    assert runtime.run(spec_for(AppType.WASM, wat_module(SAYS_HELLO))).succeeded
    assert runtime.server_pid == server  # one server for every run

    runtime.close()

    assert runtime.server_pid is None
    assert not is_running(server)


def test_a_dead_server_is_replaced_on_the_next_run(
    runtime: WasmRuntime, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    assert runtime.run(spec_for(AppType.WASM, wat_module(SAYS_HELLO))).succeeded
    server = runtime.server_pid
    assert server is not None

    os.kill(server, signal.SIGKILL)
    wait_until(lambda: not is_running(server))
    outcome = runtime.run(spec_for(AppType.WASM, wat_module(SAYS_HELLO)))

    assert outcome.succeeded, outcome.failure
    assert runtime.server_pid not in (None, server)


def test_a_run_blocked_past_its_wall_time_is_killed_and_reaped(
    runtime: WasmRuntime, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    outcome = runtime.run(
        spec_for(AppType.WASM, wat_module(SLEEPS_FOR_A_DAY), limits=Limits(wall_time_s=0.3))
    )

    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.TIMEOUT
    server = runtime.server_pid
    assert server is not None
    assert children_of(server) == set()


def test_a_slow_run_does_not_hold_up_a_quick_one_beside_it(
    runtime: WasmRuntime, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    # Each child must hold only its own pipes: a quick run whose stdout pipe was also open
    # in the slow run's child would not see the end of its output until the slow one ended.
    slow: list[RunOutcome] = []
    sleeper = spec_for(AppType.WASM, wat_module(SLEEPS_FOR_A_DAY), limits=Limits(wall_time_s=5))
    thread = threading.Thread(target=lambda: slow.append(runtime.run(sleeper)))
    thread.start()
    wait_until(lambda: runtime.server_pid is not None and bool(children_of(runtime.server_pid)))

    quick = runtime.run(spec_for(AppType.WASM, wat_module(SAYS_HELLO)))
    slow_still_running = thread.is_alive()
    thread.join()

    assert quick.succeeded, quick.failure
    assert quick.stdout.data == b"hello\n"
    assert slow_still_running, "the quick run ended only once the slow one had"
    [outcome] = slow
    assert outcome.failure is not None and outcome.failure.cause is FailureCause.TIMEOUT


def test_closing_the_runtime_kills_a_run_in_progress_and_leaves_no_process(
    tmp_path: Path, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    runtime = WasmRuntime(tmp_path / "compiled")
    outcomes: list[RunOutcome] = []
    sleeper = spec_for(AppType.WASM, wat_module(SLEEPS_FOR_A_DAY), limits=Limits(wall_time_s=60))
    thread = threading.Thread(target=lambda: outcomes.append(runtime.run(sleeper)))
    thread.start()
    wait_until(lambda: runtime.server_pid is not None and bool(children_of(runtime.server_pid)))
    server = runtime.server_pid
    assert server is not None
    [child] = children_of(server)

    runtime.close()
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert not is_running(server)
    assert not is_running(child)
    [outcome] = outcomes
    assert outcome.failure is not None
    assert outcome.failure.cause is FailureCause.RUNTIME_ERROR
    assert "server stopped during the run" in outcome.failure.message


def test_a_malformed_request_fails_alone_and_the_server_serves_the_next_run(
    runtime: WasmRuntime, spec_for: SpecFor, wat_module: Callable[[str], Path]
) -> None:
    assert runtime.run(spec_for(AppType.WASM, wat_module(SAYS_HELLO))).succeeded
    server = runtime.server_pid
    read_out, write_out = os.pipe()
    read_err, write_err = os.pipe()
    try:
        with runtime._server.submit(write_out, write_err) as line:
            line.sendall(b"this is not a run\n")
            answer = json.loads(line.makefile().readline())
    finally:
        for fd in (read_out, write_out, read_err, write_err):
            os.close(fd)

    assert "not JSON" in answer["error"]
    assert runtime.run(spec_for(AppType.WASM, wat_module(SAYS_HELLO))).succeeded
    assert runtime.server_pid == server, "the same server serves on"
