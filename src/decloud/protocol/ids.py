"""Identifiers and contribution hashes of deals and tasks (DESIGN.md section 2, Tasks).

Each value is keccak256 of `abi.encodePacked(...)` of its inputs, exactly as the hub computes
it, so that a scheduler, a worker and the chain name the same deal, task and vote.
"""

from __future__ import annotations

from eth_abi.packed import encode_packed
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak

from decloud.protocol.orders import (
    Eip712Domain,
    WorkerpoolAuthorization,
    _check_abi_value,
    _wallet_sign,
)

EIP191_PREFIX_32 = b"\x19Ethereum Signed Message:\n32"
"""What `personal_sign` puts before a 32-byte message, so it can never be a transaction."""


def _keccak_packed(abi_types: list[str], values: list[object], names: list[str]) -> bytes:
    """keccak256(abi.encodePacked(values)), after checking each value has its full width:
    encodePacked would silently pad a short bytes32."""
    for abi_type, value, name in zip(abi_types, values, names, strict=True):
        _check_abi_value(abi_type, name, value)
    return keccak(encode_packed(abi_types, values))


def deal_id(request_digest: bytes, consumed_before: int) -> bytes:
    """A deal is named by the request order it fills and how much of it was consumed before,
    so one request order can be filled by several deals."""
    return _keccak_packed(
        ["bytes32", "uint256"],
        [request_digest, consumed_before],
        ["request_digest", "consumed_before"],
    )


def task_id(dealid: bytes, index: int) -> bytes:
    """The task at position `index` of the request's volume, within deal `dealid`."""
    return _keccak_packed(["bytes32", "uint256"], [dealid, index], ["dealid", "index"])


def result_hash(taskid: bytes, digest: bytes) -> bytes:
    """A worker's vote: the result digest bound to the task, so votes are per task."""
    return _keccak_packed(["bytes32", "bytes32"], [taskid, digest], ["taskid", "digest"])


def result_seal(worker: str, taskid: bytes, digest: bytes) -> bytes:
    """Proof that `worker` itself knew the digest: another worker cannot copy a vote, since
    its own seal needs the digest that the vote hides."""
    return _keccak_packed(
        ["address", "bytes32", "bytes32"],
        [worker, taskid, digest],
        ["worker", "taskid", "digest"],
    )


def enclave_message(result_hash: bytes, result_seal: bytes) -> bytes:
    """The 32 bytes an enclave signs to vouch for one contribution."""
    return _keccak_packed(
        ["bytes32", "bytes32"], [result_hash, result_seal], ["result_hash", "result_seal"]
    )


def enclave_digest(message: bytes) -> bytes:
    """The EIP-191 (`personal_sign`) digest of an enclave message, which the hub recovers."""
    _check_abi_value("bytes32", "message", message)
    return keccak(EIP191_PREFIX_32 + message)


def sign_enclave(message: bytes, private_key: str | bytes) -> bytes:
    """The enclave challenge key's `personal_sign` signature of `message` (65 bytes)."""
    return _wallet_sign(encode_defunct(primitive=message), enclave_digest(message), private_key)


def authorization_digest(authorization: WorkerpoolAuthorization, domain: Eip712Domain) -> bytes:
    """The EIP-712 digest the workerpool owner signs to let one worker contribute to one task."""
    return authorization.digest(domain)
