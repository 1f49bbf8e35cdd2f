"""`up`, `status` and `down` of a devnet: a whole marketplace on one machine.

`up` starts the service launcher, anvil, deploys the protocol (with the default
categories), funds every role, registers the workerpool and the sample apps, writes the
keys, the keystore and the config file, then starts the market, the result store, the
scheduler and the workers, publishes app and workerpool orders on the market, and returns
once each of them answers. Whatever fails on the way, what was started is stopped again,
and the logs stay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from decloud.devnet import config as config_file
from decloud.devnet.launcher import Launcher, service_environment
from decloud.devnet.layout import Layout, default_dir
from decloud.devnet.processes import ProcessRecord, stop
from decloud.devnet.record import CHAIN_PROCESS, MARKET_PROCESS, DevnetRecord

STOP_TIMEOUT_S = 10.0
"""How long a process gets to exit after SIGTERM before it is killed (a worker drains)."""
LAUNCHER = "launcher"
"""The log of the process that forks the services (decloud.devnet.launch)."""


class DevnetError(RuntimeError):
    """The devnet cannot do what was asked; the message says what to do instead."""


@dataclass(frozen=True)
class UpOptions:
    config: Path
    root: Path
    workers: int = 3
    docker_url: str | None = None
    timeout_s: float = 60.0


# --- up ------------------------------------------------------------------------------------


def up(options: UpOptions) -> DevnetRecord:
    """Start a devnet; its record once every process answers."""
    started = time.monotonic()
    layout = Layout(options.root)
    _refuse_if_running(options.config, layout)
    layout.create()
    environment = service_environment(options.config)
    try:
        with Launcher(layout.log(LAUNCHER), environment, options.timeout_s) as launcher:
            # Imported only now, while the launcher imports the services (seconds each).
            from decloud.devnet.startup import start

            record = start(options, layout, launcher)
    except BaseException:
        _discard(layout, keep_logs=True)
        raise
    record = replace(record, up_seconds=round(time.monotonic() - started, 2))
    record.save(layout.record)
    return record


def _refuse_if_running(config: Path, layout: Layout) -> None:
    named = config_file.devnet_dir(config) if config.exists() else None
    if config.exists() and named is None:
        raise DevnetError(
            f"{config} exists and no devnet wrote it: give the devnet another config file "
            "(--config or DECLOUD_CONFIG), or move that one away"
        )
    for root in {layout.root, *([named] if named else [])}:
        record = DevnetRecord.load(Layout(root).record)
        if record is not None and record.running():
            raise DevnetError(
                f"a devnet is already running from {root} ({_names(record.running())}): "
                "stop it with `decloud devnet down` first"
            )


# --- status --------------------------------------------------------------------------------


def locate(config: Path, root: Path | None = None) -> Layout | None:
    """The devnet `config` names, else the one in `root` (default: the default directory)."""
    named = config_file.devnet_dir(config) if config.exists() else None
    for candidate in (named, root or default_dir()):
        if candidate is not None and Layout(candidate).record.exists():
            return Layout(candidate)
    return None


def status(config: Path, root: Path | None = None) -> dict[str, Any]:
    """What runs, where it answers, the chain's head, every role's balances, the sample
    apps and the orders `up` published, as the market sees them now."""
    # The chain client and the market client: seconds to import.
    from decloud.devnet.accounts import chain_view
    from decloud.devnet.offers import apps_view, orders_view

    layout = locate(config, root)
    record = DevnetRecord.load(layout.record) if layout else None
    if layout is None or record is None:
        raise DevnetError(f"no devnet found (config {config}): start one with `decloud devnet up`")
    processes = [
        {
            "name": process.name,
            "pid": process.pid,
            "alive": process.alive(),
            "url": process.url,
            "log": str(process.log),
        }
        for process in record.processes
    ]
    market_url = next((p.url for p in record.processes if p.name == MARKET_PROCESS), None)
    return {
        "running": bool(processes) and all(process["alive"] for process in processes),
        "config": str(record.config),
        "dir": str(layout.root),
        "up_seconds": record.up_seconds,
        "rpc_url": record.rpc_url,
        "workerpool": record.workerpool,
        **chain_view(record.rpc_url, layout.deployment, record.addresses),
        "processes": processes,
        "apps": apps_view(record.rpc_url, layout.deployment, record.apps),
        "missing_apps": record.missing_apps,
        "orders": orders_view(market_url, record.orders, record.apps, record.workerpool),
    }


# --- down ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stopped:
    """What `down` did: in which directory (None: no devnet was found), which processes it
    stopped, which of them it had to kill, where the logs are if it kept them."""

    dir: Path | None
    stopped: list[str]
    killed: list[str]
    logs: Path | None

    def to_json(self) -> dict[str, Any]:
        return {
            "dir": str(self.dir) if self.dir else None,
            "stopped": self.stopped,
            "killed": self.killed,
            "logs": str(self.logs) if self.logs else None,
        }


def down(config: Path, root: Path | None = None, *, keep_logs: bool = False) -> Stopped:
    """Stop every process of the devnet and remove its state."""
    layout = locate(config, root)
    if layout is None:
        return Stopped(dir=None, stopped=[], killed=[], logs=None)
    record = DevnetRecord.load(layout.record)
    running = record.running() if record else []
    killed = _discard(layout, keep_logs=keep_logs)
    return Stopped(
        dir=layout.root,
        stopped=[process.name for process in running],
        killed=killed,
        logs=layout.logs if keep_logs else None,
    )


def _discard(layout: Layout, *, keep_logs: bool) -> list[str]:
    """Stop the services, then the chain they use; remove the files and the config file
    that points here. The names of processes that had to be killed."""
    record = DevnetRecord.load(layout.record)
    killed: list[str] = []
    if record is not None:
        services = [p for p in record.processes if p.name != CHAIN_PROCESS]
        chain = [p for p in record.processes if p.name == CHAIN_PROCESS]
        killed = stop(services, STOP_TIMEOUT_S) + stop(chain, STOP_TIMEOUT_S)
        if config_file.devnet_dir(record.config) == layout.root:
            record.config.unlink()
    layout.clear(keep_logs=keep_logs)
    return killed


def _names(processes: list[ProcessRecord]) -> str:
    return ", ".join(f"{process.name} pid {process.pid}" for process in processes)
