"""`app run` and `Requester.quote` against a real market service on a real chain: the
cheapest compatible orders are chosen, and a request nothing fits is refused, before
anything is sent, with the constraint that failed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

from decloud.chain.localnet import NANO, LocalMarket, Party
from decloud.market.models import OrderKind
from decloud.sdk.errors import InsufficientFunds, NotOwner, UnknownResource
from decloud.sdk.execution import NoMatchingOrder
from decloud.sdk.orders import Orders, OrderTerms
from decloud.sdk.requester import Requester
from tests.sdk.app_run.conftest import Network, app_order, pool_order, publish


def sent(party: Party) -> int:
    """Transactions the party's account has sent: unchanged when nothing was sent."""
    return party.hub.client.w3.eth.get_transaction_count(to_checksum_address(party.address))


def test_app_run_matches_the_cheapest_compatible_orders_and_locks_their_price(
    network: Network, local: LocalMarket, market_url: str
) -> None:
    app = network.apps.by_file
    publish(
        local, market_url,
        app_order(local, app, 5 * NANO), app_order(local, app, 2 * NANO),
        pool_order(local, 7 * NANO, trust=3),
        pool_order(local, 6 * NANO, trust=10),
        pool_order(local, 1 * NANO, trust=1),  # cheapest, but too little trust
        pool_order(local, 2 * NANO, trust=10, category=1),  # cheaper, but another category
    )  # fmt: skip
    requester = local["requester"].hub
    free_before = requester.account().free
    cli = network.cli("market", market=market_url)

    ran = cli("app", "run", "mandelbrot", "--trust", "3", "--yes", "--no-watch", "--json")

    assert ran.exit_code == 0, ran.stderr
    document = json.loads(ran.stdout)
    quote = document["quote"]
    assert (quote["app"]["price"], quote["workerpool"]["price"]) == (str(2 * NANO), str(6 * NANO))
    assert quote["task_price"] == quote["total"] == str(8 * NANO)
    assert quote["app"]["source"] == quote["workerpool"]["source"] == "market"
    (taskid,) = document["deal"]["taskids"]
    deal = Requester(network.connection("requester")).deal(document["deal"]["dealid"])
    assert (deal.deal.app_price, deal.deal.workerpool_price) == (2 * NANO, 6 * NANO)
    assert deal.deal.trust == 3 and "0x" + deal.tasks[0].taskid.hex() == taskid
    assert requester.account().free == free_before - 8 * NANO


@pytest.fixture
def offers(network: Network, local: LocalMarket, market_url: str) -> Requester:
    """One app order at 2 and one trust-3 workerpool order of category 0 at 6; the
    requester's SDK on that market."""
    publish(
        local, market_url,
        app_order(local, network.apps.by_file, 2 * NANO), pool_order(local, 6 * NANO, trust=3),
    )  # fmt: skip
    return Requester(network.connection("requester", market=market_url))


def test_an_app_without_orders_is_refused_as_having_no_order_at_all(
    network: Network, offers: Requester
) -> None:
    with pytest.raises(NoMatchingOrder, match="no order at all") as refused:
        offers.quote(network.apps.by_http)
    assert network.apps.by_http in str(refused.value)
    assert refused.value.advice is not None and "--order" in refused.value.advice


def test_a_trust_above_every_workerpool_order_is_refused_naming_the_trust(
    offers: Requester,
) -> None:
    with pytest.raises(NoMatchingOrder, match=r"^trust: .* offers trust 5 \(the highest is 3\)"):
        offers.quote("mandelbrot", trust=5)


def test_a_category_without_orders_is_refused_naming_the_categories_offered(
    offers: Requester,
) -> None:
    with pytest.raises(NoMatchingOrder, match=r"^category: .*categories offered: 0\)"):
        offers.quote("mandelbrot", category=2)


def test_a_max_price_below_the_cheapest_is_refused_naming_the_price(offers: Requester) -> None:
    with pytest.raises(NoMatchingOrder, match=r"^price: .*workerpool order asks 6000000000"):
        offers.quote("mandelbrot", max_price=3 * NANO)
    with pytest.raises(
        NoMatchingOrder, match=r"^price: .*cost 8000000000 per task \(app 2000000000 \+ workerpool"
    ):
        offers.quote("mandelbrot", max_price=7 * NANO)


