"""Tags: the capabilities an order offers or asks for, as a bytes32 bit mask (DESIGN.md section 2).

Bit i is the bit of value 2**i when the 32 bytes are read as a big-endian uint256, as the hub
reads them. A workerpool can serve a deal only if its tag covers every bit the app, dataset
and request tags ask for.

| name | bit | meaning                                                                        |
|------|-----|--------------------------------------------------------------------------------|
| TEE  | 0   | runs in an attested enclave; results are accepted on the enclave's signature  |
| GPU  | 8   | needs a GPU; the OCI runtime exposes GPUs only to GPU-tagged tasks (as iExec)  |

Other bits carry no meaning yet; they are kept and matched like any other.
"""

from __future__ import annotations

from decloud.protocol.orders import _check_abi_value

TAG_BITS = 256
NO_TAG = bytes(32)
"""Asks for nothing, offers nothing."""


def _as_int(tag: bytes) -> int:
    _check_abi_value("bytes32", "tag", tag)
    return int.from_bytes(tag, "big")


def _as_tag(mask: int) -> bytes:
    return mask.to_bytes(32, "big")


def tag_from_bits(*bits: int) -> bytes:
    """The tag with exactly the given bits set."""
    mask = 0
    for bit in bits:
        if type(bit) is not int or not 0 <= bit < TAG_BITS:
            raise ValueError(f"tag bit: expected an int in [0, {TAG_BITS}), got {bit!r}")
        mask |= 1 << bit
    return _as_tag(mask)


TEE = tag_from_bits(0)
GPU = tag_from_bits(8)


def tag_union(*tags: bytes) -> bytes:
    """Every bit asked by any of the tags: what a deal as a whole requires."""
    mask = 0
    for tag in tags:
        mask |= _as_int(tag)
    return _as_tag(mask)


def tag_covers(offered: bytes, asked: bytes) -> bool:
    """Whether `offered` has every bit of `asked` (it may offer more)."""
    return _as_int(asked) & ~_as_int(offered) == 0


def is_tee(tag: bytes) -> bool:
    """Whether the tag asks for (or offers) execution in an enclave."""
    return tag_covers(tag, TEE)
