# pragma version ~=0.4.3
"""
@title decloud dataset registry
@custom:contract-name DatasetRegistry
@license Apache-2.0
@notice Every dataset sold on decloud is an ERC-721 token of this
        registry. The holder of the token owns the dataset: it signs the
        dataset orders, receives the dataset price of every task that uses
        it, and (through the SMS) holds the key of the encrypted file. A
        dataset is named by a 20-byte identifier; its token id is that
        identifier read as a uint256.
@custom:security Metadata is immutable once registered: a deal that chose a
                 dataset by its checksum must get exactly that file.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc721

initializes: ownable
initializes: erc721[ownable := ownable]

exports: (
    erc721.balanceOf,
    erc721.ownerOf,
    erc721.approve,
    erc721.getApproved,
    erc721.setApprovalForAll,
    erc721.isApprovedForAll,
    erc721.transferFrom,
    erc721.safeTransferFrom,
    erc721.supportsInterface,
    erc721.totalSupply,
    erc721.tokenByIndex,
    erc721.tokenOfOwnerByIndex,
    erc721.name,
    erc721.symbol,
)



struct Dataset:
    name: String[64]
    # URL or CID of the (encrypted) dataset file.
    multiaddr: String[256]
    # sha256 of the encrypted file, verified by workers before use.
    checksum: bytes32


# Metadata of every registered dataset, written once by `createDataset`.
datasets: public(HashMap[address, Dataset])


event DatasetCreated:
    dataset: indexed(address)
    owner: indexed(address)
    name: String[64]
    multiaddr: String[256]
    checksum: bytes32


@deploy
def __init__():
    ownable.__init__()
    erc721.__init__("decloud datasets", "DCDS", "", "decloud datasets", "1")


@external
def createDataset(owner: address, name: String[64], multiaddr: String[256], checksum: bytes32) -> address:
    """
    @notice Registers a dataset and mints its token to `owner`.
    @param owner Account that will own the dataset (signs its orders).
    @param name Human-readable name, unique per owner.
    @param multiaddr Where workers fetch the encrypted file.
    @param checksum sha256 of the encrypted file.
    @return address The dataset identifier.
    @custom:security The identifier derives from (registry, caller, owner, name), so
                     nobody can squat an owner's identifier.
    """
    assert owner != empty(address), "dataset: owner is zero"
    assert len(name) > 0, "dataset: empty name"
    assert checksum != empty(bytes32), "dataset: checksum missing"
    dataset: address = self._resource_id(owner, name)
    assert not erc721._exists(convert(dataset, uint256)), "dataset: already registered"
    self.datasets[dataset] = Dataset(name=name, multiaddr=multiaddr, checksum=checksum)
    erc721._mint(owner, convert(dataset, uint256))
    log DatasetCreated(dataset=dataset, owner=owner, name=name, multiaddr=multiaddr, checksum=checksum)
    return dataset


@external
@view
def datasetOwner(dataset: address) -> address:
    """
    @param dataset The dataset identifier.
    @return address Current owner, zero if the dataset is unknown.
    """
    return erc721._owners[convert(dataset, uint256)]


@internal
@view
def _resource_id(owner: address, name: String[64]) -> address:
    return convert(
        convert(keccak256(abi_encode(self, msg.sender, owner, keccak256(name))), uint256) & convert(max_value(uint160), uint256),
        address,
    )
