# pragma version ~=0.4.3
"""
@title Signature rules shared by the hub's contracts
@custom:contract-name signatures
@license Apache-2.0
@notice One rule for every order and every workerpool authorization: a
        65-byte or 64-byte (EIP-2098) ECDSA signature by the signer, or,
        when the signer is a contract (a smart wallet), its ERC-1271
        approval. Orders may also be presigned on-chain; that part lives
        with the order storage in the Marketplace.
@custom:security ECDSA recovery rejects high-s signatures (snekmate), and a
                 recovered zero address never matches since the signer is
                 checked non-zero first.
"""

from snekmate.utils import ecdsa

ERC1271_MAGIC: constant(bytes4) = 0x1626ba7e
EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
# The signing domain of decloud: name "decloud", version "1".
DOMAIN_NAME_HASH: constant(bytes32) = keccak256("decloud")
DOMAIN_VERSION_HASH: constant(bytes32) = keccak256("1")


@internal
@view
def _is_valid(signer: address, digest: bytes32, signature: Bytes[65]) -> bool:
    """
    @dev True when `signature` proves `signer` approved `digest`.
    @param signer Expected signer; a contract answers through ERC-1271.
    @param digest The 32-byte message digest.
    @param signature 65 or 64 bytes for an externally owned account.
    """
    if signer == empty(address):
        return False
    if signer.is_contract:
        # A wallet that reverts or answers anything but the magic value
        # rejects the signature; the return data is bounded to 32 bytes.
        success: bool = False
        response: Bytes[32] = b""
        success, response = raw_call(
            signer,
            abi_encode(digest, signature, method_id=method_id("isValidSignature(bytes32,bytes)")),
            max_outsize=32,
            is_static_call=True,
            revert_on_failure=False,
        )
        return success and len(response) == 32 and convert(slice(response, 0, 4), bytes4) == ERC1271_MAGIC
    return ecdsa._recover_sig(digest, signature) == signer


@internal
@view
def _typed_digest(verifying_contract: address, struct_hash: bytes32) -> bytes32:
    """
    @dev EIP-712 digest of `struct_hash` in decloud's domain on this chain.
    """
    separator: bytes32 = keccak256(
        abi_encode(EIP712_DOMAIN_TYPEHASH, DOMAIN_NAME_HASH, DOMAIN_VERSION_HASH, chain.id, verifying_contract)
    )
    return keccak256(concat(b"\x19\x01", separator, struct_hash))
