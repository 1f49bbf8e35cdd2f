"""HTTP services for the CLI under test: an ASGI app served by uvicorn on loopback, in a
thread of the test process, and a scheduler that plays a scripted task."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from decloud.runtime.spec import FailureCause
from decloud.scheduler.schemas import ReplicateStatus, TaskStatus
from decloud.scheduler.state import ReplicateState, TaskState

WORKERS = ["0x" + f"{n:040x}" for n in (0xA1, 0xA2, 0xA3)]


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app's base URL while it serves."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def replicate(
    worker: int, state: ReplicateState, cause: FailureCause | None = None
) -> ReplicateStatus:
    return ReplicateStatus(
        worker=WORKERS[worker], state=state, cause=None if cause is None else cause.value,
        message="" if cause is None else "the app exited with status 2",
        advice=None if cause is None else cause.advice, assigned_at=1.0,
        result_hash=None, results=None,
    )  # fmt: skip


def task_status(
    taskid: bytes, state: TaskState, replicates: list[ReplicateStatus], reason: str = ""
) -> TaskStatus:
    return TaskStatus(
        taskid="0x" + taskid.hex(), dealid="0x" + "de" * 32, index=0, state=state,
        reason=reason, consensus=None, contribution_deadline=2_000_000_000,
        reveal_deadline=None, final_deadline=2_000_000_000,
        results="ipfs://bafyresult" if state == "completed" else None,
        replicates=replicates, history=[],
    )  # fmt: skip


def happy_story(taskid: bytes) -> list[TaskStatus]:
    """A trust-3 task: one replicate's app fails, two others agree, the task completes."""
    return [
        task_status(taskid, "pending", [], "waiting for a worker"),
        task_status(taskid, "active", [replicate(0, "running"), replicate(1, "assigned")]),
        task_status(
            taskid,
            "active",
            [
                replicate(0, "failed", FailureCause.APP_EXITED),
                replicate(1, "contributed"),
                replicate(2, "running"),
            ],
        ),
        task_status(
            taskid,
            "completed",
            [
                replicate(0, "failed", FailureCause.APP_EXITED),
                replicate(1, "revealed"),
                replicate(2, "revealed"),
            ],
        ),
    ]


def scripted_scheduler(story: list[TaskStatus]) -> FastAPI:
    """A scheduler whose task moves one step of `story` per request, then stays."""
    app = FastAPI()
    asked = [0]

    @app.get("/v1/tasks/{taskid}")
    def task(taskid: str) -> dict[str, object]:
        step = story[min(asked[0], len(story) - 1)]
        asked[0] += 1
        return step.model_dump(mode="json")

    return app
