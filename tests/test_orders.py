"""Orders, signatures and tags: validation, message round trips, EIP-2098, malleability."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from decloud.protocol import (
    GPU,
    NO_TAG,
    TEE,
    AppOrder,
    DatasetOrder,
    Eip712Domain,
    Eip712Struct,
    RequestOrder,
    SignatureError,
    WorkerpoolAuthorization,
    WorkerpoolOrder,
    from_compact,
    is_tee,
    recover_signer,
    sign_typed,
    tag_covers,
    tag_from_bits,
    tag_union,
    to_compact,
)
from decloud.protocol.orders import SECP256K1_N

PROTOCOL: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "protocol.json").read_text()
)
DOMAIN = Eip712Domain(31337, PROTOCOL["domain"]["verifyingContract"])
REQUESTER_KEY = PROTOCOL["keys"]["requester"]
REQUESTER = PROTOCOL["addresses"]["requester"]
ORDER_TYPES: list[type[Eip712Struct]] = [AppOrder, DatasetOrder, WorkerpoolOrder, RequestOrder]


def request_order(**changes: Any) -> RequestOrder:
    order = RequestOrder.from_message(PROTOCOL["orders"]["RequestOrder"]["message"])
    return dataclasses.replace(order, **changes)


def signed_request() -> tuple[bytes, bytes]:
    order = request_order()
    return order.digest(DOMAIN), sign_typed(order, DOMAIN, REQUESTER_KEY)


def with_high_s(signature: bytes) -> bytes:
    """The malleated twin of a signature: (r, n - s) with the other parity also verifies."""
    s = int.from_bytes(signature[32:64], "big")
    flipped_v = 55 - signature[64]
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([flipped_v])


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("app", "0x00000000000000000000000000000000000a9901"),
        ("app", "0x1234"),
        ("app", b"\x00" * 20),
        ("appmaxprice", -1),
        ("appmaxprice", 2**256),
        ("appmaxprice", True),
        ("appmaxprice", "1000"),
        ("tag", b"\x00" * 31),
        ("tag", "0x" + "00" * 32),
        ("salt", bytearray(32)),
        ("params", None),
        ("params", "lone surrogate \ud800"),
    ],
)
def test_invalid_field_is_refused_with_its_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"RequestOrder.{field}: expected"):
        request_order(**{field: value})


def test_largest_uint256_is_accepted() -> None:
    assert request_order(volume=2**256 - 1).volume == 2**256 - 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"chain_id": -1}, "chainId"),
        ({"verifying_contract": "0x5fbdb2315678afecb367f032d93f642f64180aa3"}, "verifyingContract"),
        ({"name": 1}, "name"),
    ],
)
def test_invalid_domain_is_refused_with_its_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"Eip712Domain.{field}: expected"):
        dataclasses.replace(DOMAIN, **changes)


def test_orders_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        request_order().volume = 1  # type: ignore[misc]


# --- messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order_type", ORDER_TYPES, ids=lambda t: t.__name__)
def test_message_round_trip(order_type: type[Eip712Struct]) -> None:
    order = order_type.from_message(PROTOCOL["orders"][order_type.__name__]["message"])
    assert order_type.from_message(order.to_message()) == order


def test_authorization_message_round_trip() -> None:
    authorization = WorkerpoolAuthorization.from_message(
        PROTOCOL["contribution"]["authorization"]["message"]
    )
    assert WorkerpoolAuthorization.from_message(authorization.to_message()) == authorization


def test_message_accepts_lowercase_addresses_and_int_amounts() -> None:
    message: dict[str, Any] = dict(request_order().to_message())
    message["requester"] = REQUESTER.lower()
    message["volume"] = 3
    assert RequestOrder.from_message(message) == request_order()


def test_message_with_missing_or_unknown_fields_is_refused() -> None:
    message: dict[str, Any] = dict(request_order().to_message())
    del message["salt"]
    message["sallt"] = "0x" + "00" * 32
    with pytest.raises(ValueError, match=r"missing \['salt'\], unknown \['sallt'\]"):
        RequestOrder.from_message(message)


@pytest.mark.parametrize(
    ("field", "value"),
    [("volume", "1.5"), ("volume", "-3"), ("tag", "0x01"), ("salt", "0x" + "zz" * 32)],
)
def test_unparsable_message_value_is_refused_with_its_name(field: str, value: str) -> None:
    message = {**request_order().to_message(), field: value}
    with pytest.raises(ValueError, match=f"RequestOrder.{field}: expected"):
        RequestOrder.from_message(message)


def test_as_tuple_follows_struct_order() -> None:
    order = request_order()
    assert order.as_tuple() == tuple(getattr(order, name) for name, _ in RequestOrder.FIELDS)
    assert [name for name, _ in RequestOrder.FIELDS][:3] == ["app", "appmaxprice", "dataset"]


def test_params_are_hashed_as_utf8_text() -> None:
    assert request_order(params="é").struct_hash() != request_order(params="e").struct_hash()


def test_digest_is_bound_to_the_chain_and_the_hub() -> None:
    order = request_order()
    other_chain = dataclasses.replace(DOMAIN, chain_id=1)
    assert order.digest(other_chain) != order.digest(DOMAIN)


# --- signatures -------------------------------------------------------------------------------


def test_compact_signature_round_trips() -> None:
    _, signature = signed_request()
    assert from_compact(to_compact(signature)) == signature


def test_compact_signature_carries_the_parity_in_the_top_bit() -> None:
    _, signature = signed_request()
    parity = signature[64] - 27
    assert to_compact(signature)[32] >> 7 == parity
    assert len(to_compact(signature)) == 64


def test_high_s_signature_is_refused() -> None:
    digest, signature = signed_request()
    with pytest.raises(SignatureError, match="high-s"):
        recover_signer(digest, with_high_s(signature))
    with pytest.raises(SignatureError, match="high-s"):
        to_compact(with_high_s(signature))


@pytest.mark.parametrize("v", [0, 1, 29])
def test_bad_v_is_refused(v: int) -> None:
    digest, signature = signed_request()
    with pytest.raises(SignatureError, match="v must be 27 or 28"):
        recover_signer(digest, signature[:64] + bytes([v]))


def test_zero_r_is_refused() -> None:
    digest, signature = signed_request()
    with pytest.raises(SignatureError, match="r out of range"):
        recover_signer(digest, bytes(32) + signature[32:])


@pytest.mark.parametrize("length", [0, 63, 66])
def test_signature_of_wrong_length_is_refused(length: int) -> None:
    digest, _ = signed_request()
    with pytest.raises(SignatureError, match="expected 65 bytes"):
        recover_signer(digest, bytes(length))


def test_signature_of_another_digest_recovers_someone_else() -> None:
    _, signature = signed_request()
    assert recover_signer(bytes(32), signature) != REQUESTER


def test_digest_must_be_32_bytes() -> None:
    _, signature = signed_request()
    with pytest.raises(ValueError, match="digest: expected 32 bytes"):
        recover_signer(b"\x01" * 31, signature)


def test_signing_refuses_when_the_wallet_signs_another_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RequestOrder, "struct_hash", lambda self: bytes(32))
    with pytest.raises(RuntimeError, match="differs from decloud's"):
        sign_typed(request_order(), DOMAIN, REQUESTER_KEY)


# --- tags -------------------------------------------------------------------------------------


def test_tee_and_gpu_are_the_two_lowest_bits() -> None:
    assert int.from_bytes(TEE, "big") == 0b01
    assert int.from_bytes(GPU, "big") == 0x100


def test_workerpool_tag_must_cover_every_asked_bit() -> None:
    asked = tag_union(TEE, tag_from_bits(8))
    assert tag_covers(offered=tag_from_bits(0, 1, 8), asked=asked)
    assert not tag_covers(offered=TEE, asked=asked)
    assert tag_covers(offered=NO_TAG, asked=NO_TAG)


def test_vector_workerpool_tag_covers_vector_request_tag() -> None:
    orders = PROTOCOL["orders"]
    offered = WorkerpoolOrder.from_message(orders["WorkerpoolOrder"]["message"]).tag
    asked = tag_union(
        AppOrder.from_message(orders["AppOrder"]["message"]).tag,
        DatasetOrder.from_message(orders["DatasetOrder"]["message"]).tag,
        request_order().tag,
    )
    assert tag_covers(offered, asked)
    assert is_tee(asked)


def test_is_tee_reads_bit_zero_only() -> None:
    assert is_tee(tag_union(TEE, GPU))
    assert not is_tee(GPU)


@pytest.mark.parametrize("bit", [-1, 256, True])
def test_tag_bit_out_of_range_is_refused(bit: int) -> None:
    with pytest.raises(ValueError, match="tag bit"):
        tag_from_bits(bit)


def test_tag_of_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="tag: expected 32 bytes"):
        tag_covers(b"\x01", TEE)
