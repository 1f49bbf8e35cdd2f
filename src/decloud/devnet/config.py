"""The one config file a devnet writes, and every other command reads.

It holds the client tables the SDK and the CLI read (`[chain]`, `[contracts]`, `[services]`,
`[wallet]`), one table per service in the format `decloud.service.settings` expects
(`[market]`, `[storage]`, `[scheduler]`, `[worker]`), `[apps]`, the sample apps the devnet
registered (name = address: commands that run an app accept its name), and `[devnet]`, which
says where the devnet that wrote the file keeps its state. The file holds paths to keys,
never keys.

Every worker needs its own key and state directory, but a config file has one `[worker]`
table: it is worker-1's, and the others run with `DECLOUD_WORKER_KEY_FILE` and
`DECLOUD_WORKER_STATE_DIR` overriding those two fields (see `worker_environment`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from decloud.devnet.cast import (
    DEFAULT_ROLE,
    DEVNET_PASSWORD,
    KEYSTORE_PASSWORD_VARIABLE,
    SCHEDULER_ROLE,
    worker_names,
)
from decloud.devnet.layout import Layout
from decloud.devnet.tomlfile import Table, dumps

if TYPE_CHECKING:  # the chain client is heavy to import (see decloud.devnet.layout)
    from decloud.chain.deploy import Deployment

HOST = "127.0.0.1"
DEVNET_TABLE = "devnet"

# Faster than the services' defaults, which suit a real chain: on the devnet a task should
# go from match to result in seconds, and a stopped worker should be noticed quickly.
_SCHEDULER_TUNING: Table = {
    "poll_interval_s": 0.2,
    "ping_interval_s": 2.0,
    "lost_after_s": 10.0,
    "upload_wait_s": 15.0,
}
_WORKER_TUNING: Table = {
    "slots": 2,
    "pull_interval_s": 0.5,
    "chain_poll_s": 0.1,
    "result_report_wait_s": 15.0,
    "drain_timeout_s": 10.0,
}
_MARKET_TUNING: Table = {"sync_interval_s": 0.5}


@dataclass(frozen=True)
class Ports:
    """The loopback ports of the chain and the services."""

    chain: int
    market: int
    storage: int
    scheduler: int

    def url(self, service: str) -> str:
        port: int = getattr(self, service)
        return f"http://{HOST}:{port}"


@dataclass(frozen=True)
class Plan:
    """Everything the config file says, known before any service starts."""

    layout: Layout
    ports: Ports
    deployment: Deployment
    workerpool: str
    workers: int
    addresses: dict[str, str]
    apps: dict[str, str]
    """The sample apps registered: name -> address."""
    docker_url: str | None = None


def document(plan: Plan) -> dict[str, Table]:
    """The config file's tables."""
    return {
        "chain": {"rpc_url": plan.ports.url("chain"), "chain_id": plan.deployment.chain_id},
        "contracts": _contracts(plan.deployment),
        "services": {name: plan.ports.url(name) for name in ("market", "storage", "scheduler")},
        "wallet": _wallet(plan),
        "apps": dict(plan.apps),
        "market": _market(plan),
        "storage": _storage(plan),
        "scheduler": _scheduler(plan),
        **({"worker": _worker(plan)} if plan.workers else {}),
        DEVNET_TABLE: {
            "dir": plan.layout.root,
            "workerpool": plan.workerpool,
            "accounts": dict(plan.addresses),
        },
    }


def write(path: Path, plan: Plan) -> None:
    """The config file, readable by its owner only: it may hold the keystore's password."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by `decloud devnet up`; removed by `decloud devnet down`.\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file that existed keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text + dumps(document(plan)))


def devnet_dir(path: Path) -> Path | None:
    """The devnet directory a config file names, None if no devnet wrote the file."""
    try:
        table = tomllib.loads(path.read_text()).get(DEVNET_TABLE)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if not isinstance(table, dict) or not isinstance(table.get("dir"), str):
        return None
    return Path(table["dir"])


def worker_environment(layout: Layout, worker: str) -> dict[str, str]:
    """What makes `decloud worker run` with the devnet's config run as `worker`."""
    return {
        "DECLOUD_WORKER_KEY_FILE": str(layout.key_file(worker)),
        "DECLOUD_WORKER_STATE_DIR": str(layout.worker_state(worker)),
    }


def _wallet(plan: Plan) -> Table:
    """The keystore of the people's roles. Its password goes in the file only when the
    keyfiles use the devnet's well-known one (DECLOUD_WALLET_PASSWORD unset): the keys are
    anvil's public test keys, and every command then runs without a prompt."""
    table: dict[str, Any] = {"keystore": plan.layout.keystore, "default": DEFAULT_ROLE}
    if not os.environ.get(KEYSTORE_PASSWORD_VARIABLE):
        table["password"] = DEVNET_PASSWORD
    return table


def _contracts(deployment: Deployment) -> Table:
    fields: dict[str, Any] = deployment.to_json()
    del fields["chain_id"]  # in [chain]
    return fields


def _chain_client(plan: Plan) -> Table:
    """What every service needs to reach the chain and find the contracts."""
    return {"rpc_url": plan.ports.url("chain"), "deployment": plan.layout.deployment}


def _sqlite(plan: Plan, service: str) -> str:
    return f"sqlite:///{plan.layout.data / f'{service}.db'}"


def _market(plan: Plan) -> Table:
    return {
        "host": HOST,
        "port": plan.ports.market,
        "database_url": _sqlite(plan, "market"),
        **_chain_client(plan),
        **_MARKET_TUNING,
    }


def _storage(plan: Plan) -> Table:
    return {
        "host": HOST,
        "port": plan.ports.storage,
        "database_url": _sqlite(plan, "storage"),
        "root": plan.layout.data / "results",
        **_chain_client(plan),
    }


def _scheduler(plan: Plan) -> Table:
    return {
        "host": HOST,
        "port": plan.ports.scheduler,
        "database_url": _sqlite(plan, "scheduler"),
        **_chain_client(plan),
        "workerpool": plan.workerpool,
        "owner_key_file": plan.layout.key_file(SCHEDULER_ROLE),
        **_SCHEDULER_TUNING,
    }


def _worker(plan: Plan) -> Table:
    first = worker_names(plan.workers)[0]
    return {
        "key_file": plan.layout.key_file(first),
        "state_dir": plan.layout.worker_state(first),
        "scheduler_url": plan.ports.url("scheduler"),
        "storage_url": plan.ports.url("storage"),
        **_chain_client(plan),
        **({"docker_url": plan.docker_url} if plan.docker_url else {}),
        **_WORKER_TUNING,
    }
