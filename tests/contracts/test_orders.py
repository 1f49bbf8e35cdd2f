"""Orders on-chain: EIP-712 hashing, the signature rule, presigned and closed orders.

A signature is a 65- or 64-byte ECDSA signature of the order's EIP-712 digest, an ERC-1271
answer when the signer is a contract, or (empty signature) an on-chain presign by the owner.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import boa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decloud.protocol import (
    GPU,
    TEE,
    WorkerpoolAuthorization,
    result_hash,
    result_seal,
    sign_typed,
    to_compact,
)
from decloud.protocol.orders import SECP256K1_N
from tests.contracts.harness import ZERO, Actor, Protocol, load_test_contract

PRESIGN, CLOSE = 0, 1
UINT256_MAX = 2**256 - 1
HASHERS = {
    "AppOrder": "hashAppOrder",
    "DatasetOrder": "hashDatasetOrder",
    "WorkerpoolOrder": "hashWorkerpoolOrder",
    "RequestOrder": "hashRequestOrder",
}
CONSUMED = {
    "app": "match: app order fully consumed",
    "dataset": "match: dataset order fully consumed",
    "workerpool": "match: workerpool order fully consumed",
    "request": "match: request order fully consumed",
}
MANAGERS = {
    "app": ("manageAppOrder", "app_owner"),
    "dataset": ("manageDatasetOrder", "dataset_owner"),
    "workerpool": ("manageWorkerpoolOrder", "pool_owner"),
    "request": ("manageRequestOrder", "requester"),
}


def orders(protocol: Protocol) -> dict[str, Any]:
    """One order of each kind that match together (with the dataset)."""
    return {
        "app": protocol.app_order(),
        "dataset": protocol.dataset_order(),
        "workerpool": protocol.workerpool_order(),
        "request": protocol.request_order(dataset=protocol.dataset, datasetmaxprice=5),
    }


def on_chain_digest(protocol: Protocol, order: Any) -> bytes:
    return bytes(getattr(protocol.marketplace, HASHERS[type(order).__name__])(order.as_tuple()))


def to_compact_unchecked(signature: bytes) -> bytes:
    """EIP-2098 form without decloud's low-s check (to_compact refuses a high s)."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + ((signature[64] - 27) << 255 | s).to_bytes(32, "big")


