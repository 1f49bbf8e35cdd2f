"""The workerpool owner: registers a pool, sets its policy, and runs its scheduler.

The owner's key signs the pool's orders and the scheduler's authorizations, and its hub
account stakes for every deal. The policy (worker stake ratio, scheduler reward ratio) is
snapshotted into each deal when it is matched: changing it never alters running deals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from decloud.chain.registries import Workerpool
from decloud.sdk.connection import Connection
from decloud.sdk.errors import NotOwner, UnknownResource, chain_errors
from decloud.sdk.values import parse_address


@dataclass(frozen=True)
class WorkerpoolInfo:
    """A registered workerpool, its policy and its owner."""

    workerpool: Workerpool
    owner: str

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.workerpool.address,
            "owner": self.owner,
            "description": self.workerpool.description,
            "worker_stake_ratio": self.workerpool.worker_stake_ratio,
            "scheduler_reward_ratio": self.workerpool.scheduler_reward_ratio,
        }


class WorkerpoolOwner:
    """Registers, configures and inspects workerpools, as the connection's wallet."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def deploy(self, description: str) -> WorkerpoolInfo:
        """Register a pool owned by the wallet, with the registry's default policy."""
        address = self.connection.address
        with chain_errors(address):
            workerpool = self.connection.workerpools.create_workerpool(description)
        return self.show(workerpool)

    def set_policy(
        self,
        workerpool: str,
        *,
        worker_stake_ratio: int | None = None,
        scheduler_reward_ratio: int | None = None,
    ) -> WorkerpoolInfo:
        """Change the policy future deals snapshot; a ratio left None keeps its value.

        The worker stake ratio is the percent of the workerpool price each contribution
        stakes; the scheduler reward ratio, the percent of the price the owner keeps.
        """
        current = self.show(workerpool)
        if current.owner != self.connection.address:
            raise NotOwner(
                f"workerpool {current.workerpool.address} is owned by {current.owner}, not by "
                f"wallet {self.connection.address}",
                "use the owner's wallet (`--wallet NAME`)",
            )
        with chain_errors(self.connection.address):
            self.connection.workerpools.set_workerpool_policy(
                current.workerpool.address,
                _or(worker_stake_ratio, current.workerpool.worker_stake_ratio),
                _or(scheduler_reward_ratio, current.workerpool.scheduler_reward_ratio),
            )
        return self.show(current.workerpool.address)

    def show(self, address: str) -> WorkerpoolInfo:
        """The workerpool at `address`, or UnknownResource."""
        address = parse_address(address, "workerpool")
        with chain_errors():
            workerpool = self.connection.workerpools.workerpool(address)
            if workerpool is None:
                raise UnknownResource(
                    f"no workerpool at {address} in the workerpool registry",
                    "check the address: `decloud workerpool deploy` prints it",
                )
            return WorkerpoolInfo(workerpool, self.connection.workerpools.owner_of(address))


def _or(value: int | None, current: int) -> int:
    return current if value is None else value
