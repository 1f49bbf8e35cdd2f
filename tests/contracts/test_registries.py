"""The three ERC-721 registries: creation, bad inputs, duplicates, ownership and pool policy.

The holder of a resource's token owns the resource: transferring the token changes who must
sign its orders and who is paid (DESIGN.md section 2, Registries).
"""

from __future__ import annotations

from collections.abc import Iterator

import boa
import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from tests.contracts.harness import ZERO, Protocol

CHECKSUM = b"\x0c" * 32


@pytest.fixture(autouse=True)
def _hub_holds_every_balance(protocol: Protocol) -> Iterator[None]:
    """After every test: tokens held by the hub == free + locked of every actor + kitty."""
    yield
    assert protocol.hub_balance_matches()


def resource_id(registry: str, owner: str, name: str, caller: str | None = None) -> str:
    """The id a registry derives: keccak256(abi_encode(registry, caller, owner,
    keccak256(name))), low 160 bits, so nobody can take the id of another owner's resource."""
    values = [registry, caller or boa.env.eoa, owner, keccak(text=name)]
    digest = keccak(encode(["address", "address", "address", "bytes32"], values))
    return to_checksum_address(digest[-20:])


def same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


# --- apps ---------------------------------------------------------------------------------


def test_create_app_mints_its_token_to_the_owner(protocol: Protocol) -> None:
    owner = protocol["requester"].address
    app = protocol.apps.createApp(owner, "render", 0, "docker.io/render:1", CHECKSUM, b"")
    created = protocol.apps.get_logs()[-1]
    assert same(app, resource_id(protocol.apps.address, owner, "render"))
    assert same(protocol.apps.ownerOf(int(app, 16)), owner)
    name, app_type, multiaddr, checksum, mrenclave = protocol.apps.apps(app)
    assert (name, app_type, multiaddr, checksum, mrenclave) == (
        "render",
        0,
        "docker.io/render:1",
        CHECKSUM,
        b"",
    )
    assert tuple(protocol.apps.appInfo(app)) == (owner, False)
    assert type(created).__name__ == "AppCreated"
    assert same(created.app, app) and same(created.owner, owner)


def test_app_with_mrenclave_is_a_tee_app(protocol: Protocol) -> None:
    owner, tee = protocol.apps.appInfo(protocol.tee_app)
    assert same(owner, protocol["app_owner"].address) and tee


def test_unknown_app_has_no_owner(protocol: Protocol) -> None:
    assert tuple(protocol.apps.appInfo(protocol.dataset)) == (ZERO, False)


def _caller(account: str) -> str:
    """Registrations in these tests are made by the owner itself (the zero owner aside)."""
    return boa.env.eoa if account == ZERO else account


def test_nobody_can_squat_an_owners_identifier(protocol: Protocol) -> None:
    owner = protocol["app_owner"].address
    squatter = protocol["requester"].address
    squatted = protocol.apps.createApp(
        owner, "next", 1, "ipfs://evil", CHECKSUM, b"", sender=squatter
    )
    genuine = protocol.apps.createApp(owner, "next", 1, "ipfs://good", CHECKSUM, b"", sender=owner)
    assert not same(squatted, genuine)
    assert same(genuine, resource_id(protocol.apps.address, owner, "next", caller=owner))


def test_same_app_name_for_another_owner_is_another_app(protocol: Protocol) -> None:
    other = protocol["requester"].address
    app = protocol.apps.createApp(other, "mandelbrot", 1, "ipfs://app", CHECKSUM, b"")
    assert not same(app, protocol.app)


@pytest.mark.parametrize(
    ("owner", "name", "app_type", "checksum", "reason"),
    [
        (ZERO, "render", 0, CHECKSUM, "app: owner is zero"),
        ("app_owner", "", 0, CHECKSUM, "app: empty name"),
        ("app_owner", "render", 2, CHECKSUM, "app: unknown type"),
        ("app_owner", "render", 0, bytes(32), "app: checksum missing"),
        ("app_owner", "mandelbrot", 1, CHECKSUM, "app: already registered"),
    ],
)
def test_create_app_rejects_bad_input(
    protocol: Protocol, owner: str, name: str, app_type: int, checksum: bytes, reason: str
) -> None:
    account = protocol[owner].address if owner in protocol.actors else owner
    with boa.reverts(reason):
        protocol.apps.createApp(
            account, name, app_type, "ipfs://x", checksum, b"", sender=_caller(account)
        )


# --- datasets -----------------------------------------------------------------------------