def with_high_s(signature: bytes) -> bytes:
    """The malleated twin of a signature: (r, n - s) with the other parity recovers the same
    signer from ecrecover, so only a low-s rule makes signatures unique."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


# --- hashing ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["app", "dataset", "workerpool", "request"])
def test_on_chain_digest_equals_the_python_digest(protocol: Protocol, kind: str) -> None:
    order = orders(protocol)[kind]
    assert on_chain_digest(protocol, order) == order.digest(protocol.domain)


def test_digest_of_extreme_orders_matches(protocol: Protocol) -> None:
    app = protocol.app_order(
        appprice=UINT256_MAX, volume=UINT256_MAX, tag=b"\xff" * 32, salt=b"\xff" * 32
    )
    request = protocol.request_order(
        appmaxprice=UINT256_MAX,
        category=UINT256_MAX,
        params="é ✓ \U0001f680 " + "x" * 4000,
        tag=GPU,
    )
    for order in (app, request):
        assert on_chain_digest(protocol, order) == order.digest(protocol.domain)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.text(max_size=300),
    prices=st.tuples(*[st.integers(0, UINT256_MAX)] * 3),
    trust=st.integers(0, UINT256_MAX),
    salt=st.binary(min_size=32, max_size=32),
)
def test_request_digest_matches_for_any_params(
    protocol: Protocol, params: str, prices: tuple[int, int, int], trust: int, salt: bytes
) -> None:
    order = protocol.request_order(
        params=params,
        appmaxprice=prices[0],
        datasetmaxprice=prices[1],
        workerpoolmaxprice=prices[2],
        trust=trust,
        salt=salt,
    )
    assert on_chain_digest(protocol, order) == order.digest(protocol.domain)


def test_every_field_changes_the_digest(protocol: Protocol) -> None:
    order = protocol.request_order()
    base = on_chain_digest(protocol, order)
    changed = {
        "app": protocol.tee_app,
        "appmaxprice": 11,
        "dataset": protocol.dataset,
        "datasetmaxprice": 1,
        "workerpool": protocol.workerpool,
        "workerpoolmaxprice": 99,
        "requester": protocol["worker1"].address,
        "volume": 2,
        "tag": TEE,
        "category": 1,
        "trust": 4,
        "beneficiary": protocol["worker1"].address,
        "callback": protocol["worker1"].address,
        "params": "{}",
        "salt": b"\x09" * 32,
    }
    for name, value in changed.items():
        assert on_chain_digest(protocol, dataclasses.replace(order, **{name: value})) != base, name


# --- the signature rule -------------------------------------------------------------------


def test_wallet_typed_data_signatures_verify(protocol: Protocol) -> None:
    for kind, order in orders(protocol).items():
        signer = MANAGERS[kind][1]
        signature = protocol.sign(order, signer)
        digest = order.digest(protocol.domain)
        assert protocol.marketplace.verifySignature(protocol[signer].address, digest, signature)
        assert not protocol.marketplace.verifySignature(
            protocol["worker1"].address, digest, signature
        )


def test_compact_eip2098_signatures_verify(protocol: Protocol) -> None:
    order = protocol.app_order()
    compact = to_compact(protocol.sign(order, "app_owner"))
    assert len(compact) == 64
    assert protocol.marketplace.verifySignature(
        protocol["app_owner"].address, order.digest(protocol.domain), compact
    )


def test_orders_signed_in_the_compact_form_match(protocol: Protocol) -> None:
    signed = orders(protocol)
    compact = {
        kind: to_compact(protocol.sign(order, MANAGERS[kind][1])) for kind, order in signed.items()
    }
    deal = protocol.match(
        signed["app"],
        signed["dataset"],
        signed["workerpool"],
        signed["request"],
        signatures=compact,
    )
    assert deal.bot_size == 1


def test_signature_for_another_chain_does_not_verify(protocol: Protocol) -> None:
    order = protocol.app_order()
    other_chain = dataclasses.replace(protocol.domain, chain_id=protocol.domain.chain_id + 1)
    signature = sign_typed(order, other_chain, protocol["app_owner"].key)
    with boa.reverts("match: invalid app order signature"):
        protocol.match(app_order=order, signatures={"app": signature})


def test_wrong_signer_is_refused(protocol: Protocol) -> None:
    order = protocol.app_order()
    with boa.reverts("match: invalid app order signature"):
        protocol.match(app_order=order, signatures={"app": protocol.sign(order, "requester")})


def test_tampered_signature_is_refused(protocol: Protocol) -> None:
    order = protocol.request_order()
    signature = bytearray(protocol.sign(order, "requester"))
    signature[10] ^= 0x01
    with boa.reverts("match: invalid request order signature"):
        protocol.match(request_order=order, signatures={"request": bytes(signature)})


@pytest.mark.parametrize("length", [0, 1, 63])
def test_signature_of_another_length_is_refused(protocol: Protocol, length: int) -> None:
    order = protocol.workerpool_order()
    signature = protocol.sign(order, "pool_owner")[:length]
    with boa.reverts("match: invalid workerpool order signature"):
        protocol.match(workerpool_order=order, signatures={"workerpool": signature})


def test_high_s_signature_is_rejected(protocol: Protocol) -> None:
    order = protocol.app_order()
    digest = order.digest(protocol.domain)
    high_s = with_high_s(protocol.sign(order, "app_owner"))
    owner = protocol["app_owner"].address
    assert not protocol.marketplace.verifySignature(owner, digest, high_s)
    assert not protocol.marketplace.verifySignature(owner, digest, to_compact_unchecked(high_s))
    with boa.reverts("match: invalid app order signature"):
        protocol.match(app_order=order, signatures={"app": high_s})


@pytest.mark.parametrize("v", [0, 1, 29])
def test_signature_with_a_bad_v_is_rejected(protocol: Protocol, v: int) -> None:
    order = protocol.app_order()
    bad_v = protocol.sign(order, "app_owner")[:64] + bytes([v])
    with boa.reverts("match: invalid app order signature"):
        protocol.match(app_order=order, signatures={"app": bad_v})


def test_signature_off_the_curve_is_rejected(protocol: Protocol) -> None:
    order = protocol.app_order()
    with boa.reverts("match: invalid app order signature"):
        protocol.match(app_order=order, signatures={"app": bytes(64) + b"\x1b"})


# --- presign and close --------------------------------------------------------------------


def test_presigned_orders_match_with_empty_signatures(protocol: Protocol) -> None:
    signed = orders(protocol)
    for kind, order in signed.items():
        manager, owner = MANAGERS[kind]
        getattr(protocol.marketplace, manager)(
            order.as_tuple(), PRESIGN, sender=protocol[owner].address
        )
        presigned = protocol.marketplace.get_logs()[-1]
        digest = order.digest(protocol.domain)
        assert type(presigned).__name__ == "OrderPresigned"
        assert bytes(presigned.order_hash) == digest
        assert protocol.marketplace.presigned(digest) == protocol[owner].address
        assert protocol.marketplace.verifySignature(protocol[owner].address, digest, b"")
    deal = protocol.match(
        signed["app"],
        signed["dataset"],
        signed["workerpool"],
        signed["request"],
        signatures=dict.fromkeys(signed, b""),
    )
    assert deal.bot_size == 1
    assert protocol.hub_balance_matches()


def test_empty_signature_without_presign_is_refused(protocol: Protocol) -> None:
    order = protocol.request_order()
    assert not protocol.marketplace.verifySignature(
        protocol["requester"].address, order.digest(protocol.domain), b""
    )
    with boa.reverts("match: invalid request order signature"):
        protocol.match(request_order=order, signatures={"request": b""})


def test_presign_does_not_sign_for_the_zero_address(protocol: Protocol) -> None:
    assert not protocol.marketplace.verifySignature(ZERO, b"\x00" * 32, b"")


@pytest.mark.parametrize("kind", ["app", "dataset", "workerpool", "request"])
def test_only_the_owner_manages_an_order(protocol: Protocol, kind: str) -> None:
    order = orders(protocol)[kind]
    manager, _ = MANAGERS[kind]
    for operation in (PRESIGN, CLOSE):
        with boa.reverts("order: caller is not the owner"):
            getattr(protocol.marketplace, manager)(
                order.as_tuple(), operation, sender=protocol["worker1"].address
            )


def test_unknown_operation_is_refused(protocol: Protocol) -> None:
    order = protocol.app_order()
    with boa.reverts("order: unknown operation"):
        protocol.marketplace.manageAppOrder(
            order.as_tuple(), 2, sender=protocol["app_owner"].address
        )


@pytest.mark.parametrize("kind", ["app", "dataset", "workerpool", "request"])
def test_closed_order_cannot_be_matched(protocol: Protocol, kind: str) -> None:
    signed = orders(protocol)
    manager, owner = MANAGERS[kind]
    order = signed[kind]
    getattr(protocol.marketplace, manager)(order.as_tuple(), CLOSE, sender=protocol[owner].address)
    closed = protocol.marketplace.get_logs()[-1]
    digest = order.digest(protocol.domain)
    assert type(closed).__name__ == "OrderClosed" and bytes(closed.order_hash) == digest
    assert protocol.marketplace.consumed(digest) == order.volume
    with boa.reverts(CONSUMED[kind]):
        protocol.match(signed["app"], signed["dataset"], signed["workerpool"], signed["request"])


def test_closing_a_partly_consumed_order_consumes_the_rest(protocol: Protocol) -> None:
    order = protocol.app_order(volume=5)
    protocol.match(app_order=order, request_order=protocol.request_order(volume=2))
    digest = order.digest(protocol.domain)
    assert protocol.marketplace.consumed(digest) == 2
    protocol.marketplace.manageAppOrder(
        order.as_tuple(), CLOSE, sender=protocol["app_owner"].address
    )
    assert protocol.marketplace.consumed(digest) == 5


# --- contract signers (ERC-1271) ----------------------------------------------------------


def deploy_wallet(owner: Actor) -> Any:
    return load_test_contract("Erc1271Wallet", owner.address)


def test_erc1271_wallet_signs_only_what_its_owner_allowed(protocol: Protocol) -> None:
    owner = protocol["requester"]
    wallet = deploy_wallet(owner)
    order = protocol.request_order(requester=wallet.address, beneficiary=wallet.address)
    digest = order.digest(protocol.domain)
    assert not protocol.marketplace.verifySignature(wallet.address, digest, b"\x01")
    wallet.allow(digest, True, sender=owner.address)
    assert protocol.marketplace.verifySignature(wallet.address, digest, b"\x01")
    assert protocol.marketplace.verifySignature(wallet.address, digest, b"\x00" * 65)
    with boa.reverts("wallet: caller is not the owner"):
        wallet.allow(digest, False, sender=protocol["worker1"].address)


def test_erc1271_wallet_can_be_the_requester(protocol: Protocol) -> None:
    owner = protocol["requester"]
    wallet = deploy_wallet(owner)
    protocol.hub.depositFor(wallet.address, 1000, sender=owner.address)
    order = protocol.request_order(requester=wallet.address, beneficiary=wallet.address)
    with boa.reverts("match: invalid request order signature"):
        protocol.match(request_order=order, signatures={"request": b"\x01"})
    wallet.allow(order.digest(protocol.domain), True, sender=owner.address)
    deal = protocol.match(request_order=order, signatures={"request": b"\x01"})
    assert deal.requester.lower() == wallet.address.lower()
    assert tuple(protocol.hub.viewAccount(wallet.address)) == (890, 110, 0)
    assert protocol.hub_balance_matches_with(wallet.address)


def test_erc1271_wallet_can_own_the_workerpool(protocol: Protocol) -> None:
    """The wallet signs the workerpool order and the worker authorizations, stakes, and
    finalizes the task; the pool's share lands in the wallet's account."""
    owner = protocol["pool_owner"]
    wallet = deploy_wallet(owner)
    pool = protocol.workerpools.createWorkerpool(wallet.address, "wallet pool")
    protocol.hub.depositFor(wallet.address, 1000, sender=owner.address)
    order = protocol.workerpool_order(workerpool=pool)
    wallet.allow(order.digest(protocol.domain), True, sender=owner.address)
    deal = protocol.match(
        workerpool_order=order,
        request_order=protocol.request_order(trust=1),
        signatures={"workerpool": b"\x01"},
    )
    assert tuple(protocol.hub.viewAccount(wallet.address)) == (970, 30, 0)

    worker = protocol["worker1"]
    taskid = protocol.task_id(deal, 0)
    digest = b"\x05" * 32
    hash_, seal = result_hash(taskid, digest), result_seal(worker.address, taskid, digest)
    authorization = WorkerpoolAuthorization(
        worker=worker.address, taskid=taskid, enclaveChallenge=ZERO
    )
    args = (deal.dealid, deal.fields, 0, hash_, seal, ZERO, b"", b"\x01")
    with boa.reverts("task: worker not authorized by the scheduler"):
        protocol.hub.contribute(*args, sender=worker.address)
    wallet.allow(authorization.digest(protocol.domain), True, sender=owner.address)
    protocol.hub.contribute(*args, sender=worker.address)
    protocol.reveal(deal, 0, "worker1", digest)
    before = protocol.balances()
    with boa.reverts("task: only the scheduler may finalize"):
        protocol.finalize(deal, 0, ["worker1"])
    protocol.hub.finalize(
        deal.dealid, deal.fields, 0, [worker.address], b"ipfs://r", b"", sender=wallet.address
    )
    # price 100, scheduler ratio 1: the worker gets 99 and its stake of 30 back.
    assert protocol.changes(before) == {
        "worker1": (129, -30),
        "requester": (0, -110),
        "app_owner": (10, 0),
    }
    assert tuple(protocol.hub.viewAccount(wallet.address)) == (1000 + 1, 0, 0)
    assert protocol.hub_balance_matches_with(wallet.address)


def test_contract_without_erc1271_never_signs(protocol: Protocol) -> None:
    receiver = load_test_contract("ResultReceiver")
    owner = protocol["app_owner"].address
    protocol.apps.transferFrom(owner, receiver.address, int(protocol.app, 16), sender=owner)
    order = protocol.app_order()
    assert not protocol.marketplace.verifySignature(
        receiver.address, order.digest(protocol.domain), b"\x01"
    )
    with boa.reverts("match: invalid app order signature"):
        protocol.match(app_order=order, signatures={"app": protocol.sign(order, "app_owner")})
