"""Order digests at the rate orders are published.

`Eip712Struct.digest` encodes with eth_abi and hashes the domain separator and the type
string again for every order: about 160 µs per order on the project's machine. Every field
of an order is a static ABI type, or a string that EIP-712 hashes to one word, so encodeData
is just the fields' 32-byte words side by side. `order_digest` writes those words directly,
with the separator and type hashes computed once: the same bytes (tests compare the two on
random orders of every type), in about a fifth of the time.
"""

from __future__ import annotations

from eth_utils.crypto import keccak

from decloud.market.book import ORDER_TYPES, AnyOrder

_TYPE_HASHES = {order_type: order_type.type_hash() for order_type in ORDER_TYPES.values()}


def order_digest(order: AnyOrder, domain_separator: bytes) -> bytes:
    """keccak(0x1901 ‖ domainSeparator ‖ hashStruct(order)), as `order.digest(domain)`."""
    data = b"".join(_word(abi_type, getattr(order, name)) for name, abi_type in order.FIELDS)
    struct_hash = keccak(_TYPE_HASHES[type(order)] + data)
    return keccak(b"\x19\x01" + domain_separator + struct_hash)


def _word(abi_type: str, value: object) -> bytes:
    match abi_type, value:
        case "address", str():
            return bytes(12) + bytes.fromhex(value[2:])
        case "uint256", int():
            return value.to_bytes(32, "big")
        case "bytes32", bytes():
            return value
        case "string", str():
            return keccak(text=value)
    raise TypeError(f"no EIP-712 word for {abi_type} {value!r}")
