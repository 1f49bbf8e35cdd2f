"""Signed orders of the decloud marketplace and their EIP-712 hashing (DESIGN.md section 2).

The four order types keep PoCo's field names and Solidity types, so wallets show familiar
orders and `eth_signTypedData_v4` signatures verify on the hub. Each dataclass declares its
fields in struct order with an ABI type annotation; that declaration is the only field table:
the type string, struct hash, JSON message, ABI tuple and validation are all derived from it.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self

import coincurve
from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils.address import is_address, is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak

UINT256_LIMIT = 2**256
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""Order of the secp256k1 group: r and s of a signature lie in [1, n)."""
SECP256K1_HALF_N = SECP256K1_N // 2
"""Largest accepted s: (r, s) and (r, n - s) both verify, so only the low half is accepted,
as on the hub, to make every signature unique (EIP-2)."""
_ADDRESS_LENGTH = 42
"""0x and 40 hex digits (JSON may leave the 0x out)."""
_ADDRESS_CACHE = 4096
"""Addresses whose checksummed form is remembered (a few hundred KiB at most)."""


class SignatureError(ValueError):
    """A signature that cannot be a valid signer's: wrong length, bad v, out-of-range or high s."""


@dataclass(frozen=True)
class AbiType:
    """Marks a dataclass field with the Solidity type it has in its EIP-712 struct."""

    name: str


Address = Annotated[str, AbiType("address")]
Uint256 = Annotated[int, AbiType("uint256")]
Bytes32 = Annotated[bytes, AbiType("bytes32")]
String = Annotated[str, AbiType("string")]


@dataclass(frozen=True)
class _Codec:
    """How values of one ABI type are checked and written to / read from JSON messages."""

    expected: str
    is_valid: Callable[[Any], bool]
    to_json: Callable[[Any], str]
    from_json: Callable[[Any], Any]


def _is_uint256(value: object) -> bool:
    # bool is an int subclass; True as a price is a bug, not 1.
    return type(value) is int and 0 <= value < UINT256_LIMIT


def _encodes_as_utf8(value: str) -> bool:
    # A lone surrogate would only fail later, inside keccak of the UTF-8 bytes.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The JSON parsers return a value they cannot parse unchanged, so that the struct's own check
# reports it with the field's name.


def _uint256_from_json(value: Any) -> Any:
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        return int(value)
    return value


