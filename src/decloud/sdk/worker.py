"""The worker: stakes in the hub for each contribution and earns reputation.

A contribution locks `workerpool price x worker stake ratio` of the worker's free balance
until the task ends; a wrong or unrevealed vote loses that stake and a third of the score.
The score gives the worker's weight in consensus (Sarmenta credibility, DESIGN.md section
2): fresh workers weigh 2, and weight grows by one every three points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from decloud.protocol.hub import worker_weight
from decloud.sdk.account import Balances, Escrow


@dataclass(frozen=True)
class Standing:
    """A worker's stake and reputation."""

    balances: Balances
    weight: int
    """The odds that the worker is honest, as consensus counts its vote."""

    def to_json(self) -> dict[str, Any]:
        return {**self.balances.to_json(), "weight": self.weight}


class Worker(Escrow):
    """Deposits stake, withdraws it, and reads the worker's standing."""

    def standing(self, address: str | None = None) -> Standing:
        """The stake (free and locked) and reputation of `address` (default: the wallet)."""
        balances = self.balances(address)
        return Standing(balances, worker_weight(balances.score))