def test_a_run_the_free_balance_cannot_pay_is_refused_and_nothing_is_sent(
    network: Network, local: LocalMarket, market_url: str, offers: Requester
) -> None:
    pauper = local["pauper"]
    balances_before = pauper.hub.account()
    nonce_before = sent(pauper)
    cli = network.cli("market", market=market_url)

    refused = cli("app", "run", "mandelbrot", "--yes", "--volume", "2", wallet="pauper")

    assert refused.exit_code == 1
    assert f"the run costs {16 * NANO} ({8 * NANO} per task x 2)" in refused.stderr
    assert f"`decloud account deposit {16 * NANO}`" in refused.stderr
    assert pauper.hub.account() == balances_before
    assert sent(pauper) == nonce_before
    with pytest.raises(InsufficientFunds):
        Requester(network.connection("pauper", market=market_url)).quote("mandelbrot")


def test_an_unknown_app_name_lists_the_names_the_config_knows(offers: Requester) -> None:
    with pytest.raises(UnknownResource, match=r"'mandelbrott'.*names known: mandelbrot\)"):
        offers.quote("mandelbrott")


def test_app_run_sends_nothing_when_the_person_declines_or_json_lacks_yes(
    network: Network, local: LocalMarket, market_url: str, offers: Requester
) -> None:
    requester = local["requester"]
    nonce = sent(requester)
    cli = network.cli("market", market=market_url)

    declined = cli("app", "run", "mandelbrot", input="n\n")
    unattended = cli("app", "run", "mandelbrot", "--json")

    assert declined.exit_code == 1 and "cancelled: nothing was sent" in declined.stdout
    assert f"price: {8 * NANO} per task" in declined.stdout
    assert unattended.exit_code == 1 and "add --yes" in unattended.stderr
    assert sent(requester) == nonce


def test_signed_order_files_replace_the_market_and_the_wallet_signs_for_what_it_owns(
    network: Network, local: LocalMarket, tmp_path: Path
) -> None:
    """The app owner runs its own app on someone else's workerpool, whose order it holds in
    a file: no market is configured."""
    pool_owner = Orders(network.connection("pool_owner"))
    terms = OrderTerms(price=5 * NANO, category=0, trust=3)
    signed = pool_owner.sign(pool_owner.template(OrderKind.WORKERPOOL, local.workerpool, terms))
    order_file = tmp_path / "pool-order.json"
    order_file.write_text(json.dumps(signed.to_json()))
    developer = Requester(network.connection("app_owner"))

    found = developer.quote("mandelbrot", trust=3, orders=[order_file])
    started = developer.run(found)

    assert [(o.kind.value, o.source) for o in found.orders] == [
        ("app", "self-signed"),
        ("workerpool", f"file {order_file}"),
    ]
    assert found.task_price == 5 * NANO and len(started.taskids) == 1
    deal = developer.deal(started.dealid).deal
    assert (deal.requester, deal.workerpool_price) == (local["app_owner"].address, 5 * NANO)


def test_without_a_market_a_wallet_cannot_sign_orders_for_what_others_own(
    network: Network, local: LocalMarket
) -> None:
    requester = Requester(network.connection("requester"))

    with pytest.raises(NotOwner, match=r"no app order to match: without a market") as refused:
        requester.quote("mandelbrot", workerpool=local.workerpool)
    assert refused.value.advice is not None and "[services] market" in refused.value.advice
    with pytest.raises(NoMatchingOrder, match="no workerpool order"):
        Requester(network.connection("app_owner")).quote("mandelbrot")


def test_app_orders_restricted_to_another_requester_are_refused_naming_the_restriction(
    network: Network, local: LocalMarket, market_url: str
) -> None:
    restricted = dataclasses.replace(
        app_order(local, network.apps.by_file, NANO), requesterrestrict=local["worker3"].address
    )
    publish(local, market_url, restricted, pool_order(local, NANO, trust=3))
    requester = Requester(network.connection("requester", market=market_url))

    with pytest.raises(NoMatchingOrder, match=r"^restriction: the open orders of app 0x"):
        requester.quote("mandelbrot")


def test_more_tasks_than_any_order_has_left_is_refused_rather_than_shrunk(
    offers: Requester,
) -> None:
    """matchOrders makes a deal of the smallest remaining volume: a quote for 1,001 tasks on
    orders of 1,000 would lock and run fewer than it says."""
    with pytest.raises(NoMatchingOrder, match=r"has 1001 tasks left .*\(--volume\)"):
        offers.quote("mandelbrot", volume=1_001)