def test_create_dataset_mints_its_token_to_the_owner(protocol: Protocol) -> None:
    owner = protocol["requester"].address
    dataset = protocol.datasets.createDataset(owner, "faces", "ipfs://faces", CHECKSUM)
    assert type(protocol.datasets.get_logs()[-1]).__name__ == "DatasetCreated"
    assert same(dataset, resource_id(protocol.datasets.address, owner, "faces"))
    assert same(protocol.datasets.ownerOf(int(dataset, 16)), owner)
    assert same(protocol.datasets.datasetOwner(dataset), owner)
    assert tuple(protocol.datasets.datasets(dataset)) == ("faces", "ipfs://faces", CHECKSUM)


def test_unknown_dataset_has_no_owner(protocol: Protocol) -> None:
    assert protocol.datasets.datasetOwner(protocol.app) == ZERO


@pytest.mark.parametrize(
    ("owner", "name", "checksum", "reason"),
    [
        (ZERO, "faces", CHECKSUM, "dataset: owner is zero"),
        ("dataset_owner", "", CHECKSUM, "dataset: empty name"),
        ("dataset_owner", "faces", bytes(32), "dataset: checksum missing"),
        ("dataset_owner", "pixels", CHECKSUM, "dataset: already registered"),
    ],
)
def test_create_dataset_rejects_bad_input(
    protocol: Protocol, owner: str, name: str, checksum: bytes, reason: str
) -> None:
    account = protocol[owner].address if owner in protocol.actors else owner
    with boa.reverts(reason):
        protocol.datasets.createDataset(
            account, name, "ipfs://x", checksum, sender=_caller(account)
        )


# --- workerpools --------------------------------------------------------------------------


def test_create_workerpool_has_the_default_policy(protocol: Protocol) -> None:
    owner = protocol["worker1"].address
    pool = protocol.workerpools.createWorkerpool(owner, "gpu farm")
    names = [type(e).__name__ for e in protocol.workerpools.get_logs()]
    assert same(pool, resource_id(protocol.workerpools.address, owner, "gpu farm"))
    assert same(protocol.workerpools.ownerOf(int(pool, 16)), owner)
    assert tuple(protocol.workerpools.workerpoolInfo(pool)) == (owner, 30, 1)
    assert tuple(protocol.workerpools.workerpools(pool)) == ("gpu farm", 30, 1)
    assert names == ["Transfer", "WorkerpoolCreated", "WorkerpoolPolicyUpdate"]


def test_unknown_workerpool_has_no_owner(protocol: Protocol) -> None:
    assert tuple(protocol.workerpools.workerpoolInfo(protocol.app)) == (ZERO, 0, 0)


@pytest.mark.parametrize(
    ("owner", "description", "reason"),
    [
        (ZERO, "farm", "workerpool: owner is zero"),
        ("pool_owner", "", "workerpool: empty description"),
        ("pool_owner", "pool", "workerpool: already registered"),
    ],
)
def test_create_workerpool_rejects_bad_input(
    protocol: Protocol, owner: str, description: str, reason: str
) -> None:
    account = protocol[owner].address if owner in protocol.actors else owner
    with boa.reverts(reason):
        protocol.workerpools.createWorkerpool(account, description, sender=_caller(account))


def test_pool_owner_sets_the_policy_within_its_bounds(protocol: Protocol) -> None:
    owner = protocol["pool_owner"].address
    protocol.workerpools.setWorkerpoolPolicy(protocol.workerpool, 100, 90, sender=owner)
    assert tuple(protocol.workerpools.workerpoolInfo(protocol.workerpool)) == (owner, 100, 90)
    protocol.workerpools.setWorkerpoolPolicy(protocol.workerpool, 0, 0, sender=owner)
    update = protocol.workerpools.get_logs()[-1]
    assert tuple(protocol.workerpools.workerpoolInfo(protocol.workerpool)) == (owner, 0, 0)
    assert type(update).__name__ == "WorkerpoolPolicyUpdate"
    assert (update.worker_stake_ratio, update.scheduler_reward_ratio) == (0, 0)


@pytest.mark.parametrize(
    ("sender", "stake_ratio", "scheduler_ratio", "reason"),
    [
        ("worker1", 30, 1, "workerpool: caller is not the owner"),
        ("pool_owner", 101, 1, "workerpool: worker stake ratio above 100"),
        ("pool_owner", 30, 91, "workerpool: scheduler reward ratio above 90"),
    ],
)
def test_pool_policy_rejects_strangers_and_out_of_bound_ratios(
    protocol: Protocol, sender: str, stake_ratio: int, scheduler_ratio: int, reason: str
) -> None:
    with boa.reverts(reason):
        protocol.workerpools.setWorkerpoolPolicy(
            protocol.workerpool, stake_ratio, scheduler_ratio, sender=protocol[sender].address
        )


def test_policy_of_unknown_workerpool_cannot_be_set(protocol: Protocol) -> None:
    with boa.reverts("workerpool: caller is not the owner"):
        protocol.workerpools.setWorkerpoolPolicy(
            protocol.app, 30, 1, sender=protocol["worker1"].address
        )


