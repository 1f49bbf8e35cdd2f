"""Publishing, querying, paginating and unpublishing orders; every refusal is a clear 4xx."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from decloud.market.book import ZERO_ADDRESS
from decloud.market.schemas import MAX_BATCH
from decloud.protocol.orders import AppOrder
from decloud.protocol.tags import GPU, TEE, tag_union
from decloud.service.auth import sign_request
from tests.market.conftest import Book, dataset_order, match, orders


def book_size(book: Book) -> int:
    return sum(
        len(book.http.get(f"/v1/orderbook/{kind}", params={"status": status}).json()["orders"])
        for kind in ("app", "dataset", "workerpool", "request")
        for status in ("open", "dead", "filled", "cancelled")
    )


def test_published_orders_of_each_kind_are_found_in_their_book(book: Book, dataset: str) -> None:
    app, pool, request = orders(book.local)
    hashes = {
        "app": book.published(app, "app_owner"),
        "workerpool": book.published(pool, "pool_owner"),
        "request": book.published(request, "requester"),
        "dataset": book.published(dataset_order(book.local, dataset), "dataset_owner"),
    }
    for kind, order_hash in hashes.items():
        page = book.http.get(f"/v1/orderbook/{kind}").json()
        assert [o["order_hash"] for o in page["orders"]] == [order_hash]
        shown = book.http.get(f"/v1/orders/{order_hash}").json()
        assert shown["kind"] == kind
        assert shown["status"] == "open"
    assert book.http.get(f"/v1/orders/{hashes['app']}").json()["order"] == app.to_message()
    assert book.http.get(f"/v1/orders/{hashes['app']}").json()["owner"] == (
        book.party("app_owner").address
    )


def test_offers_sort_cheapest_first_then_oldest_and_requests_highest_pay_first(
    book: Book,
) -> None:
    app, _, request = orders(book.local)
    prices = [5, 3, 5, 1]
    app_hashes = [
        book.published(replace(app, appprice=p, salt=book.local.next_salt()), "app_owner")
        for p in prices
    ]
    listed = [o["order_hash"] for o in book.http.get("/v1/orderbook/app").json()["orders"]]
    assert listed == [app_hashes[3], app_hashes[1], app_hashes[0], app_hashes[2]]

    request_hashes = [
        book.published(
            replace(request, workerpoolmaxprice=p, salt=book.local.next_salt()), "requester"
        )
        for p in (1, 9, 4)
    ]
    listed = [o["order_hash"] for o in book.http.get("/v1/orderbook/request").json()["orders"]]
    assert listed == [request_hashes[1], request_hashes[2], request_hashes[0]]


def test_pages_follow_the_sort_without_gaps_or_repeats(book: Book) -> None:
    app, _, _ = orders(book.local)
    for price in (4, 2, 2, 7, 1):
        book.published(replace(app, appprice=price, salt=book.local.next_salt()), "app_owner")
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = book.http.get("/v1/orderbook/app", params=params).json()
        seen += [int(o["price"]) for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 2, 2, 4, 7]
    assert book.http.get("/v1/orderbook/app", params={"limit": 101}).status_code == 422
    bad = book.http.get("/v1/orderbook/app", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    assert bad.json()["rule"] == "query.bad_cursor"


def test_filters_select_what_a_counterpart_can_match(book: Book, dataset: str) -> None:
    local = book.local
    app, pool, request = orders(local)
    requester = book.party("requester").address
    stranger = book.party("stranger").address
    open_app = book.published(app, "app_owner")
    restricted = book.published(
        replace(app, requesterrestrict=stranger, salt=local.next_salt()), "app_owner"
    )
    gpu_app = book.published(replace(app, tag=GPU, salt=local.next_salt()), "app_owner")
    pricey = book.published(replace(app, appprice=10**12, salt=local.next_salt()), "app_owner")

    def apps(**params: object) -> set[str]:
        answer = book.http.get("/v1/orderbook/app", params=params)
        assert answer.status_code == 200, answer.json()
        return {o["order_hash"] for o in answer.json()["orders"]}

    assert apps(requester=requester) == {open_app, gpu_app, pricey}
    assert apps(requester=stranger) == {open_app, restricted, gpu_app, pricey}
    assert apps(min_tag="0x" + GPU.hex()) == {gpu_app}
    assert apps(max_tag="0x" + bytes(32).hex()) == {open_app, restricted, pricey}
    assert apps(max_price=str(10**9)) == {open_app, restricted, gpu_app}
    assert apps(app=local.app, owner=book.party("app_owner").address) == {
        open_app, restricted, gpu_app, pricey,
    }  # fmt: skip
    assert apps(app=local.tee_app) == set()
    assert apps(min_volume="11") == set()

    trusted_pool = book.published(replace(pool, trust=100), "pool_owner")
    low_trust_pool = book.published(
        replace(pool, trust=1, tag=tag_union(TEE, GPU), salt=local.next_salt()), "pool_owner"
    )
    pools = lambda **p: {  # noqa: E731
        o["order_hash"]
        for o in book.http.get("/v1/orderbook/workerpool", params=p).json()["orders"]
    }
    assert pools(min_trust="3") == {trusted_pool}
    assert pools(category="0", min_tag="0x" + TEE.hex()) == {low_trust_pool}
    assert pools(category="1") == set()

    with_dataset = book.published(
        replace(request, dataset=dataset, datasetmaxprice=5, salt=local.next_salt()), "requester"
    )
    plain = book.published(request, "requester")
    requests = lambda **p: {  # noqa: E731
        o["order_hash"] for o in book.http.get("/v1/orderbook/request", params=p).json()["orders"]
    }
    assert requests(dataset=dataset) == {with_dataset}
    assert requests(dataset=ZERO_ADDRESS, requester=requester) == {plain}
    assert requests(workerpool=local.workerpool, max_trust="3") == {with_dataset, plain}
    assert requests(min_price=str(10**10)) == set()
    datasets = book.http.get("/v1/orderbook/dataset", params={"app": local.app}).json()
    assert datasets["orders"] == []


def test_unpublish_one_and_all_needs_the_owners_signed_request(book: Book) -> None:
    app, _, request = orders(book.local)
    first = book.published(app, "app_owner")
    second = book.published(replace(app, salt=book.local.next_salt()), "app_owner")
    kept = book.published(request, "requester")
    domain = book.chain.domain
    owner, stranger = book.party("app_owner"), book.party("stranger")

    def signed(body: dict[str, object], action: str, party: object) -> dict[str, object]:
        from decloud.market.schemas import UnpublishAll, UnpublishOne

        model = UnpublishOne(**body) if action == "unpublish" else UnpublishAll(**body)
        auth = sign_request(
            model, service="market", action=action, domain=domain,
            private_key=party.key, signer=party.address,  # type: ignore[attr-defined]
        )  # fmt: skip
        return {"request": body, "auth": auth.model_dump()}

    by_stranger = book.http.post(
        "/v1/orders/unpublish", json=signed({"order_hash": first}, "unpublish", stranger)
    )
    assert by_stranger.status_code == 403
    assert by_stranger.json()["rule"] == "auth.not_owner"

    body = signed({"order_hash": first}, "unpublish", owner)
    assert book.http.post("/v1/orders/unpublish", json=body).json()["removed"] == [first]
    replayed = book.http.post("/v1/orders/unpublish", json=body)
    assert (replayed.status_code, replayed.json()["rule"]) == (401, "auth.replay")
    assert book.http.get(f"/v1/orders/{first}").status_code == 404

    everything = signed({"kind": None}, "unpublish-all", owner)
    assert book.http.post("/v1/orders/unpublish-all", json=everything).json()["removed"] == [second]
    assert book.status(kept) == ("open", 1)


def test_unpublish_refuses_a_signature_for_another_action_or_order(book: Book) -> None:
    app, _, _ = orders(book.local)
    target = book.published(app, "app_owner")
    owner = book.party("app_owner")
    from decloud.market.schemas import UnpublishOne

    auth = sign_request(
        UnpublishOne(order_hash="0x" + "11" * 32), service="market", action="unpublish",
        domain=book.chain.domain, private_key=owner.key, signer=owner.address,
    )  # fmt: skip
    answer = book.http.post(
        "/v1/orders/unpublish", json={"request": {"order_hash": target}, "auth": auth.model_dump()}
    )
    assert answer.status_code == 401
    assert answer.json()["rule"] == "auth.signature"
    assert book.status(target) == ("open", 10)


@pytest.mark.parametrize(
    ("case", "status", "rule"),
    [
        ("forged signature", 422, "signature.not_owner"),
        ("garbage signature", 422, "signature.invalid"),
        ("unknown resource", 422, "resource.unknown"),
        ("signer not owner", 422, "signature.not_owner"),
        ("wrong chain id", 422, "chain.mismatch"),
        ("zero volume", 422, "order.zero_volume"),
        ("missing presign", 422, "signature.invalid"),
        ("uncovered request", 422, "funds.insufficient"),
        ("bad field", 422, "request.invalid"),
    ],
)
def test_refusals_name_the_rule_and_store_nothing(
    book: Book, case: str, status: int, rule: str
) -> None:
    app, _, request = orders(book.local)
    body = book.signed(app, "app_owner")
    match case:
        case "forged signature":
            body["order"]["appprice"] = "0"  # signed for another price: another signer
        case "garbage signature":
            body["signature"] = "0x" + "ff" * 65
        case "unknown resource":
            body = book.signed(replace(app, app="0x" + "12" * 20), "app_owner")
        case "signer not owner":
            body = book.signed(app, "stranger")
        case "wrong chain id":
            body["chain_id"] = 1
        case "zero volume":
            body = book.signed(replace(app, volume=0), "app_owner")
        case "missing presign":
            body["signature"] = "0x"
        case "uncovered request":
            body = book.signed(replace(request, volume=10**9), "requester")
        case "bad field":
            body["order"]["app"] = "0x1234"
    answer = book.http.post("/v1/orders", json=body)
    assert answer.status_code == status, answer.json()
    problem = answer.json()
    assert answer.headers["content-type"] == "application/problem+json"
    assert problem["rule"] == rule
    assert problem["detail"]
    assert book_size(book) == 0


def test_duplicate_consumed_and_closed_orders_are_refused(book: Book) -> None:
    local = book.local
    app, pool, request = orders(local)
    book.published(app, "app_owner")
    duplicate = book.publish(app, "app_owner")
    assert duplicate.status_code == 409
    assert duplicate.json()["rule"] == "order.duplicate"

    match(local, app, pool, request)
    consumed = book.publish(request, "requester")
    assert consumed.status_code == 422
    assert consumed.json()["rule"] == "volume.exhausted"
    closed = replace(pool, salt=local.next_salt())
    book.party("pool_owner").hub.close_order(closed)
    answer = book.publish(closed, "pool_owner")
    assert answer.status_code == 422
    assert answer.json()["rule"] == "volume.exhausted"
    assert "closed" in answer.json()["detail"]


def test_a_presigned_order_needs_no_signature(book: Book) -> None:
    _, pool, _ = orders(book.local)
    book.party("pool_owner").hub.presign_order(pool)
    body = book.signed(pool, "pool_owner") | {"signature": "0x"}
    answer = book.http.post("/v1/orders", json=body)
    assert answer.status_code == 201, answer.json()
    assert answer.json()["signature"] == "0x"


def test_open_orders_per_owner_are_limited(book: Book) -> None:
    app, _, _ = orders(book.local)
    for _ in range(5):
        book.published(replace(app, salt=book.local.next_salt()), "app_owner")
    answer = book.publish(replace(app, salt=book.local.next_salt()), "app_owner")
    assert answer.status_code == 422
    assert answer.json()["rule"] == "limit.open_orders"


def test_malformed_json_and_oversized_bodies_are_refused(book: Book) -> None:
    malformed = book.http.post(
        "/v1/orders", content=b'{"kind": "app",', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["rule"] == "request.malformed_json"
    oversized = book.http.post(
        "/v1/orders", content=b"{" + b" " * 70_000 + b"}",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert oversized.status_code == 413
    assert oversized.json()["rule"] == "request.too_large"
    assert book_size(book) == 0


def test_a_batch_publishes_the_valid_orders_and_refuses_each_other_by_its_rule(
    book: Book,
) -> None:
    local = book.local
    app, pool, request = orders(local)
    already = book.published(request, "requester")
    forged = book.signed(replace(app, salt=local.next_salt()), "app_owner")
    forged["order"]["appprice"] = "0"
    sent = [
        book.signed(app, "app_owner"),
        forged,
        book.signed(replace(pool, salt=local.next_salt()), "pool_owner") | {"chain_id": 1},
        book.signed(replace(request, volume=10**9, salt=local.next_salt()), "requester"),
        book.signed(pool, "pool_owner"),
        book.signed(pool, "pool_owner"),
        book.signed(request, "requester"),
    ]
    answer = book.http.post("/v1/orders/batch", json={"orders": sent})
    assert answer.status_code == 200, answer.json()
    outcomes = answer.json()["outcomes"]
    refusals = [(o["problem"]["status"], o["problem"]["rule"]) if o["problem"] else None
                for o in outcomes]  # fmt: skip
    assert refusals == [
        None,
        (422, "signature.not_owner"),
        (422, "chain.mismatch"),
        (422, "funds.insufficient"),
        None,
        (409, "order.duplicate"),
        (409, "order.duplicate"),
    ]
    published = [outcomes[0]["published"], outcomes[4]["published"]]
    for order in published:
        assert book.http.get(f"/v1/orders/{order['order_hash']}").json() == order
    assert book_size(book) == 3
    assert already not in {order["order_hash"] for order in published}


def test_a_batch_refuses_what_a_single_publish_refuses_with_the_same_problem(book: Book) -> None:
    app, _, request = orders(book.local)

    def fresh(**changes: Any) -> AppOrder:
        order: AppOrder = replace(app, salt=book.local.next_salt(), **changes)
        return order

    sent = [
        book.signed(fresh(app="0x" + "12" * 20), "app_owner"),
        book.signed(fresh(), "stranger"),
        book.signed(fresh(volume=0), "app_owner"),
        book.signed(fresh(), "app_owner") | {"signature": "0x" + "ff" * 65},
        book.signed(fresh(), "app_owner") | {"signature": "0x"},
        book.signed(replace(request, volume=10**9), "requester"),
    ]
    alone = [book.http.post("/v1/orders", json=body).json() for body in sent]
    batch = book.http.post("/v1/orders/batch", json={"orders": sent}).json()["outcomes"]
    assert [outcome["problem"] for outcome in batch] == alone
    assert book_size(book) == 0


def test_a_batch_counts_its_own_orders_against_the_owners_limit(book: Book) -> None:
    app, _, _ = orders(book.local)
    book.published(app, "app_owner")
    sent = [book.signed(replace(app, salt=book.local.next_salt()), "app_owner") for _ in range(6)]
    outcomes = book.http.post("/v1/orders/batch", json={"orders": sent}).json()["outcomes"]
    assert [o["problem"]["rule"] if o["problem"] else "published" for o in outcomes] == [
        "published", "published", "published", "published",
        "limit.open_orders", "limit.open_orders",
    ]  # fmt: skip


def test_a_batch_must_hold_between_one_and_the_most_orders(book: Book) -> None:
    app, _, _ = orders(book.local)
    body = book.signed(app, "app_owner")
    for count in (0, MAX_BATCH + 1):
        answer = book.http.post("/v1/orders/batch", json={"orders": [body] * count})
        assert answer.status_code == 422
        assert answer.json()["rule"] == "request.invalid"
    malformed = book.http.post("/v1/orders/batch", json={"orders": [body, {"kind": "app"}]})
    assert malformed.status_code == 422
    assert "body.orders.1" in malformed.json()["detail"]
    assert book_size(book) == 0
