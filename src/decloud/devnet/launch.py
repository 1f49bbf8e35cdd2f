"""`python -m decloud.devnet.launch`: the process that starts the devnet's services.

The devnet runs exactly the commands a person would (`decloud market run`, `decloud worker
run`, ...), each in a process of its own. Starting one is mostly importing it: web3,
FastAPI and SQLAlchemy take seconds of CPU per process, and a devnet has half a dozen. So
this launcher imports every service once, while `devnet up` sets up the chain, and then
forks a process per request: each child starts with everything imported and only reads its
config and serves.

Protocol, one JSON object per line: `devnet up` writes `{"service", "log", "env"}` on the
launcher's standard input; the launcher forks, and the child (in a session of its own, its
output appended to `log`, its environment exactly `env`) runs `decloud SERVICE run`; the
launcher answers `{"pid": PID}` on its standard output. It exits when its input ends; the
children, detached, live on.

Forking is safe here because nothing imported starts a thread (checked at start).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import traceback
from typing import Any

import typer

SERVICES = ("market", "storage", "scheduler", "worker")
_IMPORTED_BY_RUN = {"market": "decloud.market.service", "storage": "decloud.storage.service"}
"""What these services' `run` imports only when called: imported here, before any fork."""


def service_app(service: str) -> typer.Typer:
    """`decloud SERVICE`, with every module its `run` needs already imported."""
    if service in _IMPORTED_BY_RUN:
        importlib.import_module(_IMPORTED_BY_RUN[service])
    if service == "market":
        from decloud.market.cli import market_app

        return market_app
    if service == "storage":
        from decloud.storage.cli import app as storage_app

        return storage_app
    if service == "scheduler":
        from decloud.scheduler.cli import app as scheduler_app

        return scheduler_app
    if service == "worker":
        from decloud.worker.cli import app as worker_app

        return worker_app
    raise ValueError(f"unknown service {service!r}: one of {', '.join(SERVICES)}")


def main() -> None:
    apps = {service: service_app(service) for service in SERVICES}
    if threading.active_count() != 1:
        raise SystemExit("the services started a thread on import: forking them is not safe")
    for line in sys.stdin:
        request = json.loads(line)
        pid = _fork(apps[request["service"]], request)
        sys.stdout.write(json.dumps({"pid": pid}) + "\n")
        sys.stdout.flush()
    # Nothing to clean up, and tearing down every imported module takes a second or more,
    # which `devnet up` would wait for.
    os._exit(0)


def _fork(service: typer.Typer, request: dict[str, Any]) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The child never returns into the launcher's loop, whatever happens.
    status = 1
    try:
        _become(request)
        status = _run(service, request["service"])
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _become(request: dict[str, Any]) -> None:
    """Detach from the launcher: own session, no input, output to the log, given env."""
    os.setsid()
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((null, 0), (log, 1), (log, 2)):
        os.dup2(source, target)
    os.close(log)
    os.close(null)
    os.environ.clear()
    os.environ.update(request["env"])


def _run(service: typer.Typer, name: str) -> int:
    # Mounted under a parent as in `decloud`: a group of one command (`run`) would
    # otherwise be that command itself, and `run` an unexpected argument.
    decloud = typer.Typer()
    decloud.add_typer(service, name=name)
    try:
        decloud([name, "run"], prog_name="decloud")
    except SystemExit as stopped:
        return 0 if stopped.code is None else stopped.code if isinstance(stopped.code, int) else 1
    return 0


if __name__ == "__main__":
    main()
