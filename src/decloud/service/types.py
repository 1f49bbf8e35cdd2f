"""JSON forms of Ethereum values in service APIs, as pydantic types.

Amounts are uint256: JSON numbers lose precision above 2**53 in most clients, so they travel
as decimal strings, as in the signed orders' JSON messages. Addresses are 0x-hex in any case
(the services answer checksummed), bytes32 and signatures 0x-hex.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from eth_utils.address import to_checksum_address
from pydantic import AfterValidator, Field

UINT256_MAX = 2**256 - 1


@lru_cache(maxsize=16_384)
def _checksummed(value: str) -> str:
    """Cached: a checksum costs a keccak (about 40 µs), and the same few addresses (the zero
    address, a market's resources and owners) come back in almost every request."""
    return str(to_checksum_address(value))


def _below_2_256(value: str) -> str:
    if int(value) > UINT256_MAX:
        raise ValueError("must be below 2**256")
    return value


AddressStr = Annotated[
    str,
    Field(pattern=r"^0x[0-9a-fA-F]{40}$", examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]),
    AfterValidator(_checksummed),
]
"""A 20-byte address; answered in checksummed form."""

Uint256Str = Annotated[
    str,
    Field(pattern=r"^[0-9]{1,78}$", description="uint256 as a decimal string", examples=["1000"]),
    AfterValidator(_below_2_256),
]

Bytes32Str = Annotated[
    str,
    Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="32 bytes, 0x-hex"),
    AfterValidator(str.lower),
]

SignatureStr = Annotated[
    str,
    Field(
        pattern=r"^(0x)?([0-9a-fA-F]{128}|[0-9a-fA-F]{130})?$",
        description="65-byte or 64-byte (EIP-2098) signature, 0x-hex; empty for a presign",
    ),
]
