"""`decloud bench gas`: the gas of every protocol call, measured on a fresh anvil.

Each scenario plays real transactions through the same facades the services use and
reads `gasUsed` from the receipts, so the figures include the 21,000 base cost and the
calldata, as a user pays them. PoCo's figures are the averages of its own test suite
(DESIGN.md section 2), for the same sequence of calls.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account

from decloud.chain.anvil import Anvil
from decloud.chain.localnet import LocalMarket

POCO_GAS = {
    "matchOrders": 756_000,
    "initialize": 225_000,
    "contribute": 347_000,
    "reveal": 79_000,
    "finalize": 403_000,
    "contributeAndFinalize": 642_000,
    "claim": 181_000,
}
TARGETS = {"replicated": 750_000, "tee": 450_000, "bag_100": 120_000}
"""Targets of the protocol-core issue: totals, and per task for bag_100."""
PARTIES = ["requester", "app_owner", "pool_owner", "worker1", "worker2", "worker3", "worker4"]
BAG = 100
REPUTATION_TASKS = 12
"""Score 12 gives weight max(12 // 3, 3) - 1 = 3: two such workers outvote a fresh wrong
one at trust 3 (3 * 3 * 3 > (1 + 2 + 9) * 2), which three fresh workers cannot do."""


@dataclass
class Scenario:
    """The gas of each call of one scenario, in call order."""

    calls: dict[str, int] = field(default_factory=dict)
    poco: int = 0

    def record(self, name: str, gas: int, poco_name: str) -> None:
        self.calls[name] = gas
        self.poco += POCO_GAS[poco_name]

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def run() -> dict[str, Any]:
    """Plays every scenario on its own fresh anvil chain; returns the report."""
    with Anvil() as anvil:
        market = LocalMarket.create(anvil.rpc_url, list(anvil.private_keys), PARTIES)
        scenarios = {
            "replicated": replicated(market),
            "replicated_with_fault": replicated_with_fault(market),
            "tee": tee(market),
            "bag_100": bag(market),
        }
    report: dict[str, Any] = {}
    for name, scenario in scenarios.items():
        entry: dict[str, Any] = {
            "calls": scenario.calls,
            "total": scenario.total,
            "poco": scenario.poco,
        }
        if name == "bag_100":
            entry["per_task"] = scenario.total // BAG
            entry["poco_per_task"] = scenario.poco // BAG
        report[name] = entry
    return report


def replicated(market: LocalMarket) -> Scenario:
    """Trust 3, two honest fresh workers: the smallest replicated task."""
    scenario = Scenario()
    deal = market.match(trust=3)
    scenario.record("matchOrders", deal.receipt.gas_used, "matchOrders")
    scenario.poco += POCO_GAS["initialize"]
    digest = secrets.token_bytes(32)
    workers = ["worker1", "worker2"]
    for number, worker in enumerate(workers, 1):
        scenario.record(
            f"contribute_{number}",
            market.contribute(deal, 0, worker, digest).gas_used,
            "contribute",
        )
    for number, worker in enumerate(workers, 1):
        scenario.record(
            f"reveal_{number}", market.reveal(deal, 0, worker, digest).gas_used, "reveal"
        )
    scenario.record("finalize", market.finalize(deal, 0, workers).gas_used, "finalize")
    return scenario


def replicated_with_fault(market: LocalMarket) -> Scenario:
    """Trust 3, three contributions, one wrong: the wrong worker loses its stake.

    The honest workers first build a track record (not measured): with three fresh workers
    one wrong vote makes trust 3 unreachable without a fourth contribution.
    """
    market.build_reputation(["worker1", "worker2"], REPUTATION_TASKS - 1)
    scenario = Scenario()
    deal = market.match(trust=3)
    scenario.record("matchOrders", deal.receipt.gas_used, "matchOrders")
    scenario.poco += POCO_GAS["initialize"]
    digest, wrong = secrets.token_bytes(32), secrets.token_bytes(32)
    scenario.record(
        "contribute_wrong", market.contribute(deal, 0, "worker3", wrong).gas_used, "contribute"
    )
    for number, worker in enumerate(["worker1", "worker2"], 1):
        scenario.record(
            f"contribute_{number}",
            market.contribute(deal, 0, worker, digest).gas_used,
            "contribute",
        )
    for number, worker in enumerate(["worker1", "worker2"], 1):
        scenario.record(
            f"reveal_{number}", market.reveal(deal, 0, worker, digest).gas_used, "reveal"
        )
    finalize = market.finalize(deal, 0, ["worker1", "worker2", "worker3"])
    scenario.record("finalize", finalize.gas_used, "finalize")
    return scenario


def tee(market: LocalMarket) -> Scenario:
    """Trust 1, TEE app and tag: the enclave signs the result, one transaction settles it."""
    scenario = Scenario()
    deal = market.match(trust=1, tee=True)
    scenario.record("matchOrders", deal.receipt.gas_used, "matchOrders")
    scenario.poco += POCO_GAS["initialize"]
    enclave_key = Account.create().key
    receipt = market.contribute_and_finalize(
        deal, 0, "worker4", secrets.token_bytes(32), enclave_key
    )
    scenario.record("contributeAndFinalize", receipt.gas_used, "contributeAndFinalize")
    return scenario


def bag(market: LocalMarket) -> Scenario:
    """One deal of 100 trust-1 tasks, each settled by contributeAndFinalize."""
    scenario = Scenario()
    deal = market.match(trust=1, volume=BAG)
    scenario.record("matchOrders", deal.receipt.gas_used, "matchOrders")
    for index in range(BAG):
        scenario.poco += POCO_GAS["initialize"]
        receipt = market.contribute_and_finalize(deal, index, "worker4", secrets.token_bytes(32))
        scenario.record(f"contributeAndFinalize_{index}", receipt.gas_used, "contributeAndFinalize")
    return scenario


def table(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Rows of the human-readable report: scenario, decloud, PoCo, ratio, target."""
    rows = []
    for name, entry in report.items():
        ours, poco = entry["total"], entry["poco"]
        if name == "bag_100":
            ours, poco = entry["per_task"], entry["poco_per_task"]
            name = "bag_100 (per task)"
        target = TARGETS.get(name.split(" ")[0])
        verdict = "" if target is None else f"<= {target:,} {'ok' if ours <= target else 'MISSED'}"
        rows.append((name, f"{ours:,}", f"{poco:,}", f"{ours / poco:.2f}", verdict))
    return rows
