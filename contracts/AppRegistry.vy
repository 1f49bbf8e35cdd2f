# pragma version ~=0.4.3
"""
@title decloud application registry
@custom:contract-name AppRegistry
@license Apache-2.0
@notice Every application sold on decloud is an ERC-721 token of this
        registry. The holder of the token owns the application: it signs the
        app orders and receives the app price of every task that runs it.
        An application is named by a 20-byte identifier; its token id is
        that identifier read as a uint256, so orders name applications by
        `address`.
@custom:security Metadata is immutable once registered: a deal that chose an
                 app by its checksum must run exactly that code.
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

# Runtimes an application can target (DESIGN.md section 3).
APP_TYPE_OCI: constant(uint8) = 0
APP_TYPE_WASM: constant(uint8) = 1


struct App:
    name: String[64]
    # One of APP_TYPE_*.
    app_type: uint8
    # Image reference (OCI) or URL / CID of the module (WASM).
    multiaddr: String[256]
    # sha256 of the image digest or of the module.
    checksum: bytes32
    # Enclave fingerprint; empty for apps that cannot run in a TEE.
    mrenclave: Bytes[256]


# Metadata of every registered app, written once by `createApp`.
apps: public(HashMap[address, App])


event AppCreated:
    app: indexed(address)
    owner: indexed(address)
    name: String[64]
    app_type: uint8
    multiaddr: String[256]
    checksum: bytes32


@deploy
def __init__():
    ownable.__init__()
    erc721.__init__("decloud apps", "DCAPP", "", "decloud apps", "1")


@external
def createApp(
    owner: address,
    name: String[64],
    app_type: uint8,
    multiaddr: String[256],
    checksum: bytes32,
    mrenclave: Bytes[256],
) -> address:
    """
    @notice Registers an application and mints its token to `owner`.
    @param owner Account that will own the app (signs its orders).
    @param name Human-readable name, unique per owner.
    @param app_type APP_TYPE_OCI or APP_TYPE_WASM.
    @param multiaddr Where workers fetch the code.
    @param checksum sha256 the workers verify before running.
    @param mrenclave Enclave fingerprint, empty for non-TEE apps.
    @return address The app identifier.
    @custom:security The identifier derives from (registry, caller, owner, name): a
                     registration made by someone else for the same owner and name gets
                     another identifier, so nobody can squat an owner's identifier.
    """
    assert owner != empty(address), "app: owner is zero"
    assert len(name) > 0, "app: empty name"
    assert app_type <= APP_TYPE_WASM, "app: unknown type"
    assert checksum != empty(bytes32), "app: checksum missing"
    app: address = self._resource_id(owner, name)
    assert not erc721._exists(convert(app, uint256)), "app: already registered"
    self.apps[app] = App(
        name=name, app_type=app_type, multiaddr=multiaddr, checksum=checksum, mrenclave=mrenclave
    )
    erc721._mint(owner, convert(app, uint256))
    log AppCreated(
        app=app, owner=owner, name=name, app_type=app_type, multiaddr=multiaddr, checksum=checksum
    )
    return app


@external
@view
def appInfo(app: address) -> (address, bool):
    """
    @notice What the hub needs to match an app order.
    @param app The app identifier.
    @return (owner, tee) Current owner (zero if unknown) and whether the app
            can run in an enclave.
    """
    return erc721._owners[convert(app, uint256)], len(self.apps[app].mrenclave) > 0


@internal
@view
def _resource_id(owner: address, name: String[64]) -> address:
    return convert(
        convert(keccak256(abi_encode(self, msg.sender, owner, keccak256(name))), uint256) & convert(max_value(uint160), uint256),
        address,
    )