def test_policy_is_snapshotted_into_each_deal(protocol: Protocol) -> None:
    owner = protocol["pool_owner"].address
    protocol.workerpools.setWorkerpoolPolicy(protocol.workerpool, 50, 20, sender=owner)
    first = protocol.match()
    protocol.workerpools.setWorkerpoolPolicy(protocol.workerpool, 10, 5, sender=owner)
    second = protocol.match()
    assert (first.worker_stake, first.scheduler_reward_ratio) == (50, 20)
    assert (second.worker_stake, second.scheduler_reward_ratio) == (10, 5)


# --- ownership transfer -------------------------------------------------------------------


def test_new_app_owner_signs_the_orders_and_is_paid(protocol: Protocol) -> None:
    old, new = protocol["app_owner"].address, protocol["requester"].address
    protocol.apps.transferFrom(old, new, int(protocol.app, 16), sender=old)
    order = protocol.app_order()
    with boa.reverts("match: invalid app order signature"):
        protocol.match(app_order=order)
    with boa.reverts("order: caller is not the owner"):
        protocol.marketplace.manageAppOrder(order.as_tuple(), 0, sender=old)
    deal = protocol.match(app_order=order, signatures={"app": protocol.sign(order, "requester")})
    assert same(deal.app_owner, new)


def test_new_dataset_owner_signs_the_orders(protocol: Protocol) -> None:
    old, new = protocol["dataset_owner"].address, protocol["requester"].address
    protocol.datasets.transferFrom(old, new, int(protocol.dataset, 16), sender=old)
    order = protocol.dataset_order()
    request = protocol.request_order(dataset=protocol.dataset, datasetmaxprice=5)
    with boa.reverts("match: invalid dataset order signature"):
        protocol.match(dataset_order=order, request_order=request)
    deal = protocol.match(
        dataset_order=order,
        request_order=request,
        signatures={"dataset": protocol.sign(order, "requester")},
    )
    assert same(deal.dataset_owner, new)


def test_new_workerpool_owner_signs_the_orders_and_stakes(protocol: Protocol) -> None:
    old, new = protocol["pool_owner"].address, protocol["worker4"].address
    protocol.workerpools.transferFrom(old, new, int(protocol.workerpool, 16), sender=old)
    order = protocol.workerpool_order()
    with boa.reverts("match: invalid workerpool order signature"):
        protocol.match(workerpool_order=order)
    before = protocol.balances()
    deal = protocol.match(
        workerpool_order=order, signatures={"workerpool": protocol.sign(order, "worker4")}
    )
    assert same(deal.workerpool_owner, new)
    assert protocol.changes(before) == {"requester": (-110, 110), "worker4": (-30, 30)}
    assert protocol.hub_balance_matches()


# --- the ERC-721 surface every registry exports -------------------------------------------

ERC721_INTERFACE_ID = b"\x80\xac\x58\xcd"


@pytest.mark.parametrize(
    ("registry", "resource", "owner", "name", "symbol"),
    [
        ("apps", "app", "app_owner", "decloud apps", "DCAPP"),
        ("datasets", "dataset", "dataset_owner", "decloud datasets", "DCDS"),
        ("workerpools", "workerpool", "pool_owner", "decloud workerpools", "DCWP"),
    ],
)
def test_registry_is_a_standard_erc721(
    protocol: Protocol, registry: str, resource: str, owner: str, name: str, symbol: str
) -> None:
    tokens = getattr(protocol, registry)
    token_id = int(getattr(protocol, resource), 16)
    holder, operator, buyer = (
        protocol[owner].address,
        protocol["worker1"].address,
        protocol["worker2"].address,
    )
    assert (tokens.name(), tokens.symbol()) == (name, symbol)
    assert tokens.supportsInterface(ERC721_INTERFACE_ID)
    assert tokens.balanceOf(holder) == tokens.totalSupply() == (2 if registry == "apps" else 1)
    assert tokens.tokenOfOwnerByIndex(holder, 0) in {
        tokens.tokenByIndex(i) for i in range(tokens.totalSupply())
    }
    with boa.reverts("erc721: caller is not token owner or approved"):
        tokens.transferFrom(holder, buyer, token_id, sender=operator)
    tokens.approve(operator, token_id, sender=holder)
    assert tokens.getApproved(token_id) == operator
    tokens.transferFrom(holder, buyer, token_id, sender=operator)
    assert tokens.ownerOf(token_id) == buyer
    tokens.setApprovalForAll(operator, True, sender=buyer)
    assert tokens.isApprovedForAll(buyer, operator)
    tokens.safeTransferFrom(buyer, holder, token_id, b"", sender=operator)
    assert tokens.ownerOf(token_id) == holder