def _bytes32_from_json(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return value
    return value


@functools.lru_cache(maxsize=_ADDRESS_CACHE)
def _checksummed(value: str) -> str | None:
    """`value` in its checksummed form, None if it is no address. Cached: the checksum is a
    keccak (about 100 µs here), and a market sees the same few addresses (its pools, apps,
    the zero address) in order after order."""
    return str(to_checksum_address(value)) if is_address(value) else None


@functools.lru_cache(maxsize=_ADDRESS_CACHE)
def _is_checksummed(value: str) -> bool:
    return is_checksum_address(value)


def _address_from_json(value: Any) -> Any:
    # Wallets and tools emit lowercase addresses too; orders keep the checksummed form. Only
    # address-sized strings reach the cache, so junk cannot fill it with large keys.
    if isinstance(value, str) and len(value) in (_ADDRESS_LENGTH, _ADDRESS_LENGTH - 2):
        return _checksummed(value) or value
    return value


_CODECS: dict[str, _Codec] = {
    "address": _Codec(
        "a checksummed 20-byte address",
        lambda v: isinstance(v, str) and len(v) == _ADDRESS_LENGTH and _is_checksummed(v),
        str,
        _address_from_json,
    ),
    "uint256": _Codec(
        "an int in [0, 2**256)",
        _is_uint256,
        str,
        _uint256_from_json,
    ),
    "bytes32": _Codec(
        "32 bytes",
        lambda v: isinstance(v, bytes) and len(v) == 32,
        lambda v: "0x" + v.hex(),
        _bytes32_from_json,
    ),
    "string": _Codec(
        "a str encodable as UTF-8",
        lambda v: isinstance(v, str) and _encodes_as_utf8(v),
        str,
        lambda v: v,
    ),
}


def _check_abi_value(abi_type: str, what: str, value: object) -> None:
    """Raise a ValueError naming `what` unless `value` is a valid Python value of `abi_type`."""
    codec = _CODECS[abi_type]
    if not codec.is_valid(value):
        raise ValueError(f"{what}: expected {codec.expected}, got {value!r}")


StructFields = tuple[tuple[str, str], ...]
"""(name, ABI type) pairs in struct order."""


def _type_string(struct_name: str, fields: StructFields) -> str:
    return f"{struct_name}({','.join(f'{abi_type} {name}' for name, abi_type in fields)})"


def _hash_struct(type_string: str, fields: StructFields, values: tuple[Any, ...]) -> bytes:
    """EIP-712 hashStruct: keccak(typeHash ‖ encodeData), where a string is encoded as the
    keccak of its UTF-8 bytes and every other (static) field as its ABI word."""
    abi_types = ["bytes32"] + ["bytes32" if t == "string" else t for _, t in fields]
    words = [keccak(text=type_string)] + [
        keccak(text=v) if t == "string" else v for (_, t), v in zip(fields, values, strict=True)
    ]
    return keccak(encode(abi_types, words))


def _typed_data_fields(fields: StructFields) -> list[dict[str, str]]:
    return [{"name": name, "type": abi_type} for name, abi_type in fields]


def _abi_fields(cls: type) -> StructFields:
    """The (name, ABI type) table of a struct class, read from its AbiType annotations."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(
        (name, meta.name)
        for name, hint in hints.items()
        for meta in getattr(hint, "__metadata__", ())
        if isinstance(meta, AbiType)
    )


_DOMAIN_FIELDS: StructFields = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
)


@dataclass(frozen=True)
class Eip712Domain:
    """The hub's signing domain: a signature is only valid for one chain and one hub."""

    chain_id: int
    verifying_contract: str
    name: str = "decloud"
    version: str = "1"

    TYPE_STRING: ClassVar[str] = _type_string("EIP712Domain", _DOMAIN_FIELDS)

    def __post_init__(self) -> None:
        for (field, abi_type), value in zip(_DOMAIN_FIELDS, self.as_tuple(), strict=True):
            _check_abi_value(abi_type, f"Eip712Domain.{field}", value)

    def as_tuple(self) -> tuple[str, str, int, str]:
        return (self.name, self.version, self.chain_id, self.verifying_contract)

    def separator(self) -> bytes:
        """The domain separator that prefixes every order digest of this hub."""
        return _hash_struct(self.TYPE_STRING, _DOMAIN_FIELDS, self.as_tuple())

    def to_message(self) -> dict[str, Any]:
        """The `domain` member of typed data, as wallets expect it (chainId as a number)."""
        return {
            field: value for (field, _), value in zip(_DOMAIN_FIELDS, self.as_tuple(), strict=True)
        }


class Eip712Struct:
    """Behaviour shared by every signed struct, derived from the subclass's field table.

    Subclasses are frozen dataclasses whose fields are annotated with `Address`, `Uint256`,
    `Bytes32` or `String`, declared in the order of the Solidity struct.
    """

    FIELDS: ClassVar[StructFields]
    TYPE_STRING: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.FIELDS = _abi_fields(cls)
        cls.TYPE_STRING = _type_string(cls.__name__, cls.FIELDS)

    def __post_init__(self) -> None:
        for name, abi_type in self.FIELDS:
            _check_abi_value(abi_type, f"{type(self).__name__}.{name}", getattr(self, name))

    @classmethod
    def type_hash(cls) -> bytes:
        return keccak(text=cls.TYPE_STRING)

    def as_tuple(self) -> tuple[Any, ...]:
        """Field values in struct order: the ABI tuple a contract call takes."""
        return tuple(getattr(self, name) for name, _ in self.FIELDS)

    def struct_hash(self) -> bytes:
        return _hash_struct(self.TYPE_STRING, self.FIELDS, self.as_tuple())

    def digest(self, domain: Eip712Domain) -> bytes:
        """The EIP-712 digest that is signed: keccak(0x1901 ‖ domainSeparator ‖ structHash)."""
        return keccak(b"\x19\x01" + domain.separator() + self.struct_hash())

    def to_message(self) -> dict[str, str]:
        """The JSON message: uints as decimal strings (no float precision loss), bytes32 as
        0x-hex, addresses checksummed."""
        return {
            name: _CODECS[abi_type].to_json(getattr(self, name)) for name, abi_type in self.FIELDS
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Self:
        """Parse a JSON message (uints as decimal strings or ints, any-case hex addresses)."""
        names = [name for name, _ in cls.FIELDS]
        missing = [name for name in names if name not in message]
        unknown = sorted(set(message) - set(names))
        if missing or unknown:
            raise ValueError(f"{cls.__name__} message: missing {missing}, unknown {unknown}")
        return cls(
            **{name: _CODECS[abi_type].from_json(message[name]) for name, abi_type in cls.FIELDS}
        )


@dataclass(frozen=True)
class AppOrder(Eip712Struct):
    """An app owner's offer: run `app` for `appprice` per task, `volume` times."""

    app: Address
    appprice: Uint256
    volume: Uint256
    tag: Bytes32
    datasetrestrict: Address
    workerpoolrestrict: Address
    requesterrestrict: Address
    salt: Bytes32


@dataclass(frozen=True)
class DatasetOrder(Eip712Struct):
    """A dataset owner's offer: let `dataset` be used for `datasetprice` per task."""

    dataset: Address
    datasetprice: Uint256
    volume: Uint256
    tag: Bytes32
    apprestrict: Address
    workerpoolrestrict: Address
    requesterrestrict: Address
    salt: Bytes32


@dataclass(frozen=True)
class WorkerpoolOrder(Eip712Struct):
    """A workerpool owner's offer of computing power in one category, at a given trust."""

    workerpool: Address
    workerpoolprice: Uint256
    volume: Uint256
    tag: Bytes32
    category: Uint256
    trust: Uint256
    apprestrict: Address
    datasetrestrict: Address
    requesterrestrict: Address
    salt: Bytes32


@dataclass(frozen=True)
class RequestOrder(Eip712Struct):
    """A requester's demand: run `app` on `dataset` with `params`, within the max prices."""

    app: Address
    appmaxprice: Uint256
    dataset: Address
    datasetmaxprice: Uint256
    workerpool: Address
    workerpoolmaxprice: Uint256
    requester: Address
    volume: Uint256
    tag: Bytes32
    category: Uint256
    trust: Uint256
    beneficiary: Address
    callback: Address
    params: String
    salt: Bytes32


@dataclass(frozen=True)
class WorkerpoolAuthorization(Eip712Struct):
    """The workerpool owner's permission for one worker to contribute to one task;
    enclaveChallenge is the zero address for standard (non-TEE) tasks."""

    worker: Address
    taskid: Bytes32
    enclaveChallenge: Address


def typed_data(struct: Eip712Struct, domain: Eip712Domain) -> dict[str, Any]:
    """The full typed-data document a wallet signs with `eth_signTypedData_v4`."""
    name = type(struct).__name__
    return {
        "types": {
            "EIP712Domain": _typed_data_fields(_DOMAIN_FIELDS),
            name: _typed_data_fields(struct.FIELDS),
        },
        "primaryType": name,
        "domain": domain.to_message(),
        "message": struct.to_message(),
    }


def _wallet_sign(
    signable: SignableMessage, expected_digest: bytes, private_key: str | bytes
) -> bytes:
    """Sign as a wallet would, and insist the wallet signed the digest decloud computed:
    a mismatch means our hashing disagrees with what every wallet and the hub verify."""
    signed = Account.sign_message(signable, private_key)
    if bytes(signed.message_hash) != expected_digest:
        raise RuntimeError(
            f"wallet digest 0x{bytes(signed.message_hash).hex()} differs from decloud's "
            f"0x{expected_digest.hex()}"
        )
    return bytes(signed.signature)


def sign_typed(order: Eip712Struct, domain: Eip712Domain, private_key: str | bytes) -> bytes:
    """Sign an order (or authorization) exactly as `eth_signTypedData_v4` does: 65 bytes r‖s‖v."""
    signable = encode_typed_data(full_message=typed_data(order, domain))
    return _wallet_sign(signable, order.digest(domain), private_key)


def _parse_signature(signature: bytes) -> tuple[int, int, int]:
    """(r, s, v) of a 65-byte signature, refusing any the hub would refuse."""
    if len(signature) != 65:
        raise SignatureError(
            f"signature: expected 65 bytes (or 64, EIP-2098), got {len(signature)}"
        )
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise SignatureError(f"signature: v must be 27 or 28, got {v}")
    if not 0 < r < SECP256K1_N:
        raise SignatureError("signature: r out of range [1, n)")
    if not 0 < s <= SECP256K1_HALF_N:
        raise SignatureError(
            "signature: s must lie in [1, n/2]; a high-s signature is a malleated copy (EIP-2)"
        )
    return r, s, v


def to_compact(signature: bytes) -> bytes:
    """EIP-2098 form of a 65-byte signature: r ‖ (yParity << 255 | s), one word less calldata."""
    r, s, v = _parse_signature(signature)
    return r.to_bytes(32, "big") + ((v - 27) << 255 | s).to_bytes(32, "big")


def from_compact(compact: bytes) -> bytes:
    """The 65-byte r‖s‖v form of an EIP-2098 signature."""
    if len(compact) != 64:
        raise SignatureError(f"compact signature: expected 64 bytes, got {len(compact)}")
    y_parity_and_s = int.from_bytes(compact[32:], "big")
    s = y_parity_and_s & (2**255 - 1)
    v = 27 + (y_parity_and_s >> 255)
    return compact[:32] + s.to_bytes(32, "big") + bytes([v])


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address whose key signed `digest` (65- or 64-byte signature)."""
    _check_abi_value("bytes32", "digest", digest)
    full = from_compact(signature) if len(signature) == 64 else signature
    _, _, v = _parse_signature(full)
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            full[:64] + bytes([v - 27]), digest, hasher=None
        )
    except ValueError as error:
        raise SignatureError(f"signature: no public key recovers from it ({error})") from error
    address = keccak(public_key.format(compressed=False)[1:])[-20:]
    return _checksummed("0x" + address.hex()) or ""
