"""The devnet's own record of what it started, in its directory: `status` and `down` read it.

It is saved after every step of `up`, so that even an `up` killed half-way leaves enough
behind for `down` to stop what it had started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from decloud.devnet.processes import ProcessRecord

CHAIN_PROCESS = "anvil"
MARKET_PROCESS = "market"


@dataclass(frozen=True)
class DevnetRecord:
    config: Path
    rpc_url: str
    processes: tuple[ProcessRecord, ...] = ()
    workerpool: str | None = None
    addresses: dict[str, str] = field(default_factory=dict)
    apps: dict[str, str] = field(default_factory=dict)
    """The sample apps registered: name -> address."""
    missing_apps: dict[str, str] = field(default_factory=dict)
    """The sample apps that could not be built: name -> why, and what to install."""
    orders: tuple[str, ...] = ()
    """The hashes of the orders `up` published on the market."""
    up_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "config": str(self.config),
            "rpc_url": self.rpc_url,
            "processes": [process.to_json() for process in self.processes],
            "workerpool": self.workerpool,
            "addresses": self.addresses,
            "apps": self.apps,
            "missing_apps": self.missing_apps,
            "orders": list(self.orders),
            "up_seconds": self.up_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DevnetRecord:
        # A devnet started before `up` offered sample apps has no apps nor orders, and
        # `down` must still find its processes.
        return cls(
            config=Path(data["config"]),
            rpc_url=data["rpc_url"],
            processes=tuple(ProcessRecord.from_json(item) for item in data["processes"]),
            workerpool=data["workerpool"],
            addresses=dict(data["addresses"]),
            apps=dict(data.get("apps", {})),
            missing_apps=dict(data.get("missing_apps", {})),
            orders=tuple(data.get("orders", ())),
            up_seconds=data["up_seconds"],
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> DevnetRecord | None:
        """The record in `path`, None if there is none (or it is unreadable)."""
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def running(self) -> list[ProcessRecord]:
        return [process for process in self.processes if process.alive()]
