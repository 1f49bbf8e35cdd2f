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
@custom:security Recovery never reverts: a malformed, high-s (EIP-2) or
                 unrecoverable signature recovers the zero address, which never
                 matches since signers are checked non-zero first. Callers then
                 revert with a reason that names the signature that failed.
"""

ERC1271_MAGIC: constant(bytes4) = 0x1626ba7e
# Largest accepted s: (r, s) and (r, n - s) both verify, so only the lower half
# of the secp256k1 group order is accepted and every signature is unique.
HALF_ORDER: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
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
    return self._recover(digest, signature) == signer


@internal
@pure
def _recover(digest: bytes32, signature: Bytes[65]) -> address:
    """
    @dev The signer of a 65-byte (r, s, v) or 64-byte EIP-2098 (r, vs)
         signature, or the zero address if it is not a valid low-s signature.
    """
    r: uint256 = 0
    s: uint256 = 0
    v: uint256 = 0
    if len(signature) == 65:
        r = extract32(signature, 0, output_type=uint256)
        s = extract32(signature, 32, output_type=uint256)
        v = convert(slice(signature, 64, 1), uint256)
    elif len(signature) == 64:
        r = extract32(signature, 0, output_type=uint256)
        vs: uint256 = extract32(signature, 32, output_type=uint256)
        s = vs & (2**255 - 1)
        v = 27 + (vs >> 255)
    else:
        return empty(address)
    if s > HALF_ORDER or (v != 27 and v != 28):
        return empty(address)
    # The precompile returns no address (zero) for a point off the curve.
    return ecrecover(digest, v, r, s)


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
