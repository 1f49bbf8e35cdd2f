"""Values people type (addresses, ids, tags), checked before anything reaches the chain, so
that a typo is reported as a typo and not as an obscure encoding error."""

from __future__ import annotations

from eth_utils.address import is_address, to_checksum_address

from decloud.protocol.tags import GPU, NO_TAG, TEE, tag_union
from decloud.sdk.errors import DecloudError

TAG_NAMES = {"tee": TEE, "gpu": GPU}


def parse_address(text: str, what: str) -> str:
    """A 20-byte address in any case, checksummed."""
    if not is_address(text):
        raise DecloudError(
            f"{text!r} is not a valid {what} address", "give its 0x-address (40 hex digits)"
        )
    return str(to_checksum_address(text))


def parse_bytes32(text: str, what: str) -> bytes:
    """32 bytes written as 64 hex digits, with or without 0x."""
    value = parse_hex(text, what)
    if len(value) != 32:
        raise DecloudError(f"{what} must be 32 bytes (64 hex digits), not {text!r}")
    return value


def parse_hex(text: str, what: str) -> bytes:
    """Bytes written in hex, with or without 0x."""
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError as error:
        raise DecloudError(f"{what} must be hex digits, not {text!r}") from error


def parse_tag(text: str) -> bytes:
    """A tag as names (`tee`, `gpu`, `tee,gpu`, empty for none) or as a 0x bytes32."""
    if text.startswith("0x"):
        return parse_bytes32(text, "a tag")
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TAG_NAMES]
    if unknown:
        raise DecloudError(
            f"unknown tag {', '.join(unknown)}",
            f"use {', '.join(TAG_NAMES)} (comma-separated), or a 0x bytes32 bit mask",
        )
    return tag_union(NO_TAG, *(TAG_NAMES[name] for name in names))
