"""matchOrders: categories, every compatibility check with its own reason, and the deal.

Each check is triggered with otherwise matching orders, so the test names the one rule broken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boa
import pytest

from decloud.protocol import GPU, NO_TAG, TEE, deal_id, tag_union, task_id
from tests.contracts.harness import INITIAL_DEPOSIT, ZERO, Protocol, load_test_contract

STRANGER = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture(autouse=True)
def _hub_holds_every_balance(protocol: Protocol) -> Iterator[None]:
    """After every test: tokens held by the hub == free + locked of every actor + kitty."""
    yield
    assert protocol.hub_balance_matches()


def with_dataset(protocol: Protocol, **request: Any) -> dict[str, Any]:
    """Orders of a deal that uses the dataset (the harness default has none)."""
    return {
        "app_order": protocol.app_order(),
        "dataset_order": protocol.dataset_order(),
        "workerpool_order": protocol.workerpool_order(),
        "request_order": protocol.request_order(
            **{"dataset": protocol.dataset, "datasetmaxprice": 5, **request}
        ),
    }


def replace_order(orders: dict[str, Any], kind: str, **changes: Any) -> dict[str, Any]:
    """The same orders with fields of the `kind` order changed (and re-signed by match)."""
    key = f"{kind}_order"
    return {**orders, key: dataclasses.replace(orders[key], **changes)}


# --- categories ---------------------------------------------------------------------------


def test_hub_owner_creates_categories(protocol: Protocol) -> None:
    category = protocol.marketplace.createCategory(
        "XXL", "very long tasks", 10**8, sender=protocol.admin
    )
    created = protocol.marketplace.get_logs()[-1]
    assert category == 5 and protocol.marketplace.category_count() == 6
    assert tuple(protocol.marketplace.categories(5)) == ("XXL", "very long tasks", 10**8)
    assert type(created).__name__ == "CategoryCreated" and created.work_clock_time_ref == 10**8


def test_marketplace_knows_its_hub_and_registries(protocol: Protocol) -> None:
    market = protocol.marketplace
    assert market.HUB() == protocol.hub.address
    assert protocol.hub.marketplace() == market.address
    assert (market.APP_REGISTRY(), market.DATASET_REGISTRY(), market.WORKERPOOL_REGISTRY()) == (
        protocol.apps.address,
        protocol.datasets.address,
        protocol.workerpools.address,
    )


def test_default_categories_are_poco_s(protocol: Protocol) -> None:
    refs = [protocol.marketplace.categories(i)[2] for i in range(5)]
    assert refs == [300, 1200, 3600, 10800, 36000]


@pytest.mark.parametrize(
    ("sender", "time_ref", "reason"),
    [
        ("requester", 300, "category: caller is not the hub owner"),
        ("admin", 0, "category: zero time reference"),
        ("admin", 10**8 + 1, "category: time reference too long"),
    ],
)
def test_create_category_rejects(
    protocol: Protocol, sender: str, time_ref: int, reason: str
) -> None:
    account = protocol.admin if sender == "admin" else protocol[sender].address
    with boa.reverts(reason):
        protocol.marketplace.createCategory("X", "x", time_ref, sender=account)


# --- a successful match -------------------------------------------------------------------


def test_match_records_the_deal_and_locks_payment_and_stake(protocol: Protocol) -> None:
    orders = with_dataset(protocol, volume=3, trust=5, tag=GPU)
    orders["workerpool_order"] = protocol.workerpool_order(tag=GPU, category=0)
    before = protocol.balances()
    deal = protocol.match(**orders)
    logs = [type(e).__name__ for e in protocol.marketplace.get_logs()]
    assert logs == ["Lock", "Lock", "OrdersMatched", "DealCreated", "SchedulerNotice"]
    request_digest = orders["request_order"].digest(protocol.domain)
    assert deal.dealid == deal_id(request_digest, 0)
    requester = protocol["requester"].address
    expected = (
        protocol.app,
        protocol["app_owner"].address,
        10,
        protocol.dataset,
        protocol["dataset_owner"].address,
        5,
        protocol.workerpool,
        protocol["pool_owner"].address,
        100,
        requester,
        requester,
        ZERO,
        0,
        300,
        boa.env.evm.patch.timestamp,
        5,
        GPU,
        0,
        3,
        30,
        1,
    )
    assert tuple(str(f).lower() if isinstance(f, str) else f for f in deal.fields) == tuple(
        str(f).lower() if isinstance(f, str) else f for f in expected
    )
    assert protocol.changes(before) == {"requester": (-345, 345), "pool_owner": (-90, 90)}
    for kind in ("app", "dataset", "workerpool", "request"):
        digest = orders[f"{kind}_order"].digest(protocol.domain)
        assert protocol.marketplace.consumed(digest) == 3
    assert protocol.hub_balance_matches()


def test_deal_volume_is_the_smallest_remaining_volume(protocol: Protocol) -> None:
    app = protocol.app_order(volume=5)
    dataset = protocol.dataset_order(volume=4)
    pool = protocol.workerpool_order(volume=3)
    request = protocol.request_order(dataset=protocol.dataset, datasetmaxprice=5, volume=10)
    first = protocol.match(app, dataset, pool, request)
    assert (first.bot_first, first.bot_size) == (0, 3)
    second = protocol.match(app, dataset, protocol.workerpool_order(), request)
    assert (second.bot_first, second.bot_size) == (3, 1)
    assert second.dealid == deal_id(request.digest(protocol.domain), 3)
    assert protocol.hub.taskId(second.dealid, 3) == task_id(second.dealid, 3)
    with boa.reverts("match: dataset order fully consumed"):
        protocol.match(app, dataset, protocol.workerpool_order(), request)
    assert protocol.account(protocol["requester"])[1] == 4 * 115
    assert protocol.hub_balance_matches()


def test_request_without_dataset_ignores_the_dataset_order(protocol: Protocol) -> None:
    deal = protocol.match()
    assert (deal.dataset, deal.dataset_owner, deal.dataset_price) == (ZERO, ZERO, 0)
    assert protocol.account(protocol["requester"])[1] == 110


def test_trust_zero_is_trust_one(protocol: Protocol) -> None:
    assert protocol.match(request_order=protocol.request_order(trust=0)).trust == 1


def test_deal_tag_is_the_union_of_the_asked_tags(protocol: Protocol) -> None:
    offered = tag_union(TEE, GPU, (4).to_bytes(32, "big"))
    deal = protocol.match(
        app_order=protocol.app_order(app=protocol.tee_app, tag=TEE),
        workerpool_order=protocol.workerpool_order(tag=offered),
        request_order=protocol.request_order(app=protocol.tee_app, tag=GPU),
    )
    assert deal.tag == tag_union(TEE, GPU)


def test_anyone_may_send_the_match(protocol: Protocol) -> None:
    deal = protocol.match(sender=protocol["worker3"].address)
    assert deal.requester.lower() == protocol["requester"].address.lower()


# --- every check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "changes", "reason"),
    [
        ("request", {"category": 1}, "match: category mismatch"),
        ("workerpool", {"category": 1}, "match: category mismatch"),
        ("request", {"trust": 101}, "match: trust above the workerpool's"),
        ("request", {"appmaxprice": 9}, "match: app price above the request's max"),
        ("app", {"appprice": 11}, "match: app price above the request's max"),
        ("request", {"workerpoolmaxprice": 99}, "match: workerpool price above the request's max"),
        ("workerpool", {"workerpoolprice": 101}, "match: workerpool price above the request's max"),
        ("request", {"datasetmaxprice": 4}, "match: dataset price above the request's max"),
        ("dataset", {"datasetprice": 6}, "match: dataset price above the request's max"),
        ("app", {"tag": GPU}, "match: workerpool lacks a required tag"),
        ("dataset", {"tag": GPU}, "match: workerpool lacks a required tag"),
        ("request", {"tag": GPU}, "match: workerpool lacks a required tag"),
        ("request", {"app": STRANGER}, "match: request names another app"),
        ("request", {"dataset": STRANGER}, "match: request names another dataset"),
        ("dataset", {"dataset": STRANGER}, "match: request names another dataset"),
    ],
)
def test_incompatible_orders_are_refused(
    protocol: Protocol, kind: str, changes: dict[str, Any], reason: str
) -> None:
    orders = replace_order(with_dataset(protocol), kind, **changes)
    with boa.reverts(reason):
        protocol.match(**orders)


def test_unknown_category_is_refused(protocol: Protocol) -> None:
    orders = replace_order(with_dataset(protocol, category=9), "workerpool", category=9)
    with boa.reverts("match: unknown category"):
        protocol.match(**orders)


def test_trust_above_the_maximum_is_refused(protocol: Protocol) -> None:
    max_trust = protocol.marketplace.MAX_TRUST()
    assert max_trust == 2**32
    orders = replace_order(with_dataset(protocol, trust=max_trust + 1), "workerpool", trust=2**40)
    with boa.reverts("match: trust too high"):
        protocol.match(**orders)
    orders = replace_order(with_dataset(protocol, trust=max_trust), "workerpool", trust=2**40)
    assert protocol.match(**orders).trust == max_trust


def test_tee_tag_needs_a_tee_app(protocol: Protocol) -> None:
    pool = protocol.workerpool_order(tag=TEE)
    with boa.reverts("match: TEE tag needs a TEE app"):
        protocol.match(workerpool_order=pool, request_order=protocol.request_order(tag=TEE))
    deal = protocol.match(
        app_order=protocol.app_order(app=protocol.tee_app),
        workerpool_order=pool,
        request_order=protocol.request_order(app=protocol.tee_app, tag=TEE),
    )
    assert deal.tag == TEE


def test_tee_workerpool_serves_standard_requests(protocol: Protocol) -> None:
    deal = protocol.match(workerpool_order=protocol.workerpool_order(tag=TEE))
    assert deal.tag == NO_TAG


def test_dataset_tag_is_ignored_without_a_dataset(protocol: Protocol) -> None:
    deal = protocol.match()
    assert deal.tag == NO_TAG


def test_unknown_app_is_refused(protocol: Protocol) -> None:
    with boa.reverts("match: unknown app"):
        protocol.match(
            app_order=protocol.app_order(app=STRANGER),
            request_order=protocol.request_order(app=STRANGER),
        )


def test_unknown_dataset_is_refused(protocol: Protocol) -> None:
    orders = with_dataset(protocol, dataset=STRANGER)
    orders["dataset_order"] = protocol.dataset_order(dataset=STRANGER)
    with boa.reverts("match: unknown dataset"):
        protocol.match(**orders)


def test_unknown_workerpool_is_refused(protocol: Protocol) -> None:
    with boa.reverts("match: unknown workerpool"):
        protocol.match(workerpool_order=protocol.workerpool_order(workerpool=STRANGER))


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("app", "match: invalid app order signature"),
        ("dataset", "match: invalid dataset order signature"),
        ("workerpool", "match: invalid workerpool order signature"),
        ("request", "match: invalid request order signature"),
    ],
)
def test_invalid_signature_of_each_order_is_refused(
    protocol: Protocol, kind: str, reason: str
) -> None:
    orders = with_dataset(protocol)
    wrong = protocol.sign(orders[f"{kind}_order"], "worker1")
    with boa.reverts(reason):
        protocol.match(**orders, signatures={kind: wrong})


CONSUMED = {
    "app": "match: app order fully consumed",
    "dataset": "match: dataset order fully consumed",
    "workerpool": "match: workerpool order fully consumed",
    "request": "match: request order fully consumed",
}


@pytest.mark.parametrize("kind", list(CONSUMED))
def test_fully_consumed_order_cannot_be_replayed(protocol: Protocol, kind: str) -> None:
    orders = with_dataset(protocol)
    orders = replace_order(orders, kind, volume=1)
    protocol.match(**orders)
    fresh = with_dataset(protocol)
    replay = {**fresh, f"{kind}_order": orders[f"{kind}_order"]}
    with boa.reverts(CONSUMED[kind]):
        protocol.match(**replay)


@pytest.mark.parametrize("kind", ["app", "dataset", "workerpool"])
def test_order_of_volume_zero_is_consumed(protocol: Protocol, kind: str) -> None:
    orders = replace_order(with_dataset(protocol), kind, volume=0)
    with boa.reverts(CONSUMED[kind]):
        protocol.match(**orders)


def test_requester_without_funds_cannot_be_matched(protocol: Protocol) -> None:
    protocol.hub.withdraw(INITIAL_DEPOSIT - 109, sender=protocol["requester"].address)
    with boa.reverts("escrow: requester free balance too low"):
        protocol.match()


def test_workerpool_owner_without_stake_cannot_be_matched(protocol: Protocol) -> None:
    protocol.hub.withdraw(INITIAL_DEPOSIT - 29, sender=protocol["pool_owner"].address)
    with boa.reverts("escrow: workerpool owner free balance too low for the stake"):
        protocol.match()


# --- restrictions -------------------------------------------------------------------------

# (order kind, restriction field, reason, what the restriction must name to pass)
RESTRICTIONS = [
    ("request", "workerpool", "match: request restricts the workerpool", "workerpool"),
    ("app", "datasetrestrict", "match: app order restricts the dataset", "dataset"),
    ("app", "workerpoolrestrict", "match: app order restricts the workerpool", "workerpool"),
    ("app", "requesterrestrict", "match: app order restricts the requester", "requester"),
    ("dataset", "apprestrict", "match: dataset order restricts the app", "app"),
    (
        "dataset",
        "workerpoolrestrict",
        "match: dataset order restricts the workerpool",
        "workerpool",
    ),
    ("dataset", "requesterrestrict", "match: dataset order restricts the requester", "requester"),
    ("workerpool", "apprestrict", "match: workerpool order restricts the app", "app"),
    ("workerpool", "datasetrestrict", "match: workerpool order restricts the dataset", "dataset"),
    (
        "workerpool",
        "requesterrestrict",
        "match: workerpool order restricts the requester",
        "requester",
    ),
]


def named(protocol: Protocol, what: str) -> str:
    if what == "requester":
        return protocol["requester"].address
    return str(getattr(protocol, what))


@pytest.mark.parametrize(("kind", "field", "reason", "what"), RESTRICTIONS)
def test_restriction_to_another_account_is_refused(
    protocol: Protocol, kind: str, field: str, reason: str, what: str
) -> None:
    with boa.reverts(reason):
        protocol.match(**replace_order(with_dataset(protocol), kind, **{field: STRANGER}))


@pytest.mark.parametrize(("kind", "field", "reason", "what"), RESTRICTIONS)
def test_restriction_naming_the_account_passes(
    protocol: Protocol, kind: str, field: str, reason: str, what: str
) -> None:
    orders = replace_order(with_dataset(protocol), kind, **{field: named(protocol, what)})
    assert protocol.match(**orders).bot_size == 1


@pytest.mark.parametrize(("kind", "field", "reason", "what"), RESTRICTIONS)
def test_restriction_to_a_group_passes_only_its_members(
    protocol: Protocol, kind: str, field: str, reason: str, what: str
) -> None:
    owner = protocol["worker4"].address
    group = load_test_contract("MemberGroup", owner)
    orders = replace_order(with_dataset(protocol), kind, **{field: group.address})
    with boa.reverts(reason):
        protocol.match(**orders)
    group.setMember(named(protocol, what), True, sender=owner)
    assert protocol.match(**orders).bot_size == 1


def test_restriction_to_a_contract_that_is_no_group_is_refused(protocol: Protocol) -> None:
    not_a_group = load_test_contract("ResultReceiver")
    with boa.reverts("match: app order restricts the requester"):
        protocol.match(app_order=protocol.app_order(requesterrestrict=not_a_group.address))


def test_dataset_restriction_refuses_a_deal_without_dataset(protocol: Protocol) -> None:
    with boa.reverts("match: app order restricts the dataset"):
        protocol.match(app_order=protocol.app_order(datasetrestrict=protocol.dataset))


def test_group_owner_alone_manages_members(protocol: Protocol) -> None:
    group = load_test_contract("MemberGroup", protocol["worker4"].address)
    with boa.reverts("group: caller is not the owner"):
        group.setMember(protocol["worker1"].address, True, sender=protocol["worker1"].address)
