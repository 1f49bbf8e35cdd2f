"""The Hub facade, the demo and the gas benchmark against a real anvil node."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from rich.console import Console
from typer.testing import CliRunner

from decloud.bench import gas
from decloud.chain import Anvil, MatchError, TaskError
from decloud.chain.localnet import DEPOSIT, LocalMarket
from decloud.cli import app
from decloud.demo.protocol import run_demo

PARTIES = ["requester", "app_owner", "pool_owner", "worker1", "worker2", "worker3"]


@pytest.fixture(scope="module")
def market() -> Iterator[LocalMarket]:
    with Anvil() as node:
        yield LocalMarket.create(node.rpc_url, list(node.private_keys), PARTIES)


def conserved(market: LocalMarket) -> bool:
    hub = market["requester"].hub
    held = hub.token_balance(market.deployment.hub)
    accounts = [hub.account(party.address) for party in market.parties.values()]
    return held == sum(a.free + a.locked for a in accounts) + hub.kitty()


def test_parties_start_with_their_deposit(market: LocalMarket) -> None:
    assert market["worker3"].hub.account().free == DEPOSIT
    assert conserved(market)


def test_a_replicated_task_pays_everybody_on_anvil(market: LocalMarket) -> None:
    before = {name: market[name].hub.account() for name in PARTIES}
    deal = market.match(trust=3)
    price = deal.deal.task_price
    assert market["requester"].hub.account().locked == before["requester"].locked + price
    digest = bytes(range(32))
    for worker in ("worker1", "worker2"):
        market.contribute(deal, 0, worker, digest)
    for worker in ("worker1", "worker2"):
        market.reveal(deal, 0, worker, digest)
    market.finalize(deal, 0, ["worker1", "worker2"])

    after = {name: market[name].hub.account() for name in PARTIES}
    workers_share = deal.deal.workerpool_price * (100 - deal.deal.scheduler_reward_ratio) // 100
    assert after["requester"].free == before["requester"].free - price
    assert after["app_owner"].free == before["app_owner"].free + deal.deal.app_price
    for worker in ("worker1", "worker2"):
        assert after[worker].free == before[worker].free + workers_share // 2
        assert after[worker].score == before[worker].score + 1
    assert after["pool_owner"].free == before["pool_owner"].free + (
        deal.deal.workerpool_price - 2 * (workers_share // 2)
    )
    assert market["requester"].hub.task(deal.task_id(0)).status == 3
    assert conserved(market)


def test_reverts_arrive_as_typed_errors(market: LocalMarket) -> None:
    app_order, workerpool_order, request_order = market.orders(trust=101)
    requester = market["requester"]
    with pytest.raises(MatchError, match="trust above the workerpool's"):
        requester.hub.match_orders(
            app_order,
            requester.hub.sign(app_order, market["app_owner"].key),
            workerpool_order,
            requester.hub.sign(workerpool_order, market["pool_owner"].key),
            request_order,
            requester.hub.sign(request_order, requester.key),
        )
    deal = market.match(trust=3)
    with pytest.raises(TaskError, match="worker not authorized by the scheduler"):
        market["worker1"].hub.contribute(deal, 0, bytes(32), authorization=b"\x01" * 65)
    assert conserved(market)


def test_demo_plays_a_task_where_the_wrong_worker_pays() -> None:
    report = run_demo(Console(quiet=True))
    payments = report["payments"]
    assert sum(change["free"] + change["locked"] for change in payments.values()) == 0
    assert payments["worker3"]["free"] < 0 and payments["worker3"]["score"] == 0
    assert payments["worker1"]["free"] == payments["worker2"]["free"] > 0
    assert payments["app_owner"]["free"] > 0


def test_bench_gas_prints_every_scenario_as_json() -> None:
    result = CliRunner().invoke(app, ["bench", "gas", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"replicated", "replicated_with_fault", "tee", "bag_100"}
    for entry in report.values():
        assert entry["total"] == sum(entry["calls"].values())
    assert len(report["bag_100"]["calls"]) == 1 + gas.BAG
    assert report["bag_100"]["per_task"] == report["bag_100"]["total"] // gas.BAG
