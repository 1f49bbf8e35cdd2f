"""Following a contract's events: block order, persisted cursor, confirmations, reorgs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from decloud.chain import (
    Anvil,
    ChainClient,
    ChainEvent,
    EventStream,
    JsonCursorStore,
    Reorg,
    ReorgTooDeep,
    Token,
    compile_contract,
)

pytestmark = pytest.mark.anvil


@pytest.fixture
def minter(client_for: Callable[[int], ChainClient]) -> ChainClient:
    """An account of its own: the reorg tests drop its transactions."""
    return client_for(5)


@pytest.fixture
def token(minter: ChainClient) -> Token:
    return Token(minter, minter.deploy(compile_contract("Token"), "t", "T", 18).address)


@pytest.fixture
def store(tmp_path: Path) -> JsonCursorStore:
    return JsonCursorStore(tmp_path / "cursors.json")


def stream_of(token: Token, store: JsonCursorStore, **options: int) -> EventStream:
    return EventStream(token.contract, store, name="token", **options)


def minted_amounts(items: list[ChainEvent | Reorg]) -> list[int]:
    return [
        item.args["value"]
        for item in items
        if isinstance(item, ChainEvent) and item.name == "Transfer"
    ]


def test_events_arrive_decoded_in_block_order(token: Token, store: JsonCursorStore) -> None:
    for amount in (1, 2, 3):
        token.mint(token.client.address, amount)

    items = list(stream_of(token, store).poll())

    assert minted_amounts(items) == [1, 2, 3]
    events = [item for item in items if isinstance(item, ChainEvent)]
    positions = [(event.block_number, event.log_index) for event in events]
    assert positions == sorted(positions)
    assert {event.address for event in events} == {token.address}


def test_each_poll_yields_only_what_is_new(token: Token, store: JsonCursorStore) -> None:
    stream = stream_of(token, store)
    token.mint(token.client.address, 1)
    assert minted_amounts(list(stream.poll())) == [1]

    assert list(stream.poll()) == []

    token.mint(token.client.address, 2)
    assert minted_amounts(list(stream.poll())) == [2]


def test_cursor_survives_a_restart(token: Token, tmp_path: Path) -> None:
    cursors = tmp_path / "cursors.json"
    token.mint(token.client.address, 1)
    list(stream_of(token, JsonCursorStore(cursors)).poll())

    token.mint(token.client.address, 2)
    restarted = stream_of(token, JsonCursorStore(cursors))

    assert minted_amounts(list(restarted.poll())) == [2]


def test_a_consumer_stopped_halfway_sees_the_events_again(
    token: Token, store: JsonCursorStore
) -> None:
    token.mint(token.client.address, 1)
    token.mint(token.client.address, 2)
    stream = stream_of(token, store)

    polling = stream.poll()
    next(polling)
    polling.close()

    assert minted_amounts(list(stream.poll())) == [1, 2]


def test_blocks_younger_than_the_confirmations_wait(
    anvil: Anvil, token: Token, store: JsonCursorStore
) -> None:
    stream = stream_of(token, store, confirmations=2)
    list(stream.poll())
    token.mint(token.client.address, 1)

    assert minted_amounts(list(stream.poll())) == []
    anvil.evm_mine(2)
    assert minted_amounts(list(stream.poll())) == [1]


def test_reorg_rewinds_to_the_fork_and_delivers_the_new_chain(
    anvil: Anvil, token: Token, store: JsonCursorStore
) -> None:
    stream = stream_of(token, store)
    token.mint(token.client.address, 1)
    list(stream.poll())
    fork_point = token.client.w3.eth.block_number
    snapshot = anvil.snapshot()
    token.mint(token.client.address, 2)
    token.mint(token.client.address, 3)
    assert minted_amounts(list(stream.poll())) == [2, 3]

    anvil.revert(snapshot)
    token.client.resync_nonce()
    token.mint(token.client.address, 20)
    token.mint(token.client.address, 30)
    items = list(stream.poll())

    assert items[0] == Reorg(from_block=fork_point + 1)
    assert minted_amounts(items[1:]) == [20, 30]
    assert token.balance_of(token.client.address) == 51


def test_reorg_to_a_shorter_chain_is_detected_at_once(
    anvil: Anvil, token: Token, store: JsonCursorStore
) -> None:
    stream = stream_of(token, store)
    fork_point = token.client.w3.eth.block_number
    snapshot = anvil.snapshot()
    token.mint(token.client.address, 1)
    token.mint(token.client.address, 2)
    list(stream.poll())

    anvil.revert(snapshot)
    token.client.resync_nonce()
    token.mint(token.client.address, 10)
    items = list(stream.poll())

    assert items[0] == Reorg(from_block=fork_point + 1)
    assert minted_amounts(items[1:]) == [10]


def test_reorg_is_detected_after_a_restart(anvil: Anvil, token: Token, tmp_path: Path) -> None:
    cursors = tmp_path / "cursors.json"
    token.mint(token.client.address, 1)
    fork_point = token.client.w3.eth.block_number
    snapshot = anvil.snapshot()
    token.mint(token.client.address, 2)
    list(stream_of(token, JsonCursorStore(cursors)).poll())

    anvil.revert(snapshot)
    token.client.resync_nonce()
    token.mint(token.client.address, 20)
    items = list(stream_of(token, JsonCursorStore(cursors)).poll())

    assert items[0] == Reorg(from_block=fork_point + 1)
    assert minted_amounts(items[1:]) == [20]


def test_reorg_deeper_than_the_window_is_refused(
    anvil: Anvil, token: Token, store: JsonCursorStore
) -> None:
    stream = stream_of(token, store, window=1)
    snapshot = anvil.snapshot()
    token.mint(token.client.address, 1)
    list(stream.poll())

    anvil.revert(snapshot)
    token.client.resync_nonce()
    token.mint(token.client.address, 2)

    with pytest.raises(ReorgTooDeep):
        list(stream.poll())
