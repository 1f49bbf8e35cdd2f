"""Result callbacks (oracle use): the hub calls receiveResult(taskid, data) with bounded gas
after paying everyone; consensus covers the data itself, since the digest is keccak256(data);
a failing or hungry callback never blocks payment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boa
import pytest
from eth_utils import keccak

from tests.contracts.harness import ZERO, Deal, Protocol, load_test_contract

DATA = b'{"price":"42.17","ts":1764115200}'
DIGEST = keccak(DATA)
CALLBACK_GAS = 200_000


@pytest.fixture(autouse=True)
def _hub_holds_every_balance(protocol: Protocol) -> Iterator[None]:
    """After every test: tokens held by the hub == free + locked of every actor + kitty."""
    yield
    assert protocol.hub_balance_matches()


def callback_deal(protocol: Protocol, callback: Any, trust: int = 3) -> Deal:
    return protocol.match(
        request_order=protocol.request_order(trust=trust, callback=str(callback.address))
    )


def agree(protocol: Protocol, deal: Deal, workers: list[str], digest: bytes = DIGEST) -> None:
    for worker in workers:
        protocol.contribute(deal, 0, worker, digest)
    for worker in workers:
        protocol.reveal(deal, 0, worker, digest)


def finalize(
    protocol: Protocol, deal: Deal, workers: list[str], data: bytes = DATA, **kwargs: Any
) -> list[Any]:
    protocol.hub.finalize(
        deal.dealid,
        deal.fields,
        0,
        protocol.contributors(deal, 0, workers),
        b"ipfs://result",
        data,
        sender=protocol["pool_owner"].address,
        **kwargs,
    )
    return [e for e in protocol.hub.get_logs() if type(e).__name__ == "ResultCallback"]


# Two workers at trust 3: requester pays 110, app owner gets 10, each worker 49 and its stake
# back, the scheduler 2 and its stake back.
PAID = {
    "requester": (0, -110),
    "app_owner": (10, 0),
    "pool_owner": (2 + 30, -30),
    "worker1": (49 + 30, -30),
    "worker2": (49 + 30, -30),
}


def test_callback_receives_the_result(protocol: Protocol) -> None:
    receiver = load_test_contract("ResultReceiver")
    deal = callback_deal(protocol, receiver)
    agree(protocol, deal, ["worker1", "worker2"])
    before = protocol.balances()
    events = finalize(protocol, deal, ["worker1", "worker2"])
    assert receiver.last_taskid() == protocol.task_id(deal, 0)
    assert receiver.last_data() == DATA
    assert receiver.last_caller() == protocol.hub.address
    assert receiver.calls() == 1
    assert [(e.callback, e.success) for e in events] == [(receiver.address, True)]
    assert protocol.changes(before) == PAID
    assert protocol.hub_balance_matches()


def test_callback_data_must_be_the_consensus(protocol: Protocol) -> None:
    receiver = load_test_contract("ResultReceiver")
    deal = callback_deal(protocol, receiver)
    agree(protocol, deal, ["worker1", "worker2"])
    with boa.reverts("callback: data does not match the consensus"):
        finalize(protocol, deal, ["worker1", "worker2"], data=b'{"price":"0"}')
    with boa.reverts("callback: data does not match the consensus"):
        finalize(protocol, deal, ["worker1", "worker2"], data=b"")


def test_deal_without_callback_ignores_callback_data(protocol: Protocol) -> None:
    deal = protocol.match()
    agree(protocol, deal, ["worker1", "worker2"], b"\x07" * 32)
    assert finalize(protocol, deal, ["worker1", "worker2"], data=b"anything") == []
    assert protocol.hub_balance_matches()


@pytest.mark.parametrize("contract", ["RevertingCallback", "GasHungryCallback"])
def test_failing_callback_does_not_block_payment(protocol: Protocol, contract: str) -> None:
    callback = load_test_contract(contract)
    deal = callback_deal(protocol, callback)
    agree(protocol, deal, ["worker1", "worker2"])
    before = protocol.balances()
    events = finalize(protocol, deal, ["worker1", "worker2"], gas=1_000_000)
    assert [(e.callback, e.success) for e in events] == [(callback.address, False)]
    assert protocol.changes(before) == PAID
    assert protocol.hub_balance_matches()
    assert protocol.task(deal, 0).status == 3


def test_gas_hungry_callback_gets_only_its_allowance(protocol: Protocol) -> None:
    assert protocol.hub.CALLBACK_GAS() == CALLBACK_GAS
    callback = load_test_contract("GasHungryCallback")
    deal = callback_deal(protocol, callback)
    agree(protocol, deal, ["worker1", "worker2"])
    spent = boa.env.get_gas_used()
    finalize(protocol, deal, ["worker1", "worker2"], gas=5_000_000)
    used = boa.env.get_gas_used() - spent
    assert CALLBACK_GAS < used < CALLBACK_GAS + 150_000, used
    assert callback.counter() == 0, "the hungry callback's writes were reverted"


def test_finalize_with_too_little_gas_for_the_callback_reverts(protocol: Protocol) -> None:
    """A scheduler cannot starve the callback (and still get paid) by sending just enough gas
    for the payments: EIP-150 would hand the callback at most 63/64 of what is left."""
    receiver = load_test_contract("ResultReceiver")
    deal = callback_deal(protocol, receiver)
    agree(protocol, deal, ["worker1", "worker2"])
    with boa.reverts("callback: not enough gas left for the callback"):
        finalize(protocol, deal, ["worker1", "worker2"], gas=200_000)
    assert protocol.task(deal, 0).status == 2
    finalize(protocol, deal, ["worker1", "worker2"], gas=400_000)
    assert receiver.calls() == 1


def test_contribute_and_finalize_calls_back(protocol: Protocol) -> None:
    receiver = load_test_contract("ResultReceiver")
    deal = callback_deal(protocol, receiver, trust=1)
    before = protocol.balances()
    protocol.contribute_and_finalize(deal, 0, "worker1", DIGEST, callback_data=DATA)
    assert (receiver.last_taskid(), receiver.last_data()) == (protocol.task_id(deal, 0), DATA)
    assert protocol.changes(before) == {
        "requester": (0, -110),
        "app_owner": (10, 0),
        "pool_owner": (1 + 30, -30),
        "worker1": (99, 0),
    }
    assert protocol.hub_balance_matches()


def test_contribute_and_finalize_checks_the_callback_data(protocol: Protocol) -> None:
    receiver = load_test_contract("ResultReceiver")
    deal = callback_deal(protocol, receiver, trust=1)
    with boa.reverts("callback: data does not match the result digest"):
        protocol.contribute_and_finalize(deal, 0, "worker1", DIGEST, callback_data=b"other")


def test_contribute_and_finalize_with_too_little_gas_for_the_callback(protocol: Protocol) -> None:
    receiver = load_test_contract("ResultReceiver")
    deal = callback_deal(protocol, receiver, trust=1)
    worker = protocol["worker1"].address
    args = (
        deal.dealid,
        deal.fields,
        0,
        DIGEST,
        b"ipfs://result",
        DATA,
        ZERO,
        b"",
        protocol.authorize(deal, 0, "worker1"),
    )
    with boa.reverts("callback: not enough gas left for the callback"):
        protocol.hub.contributeAndFinalize(*args, sender=worker, gas=200_000)
    protocol.hub.contributeAndFinalize(*args, sender=worker, gas=500_000)
    assert receiver.calls() == 1


def test_reverting_callback_does_not_block_contribute_and_finalize(protocol: Protocol) -> None:
    callback = load_test_contract("RevertingCallback")
    deal = callback_deal(protocol, callback, trust=1)
    protocol.contribute_and_finalize(deal, 0, "worker1", DIGEST, callback_data=DATA)
    assert protocol.task(deal, 0).status == 3
    assert protocol.hub_balance_matches()
