"""The book follows the chain: matches, closes, transfers, balances, reorgs; and the feed."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from decloud.chain import Anvil, AppRegistry, AppType
from tests.market.conftest import Book, match, orders


def test_a_match_consumes_the_offers_partly_and_fills_the_request(book: Book) -> None:
    app, pool, request = orders(book.local, volume=3)
    app_hash = book.published(app, "app_owner")
    pool_hash = book.published(pool, "pool_owner")
    request_hash = book.published(request, "requester")
    match(book.local, app, pool, request)
    assert book.sync.poll() > 0
    assert book.status(app_hash) == ("open", 7)
    assert book.status(pool_hash) == ("open", 7)
    assert book.status(request_hash) == ("filled", 0)
    assert book.http.get("/v1/orderbook/request").json()["orders"] == []
    filled = book.http.get("/v1/orderbook/request", params={"status": "filled"}).json()
    assert [o["order_hash"] for o in filled["orders"]] == [request_hash]


def test_a_close_on_chain_cancels_the_order(book: Book) -> None:
    _, pool, _ = orders(book.local)
    pool_hash = book.published(pool, "pool_owner")
    book.party("pool_owner").hub.close_order(pool)
    book.sync.poll()
    assert book.status(pool_hash) == ("cancelled", 0)


def test_a_transferred_app_kills_its_orders_until_it_comes_back(book: Book) -> None:
    owner, stranger = book.party("app_owner"), book.party("stranger")
    registry = AppRegistry(owner.hub.client, book.local.deployment.app_registry)
    moved = registry.create_app(f"moved-{book.local.next_salt().hex()[-8:]}", AppType.WASM,
                                "ipfs://moved", b"\x44" * 32)  # fmt: skip
    app, _, _ = orders(book.local)
    app_hash = book.published(replace(app, app=moved), "app_owner")
    registry.transfer(moved, stranger.address)
    book.sync.poll()
    shown = book.http.get(f"/v1/orders/{app_hash}").json()
    assert shown["status"] == "dead"
    assert "no longer owns app" in shown["dead_reason"]

    AppRegistry(stranger.hub.client, registry.address).transfer(moved, owner.address)
    book.sync.poll()
    assert book.status(app_hash) == ("open", 10)


def test_a_withdrawal_that_leaves_a_request_uncovered_kills_it(book: Book) -> None:
    spender = book.party("spender")
    free = spender.hub.account().free
    _, _, request = orders(book.local)
    task_cost = request.appmaxprice + request.workerpoolmaxprice
    affordable = replace(request, requester=spender.address, beneficiary=spender.address,
                         volume=free // task_cost)  # fmt: skip
    request_hash = book.published(affordable, "spender")
    spender.hub.withdraw(task_cost)
    book.sync.poll()
    shown = book.http.get(f"/v1/orders/{request_hash}").json()
    assert shown["status"] == "dead"
    assert "deposit more" in shown["dead_reason"]
    spender.hub.deposit(task_cost)
    book.sync.poll()
    assert book.status(request_hash)[0] == "open"


def test_a_reorg_that_drops_a_close_reopens_the_order(book: Book, anvil: Anvil) -> None:
    _, pool, _ = orders(book.local)
    pool_hash = book.published(pool, "pool_owner")
    book.sync.poll()
    snapshot = anvil.snapshot()
    owner = book.party("pool_owner")
    owner.hub.close_order(pool)
    book.sync.poll()
    assert book.status(pool_hash) == ("cancelled", 0)
    anvil.revert(snapshot)
    owner.hub.client.resync_nonce()
    anvil.evm_mine(3)
    book.sync.poll()
    assert book.status(pool_hash) == ("open", 10)


def test_the_cursor_survives_a_restart_and_reports_the_synced_block(book: Book) -> None:
    book.sync.poll()
    synced = book.http.get("/v1/info").json()["synced_block"]
    assert synced == book.chain.view().number
    assert book.sync.poll() == 0


def test_the_feed_streams_published_updated_and_removed_orders(book: Book) -> None:
    _, pool, _ = orders(book.local)
    pool_hash = book.published(pool, "pool_owner")
    book.party("pool_owner").hub.close_order(pool)
    book.sync.poll()
    with book.http.stream("GET", "/v1/feed", params={"after": 0, "duration_s": 0.5}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in stream.iter_lines() if line.startswith("data: ")]
    events = [json.loads(line.removeprefix("data: ")) for line in lines]
    assert [(e["change"], e["order_hash"]) for e in events] == [
        ("published", pool_hash),
        ("updated", pool_hash),
    ]
    assert events[1]["data"]["status"] == "cancelled"
    assert int(events[0]["data"]["remaining"]) == 10

    book.unpublish_all("pool_owner")
    last = events[-1]["seq"]
    with book.http.stream("GET", "/v1/feed", params={"duration_s": 0.3},
                          headers={"Last-Event-ID": str(last)}) as stream:  # fmt: skip
        removed = [line for line in stream.iter_lines() if line.startswith("event: ")]
    assert removed == ["event: removed"]


def test_a_transfer_is_seen_by_the_next_publish_and_kills_the_orders_published_before(
    book: Book,
) -> None:
    """The owner read for the first publish is cached for its block only: the transfer's
    block makes the market read it again, and the sync kills what the old owner signed."""
    owner, stranger = book.party("app_owner"), book.party("stranger")
    registry = AppRegistry(owner.hub.client, book.local.deployment.app_registry)
    moved = registry.create_app(f"sold-{book.local.next_salt().hex()[-8:]}", AppType.WASM,
                                "ipfs://sold", b"\x45" * 32)  # fmt: skip
    app, _, _ = orders(book.local)
    app = replace(app, app=moved)
    before = book.published(app, "app_owner")
    assert book.publish(replace(app, salt=book.local.next_salt()), "stranger").status_code == 422

    registry.transfer(moved, stranger.address)
    late = book.publish(replace(app, salt=book.local.next_salt()), "app_owner")
    assert (late.status_code, late.json()["rule"]) == (422, "signature.not_owner")
    book.published(replace(app, salt=book.local.next_salt()), "stranger")
    book.sync.poll()
    assert book.status(before)[0] == "dead"


def test_a_withdrawal_is_seen_by_the_next_publish_and_kills_the_orders_it_uncovers(
    book: Book,
) -> None:
    spender = book.party("spender")
    free = spender.hub.account().free
    _, _, request = orders(book.local)
    task_cost = request.appmaxprice + request.workerpoolmaxprice
    affordable = replace(request, requester=spender.address, beneficiary=spender.address,
                         volume=free // task_cost)  # fmt: skip
    first = book.published(affordable, "spender")
    book.published(replace(affordable, salt=book.local.next_salt()), "spender")

    spender.hub.withdraw(task_cost)
    late = book.publish(replace(affordable, salt=book.local.next_salt()), "spender")
    assert (late.status_code, late.json()["rule"]) == (422, "funds.insufficient")
    book.sync.poll()
    assert book.status(first)[0] == "dead"
    spender.hub.deposit(task_cost)


def test_a_poll_at_a_head_already_polled_leaves_the_streams_alone(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    book.sync.poll()
    monkeypatch.setattr(book.sync, "_streams", lambda _session: pytest.fail("streams polled"))
    assert book.sync.poll() == 0
    monkeypatch.undo()
    book.party("pool_owner").hub.deposit(1)
    assert book.sync.poll() > 0
