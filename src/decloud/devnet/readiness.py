"""When is a devnet process ready: when it answers.

Anvil answers its JSON-RPC, each service its info endpoint, and the workers count once the
scheduler has heard from them (a worker has no API of its own, and is useful only once it
has logged in to the scheduler). Waiting is bounded, and a process that exits or does not
answer in time fails `up` with its name and the end of its log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from decloud.devnet.launcher import StartError
from decloud.devnet.processes import ProcessRecord, tail

_POLL_S = 0.1
_REQUEST_TIMEOUT_S = 2.0
INFO_PATHS = {"market": "/v1/info", "storage": "/info", "scheduler": "/v1/info"}
"""Where each service says what it serves."""
_WORKERS_ALIVE = "decloud_scheduler_workers_alive"
"""The scheduler's metric of workers that logged in or pinged recently."""


@dataclass(frozen=True)
class Readiness:
    """What to wait for: `ready` to answer True while every process in `processes` runs."""

    name: str
    processes: Sequence[ProcessRecord]
    ready: Callable[[httpx.Client], bool]
    waiting_for: str


def chain_ready(anvil: ProcessRecord) -> Readiness:
    url = str(anvil.url)
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    return Readiness(
        anvil.name,
        [anvil],
        lambda client: _answers(lambda: client.post(url, json=body)),
        f"JSON-RPC answer on {url}",
    )


def service_ready(service: ProcessRecord) -> Readiness:
    url = f"{service.url}{INFO_PATHS[service.name]}"
    return Readiness(
        service.name,
        [service],
        lambda client: _answers(lambda: client.get(url)),
        f"answer to GET {url}",
    )


def workers_ready(workers: Sequence[ProcessRecord], scheduler_url: str) -> Readiness:
    return Readiness(
        "workers",
        workers,
        lambda client: workers_alive(client, scheduler_url) >= len(workers),
        f"{len(workers)} worker(s) alive in the scheduler's {scheduler_url}/metrics",
    )


def workers_alive(client: httpx.Client, scheduler_url: str) -> int:
    """The workers the scheduler has heard from recently (0 if it does not answer)."""
    try:
        answer = client.get(f"{scheduler_url}/metrics")
    except httpx.HTTPError:
        return 0
    for line in answer.text.splitlines():
        if line.startswith(_WORKERS_ALIVE + " "):
            return int(float(line.split()[1]))
    return 0


def wait_until_ready(waits: Sequence[Readiness], timeout_s: float) -> None:
    """Return once every wait is over; StartError at the first process that exits, or
    when `timeout_s` passes, naming what did not come up and quoting its log."""
    pending = list(waits)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=_REQUEST_TIMEOUT_S) as client:
        while pending:
            for wait in list(pending):
                _check_running(wait)
                if wait.ready(client):
                    pending.remove(wait)
            if pending and time.monotonic() > deadline:
                raise StartError(_late(pending[0], timeout_s))
            if pending:
                time.sleep(_POLL_S)


def _answers(request: Callable[[], httpx.Response]) -> bool:
    try:
        return request().status_code == 200
    except httpx.HTTPError:
        return False


def _check_running(wait: Readiness) -> None:
    for process in wait.processes:
        if not process.alive():
            raise StartError(
                f"{process.name} exited while starting; the end of {process.log}:\n"
                + tail(process.log)
            )


def _late(wait: Readiness, timeout_s: float) -> str:
    logs = "\n".join(
        f"--- the end of {process.log}:\n{tail(process.log)}" for process in wait.processes
    )
    return f"{wait.name}: no {wait.waiting_for} within {timeout_s:g} s\n{logs}"
