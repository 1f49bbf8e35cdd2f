# pragma version ~=0.4.3
"""
@title ERC-1271 wallet (test contract)
@custom:contract-name Erc1271Wallet
@license Apache-2.0
@notice A smart-contract account for the tests: it answers ERC-1271's magic
        value for exactly the digests its owner allowed on-chain, whatever
        the signature bytes, and a non-magic value for any other digest.
"""

ERC1271_MAGIC: constant(bytes4) = 0x1626ba7e
ERC1271_REJECT: constant(bytes4) = 0xffffffff

# The account allowed to approve digests; set at deployment.
owner: public(immutable(address))
# Digests the owner approved; written only by `allow`.
allowed: public(HashMap[bytes32, bool])


@deploy
def __init__(owner_: address):
    """
    @param owner_ The account that approves digests.
    """
    owner = owner_


@external
def allow(digest: bytes32, approved: bool):
    """
    @notice Approves (or withdraws approval of) a digest.
    @param digest An EIP-712 digest the wallet signs.
    @param approved Whether `isValidSignature` accepts it.
    """
    assert msg.sender == owner, "wallet: caller is not the owner"
    self.allowed[digest] = approved


@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[65]) -> bytes4:
    """
    @notice ERC-1271: whether the wallet signed `digest`.
    @return bytes4 The magic value 0x1626ba7e for an allowed digest.
    """
    if self.allowed[digest]:
        return ERC1271_MAGIC
    return ERC1271_REJECT
