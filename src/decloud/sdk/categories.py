"""Categories: the size classes of tasks, each with its reference duration T.

A request and a workerpool order name the same category; the deal's deadlines follow from
its T (DESIGN.md section 2): contributions close at start + 7 T, the task must be final by
start + 10 T, or the requester is refunded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from decloud.protocol.hub import CONTRIBUTION_DEADLINE_RATIO, FINAL_DEADLINE_RATIO
from decloud.sdk.connection import Connection
from decloud.sdk.errors import chain_errors


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    description: str
    work_clock_time_ref: int
    """T, in seconds."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "work_clock_time_ref": self.work_clock_time_ref,
            "contribution_window_s": CONTRIBUTION_DEADLINE_RATIO * self.work_clock_time_ref,
            "final_deadline_s": FINAL_DEADLINE_RATIO * self.work_clock_time_ref,
        }


def categories(connection: Connection) -> list[Category]:
    """Every category of the marketplace, by id."""
    marketplace = connection.hub.marketplace
    with chain_errors():
        count = int(connection.client.call(marketplace.functions.category_count()))
        return [
            Category(index, *connection.client.call(marketplace.functions.categories(index)))
            for index in range(count)
        ]
