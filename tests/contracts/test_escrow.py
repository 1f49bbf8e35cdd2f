"""The hub's escrow: deposits, withdrawals, the packed account slot, and who may open deals.

Invariant after every movement: tokens held by the hub == sum of free + locked + kitty.
"""

from __future__ import annotations

import boa
import pytest
from eth_abi import encode
from eth_utils import keccak

from tests.contracts.harness import (
    DEAL_ABI,
    INITIAL_DEPOSIT,
    ZERO,
    Protocol,
    load,
    load_test_contract,
)

MAX_BALANCE = 2**112 - 1


def test_deposit_moves_tokens_into_the_free_balance(protocol: Protocol) -> None:
    requester = protocol["requester"].address
    tokens, held = (
        protocol.token.balanceOf(requester),
        protocol.token.balanceOf(protocol.hub.address),
    )
    protocol.hub.deposit(250, sender=requester)
    deposit = protocol.hub.get_logs()[-1]
    assert type(deposit).__name__ == "Deposit" and (deposit.owner, deposit.amount) == (
        requester,
        250,
    )
    assert protocol.account(protocol["requester"]) == (INITIAL_DEPOSIT + 250, 0, 0)
    assert protocol.token.balanceOf(requester) == tokens - 250
    assert protocol.token.balanceOf(protocol.hub.address) == held + 250
    assert protocol.hub_balance_matches()


def test_deposit_for_credits_another_account(protocol: Protocol) -> None:
    payer, beneficiary = protocol["requester"].address, protocol["worker1"].address
    tokens = protocol.token.balanceOf(payer)
    before = protocol.balances()
    protocol.hub.depositFor(beneficiary, 40, sender=payer)
    assert protocol.changes(before) == {"worker1": (40, 0)}
    assert protocol.token.balanceOf(payer) == tokens - 40
    assert protocol.hub_balance_matches()


def test_withdraw_returns_free_tokens(protocol: Protocol) -> None:
    worker = protocol["worker1"].address
    tokens = protocol.token.balanceOf(worker)
    protocol.hub.withdraw(INITIAL_DEPOSIT, sender=worker)
    withdraw = protocol.hub.get_logs()[-1]
    assert type(withdraw).__name__ == "Withdraw" and withdraw.amount == INITIAL_DEPOSIT
    assert protocol.account(protocol["worker1"]) == (0, 0, 0)
    assert protocol.token.balanceOf(worker) == tokens + INITIAL_DEPOSIT
    assert protocol.hub_balance_matches()


@pytest.mark.parametrize("call", ["deposit", "depositFor", "withdraw"])
def test_zero_amounts_are_refused(protocol: Protocol, call: str) -> None:
    requester = protocol["requester"].address
    args = (requester, 0) if call == "depositFor" else (0,)
    with boa.reverts("escrow: zero amount"):
        getattr(protocol.hub, call)(*args, sender=requester)


def test_deposit_for_the_zero_address_is_refused(protocol: Protocol) -> None:
    with boa.reverts("escrow: deposit for the zero address"):
        protocol.hub.depositFor(ZERO, 1, sender=protocol["requester"].address)


def test_withdraw_above_the_free_balance_is_refused(protocol: Protocol) -> None:
    with boa.reverts("escrow: free balance too low"):
        protocol.hub.withdraw(INITIAL_DEPOSIT + 1, sender=protocol["worker1"].address)


def test_locked_tokens_cannot_be_withdrawn(protocol: Protocol) -> None:
    protocol.match()
    requester = protocol["requester"].address
    free, locked, _ = protocol.account(protocol["requester"])
    assert (free, locked) == (INITIAL_DEPOSIT - 110, 110)
    with boa.reverts("escrow: free balance too low"):
        protocol.hub.withdraw(free + 1, sender=requester)
    protocol.hub.withdraw(free, sender=requester)
    assert protocol.account(protocol["requester"]) == (0, 110, 0)
    assert protocol.hub_balance_matches()


def test_hub_holdings_are_capped_at_2_112(protocol: Protocol) -> None:
    """Balances are 112-bit fields: capping what the hub holds keeps every one in range."""
    requester = protocol["requester"].address
    protocol.token.mint(requester, MAX_BALANCE, sender=protocol.admin)
    room = MAX_BALANCE - protocol.token.balanceOf(protocol.hub.address)
    with boa.reverts("escrow: hub balance above 2**112"):
        protocol.hub.deposit(room + 1, sender=requester)
    protocol.hub.deposit(room, sender=requester)
    assert protocol.token.balanceOf(protocol.hub.address) == MAX_BALANCE
    assert protocol.account(protocol["requester"]) == (INITIAL_DEPOSIT + room, 0, 0)
    assert protocol.hub_balance_matches()


def test_rewards_never_carry_a_free_balance_into_the_locked_one(protocol: Protocol) -> None:
    """An owner holding nearly everything the hub holds is paid for a task: the payment
    stays in its free field of the packed slot."""
    app_owner = protocol["app_owner"].address
    protocol.token.mint(app_owner, MAX_BALANCE, sender=protocol.admin)
    protocol.hub.deposit(
        MAX_BALANCE - protocol.token.balanceOf(protocol.hub.address), sender=app_owner
    )
    free_before = protocol.account(protocol["app_owner"])[0]
    deal = protocol.match(request_order=protocol.request_order(trust=1))
    protocol.contribute(deal, 0, "worker1", b"\x01" * 32)
    protocol.reveal(deal, 0, "worker1", b"\x01" * 32)
    protocol.finalize(deal, 0, ["worker1"])
    assert protocol.account(protocol["app_owner"]) == (free_before + deal.app_price, 0, 0)
    assert protocol.hub_balance_matches()


def test_a_token_that_returns_false_is_caught() -> None:
    with boa.env.anchor():
        token = load_test_contract("FalseToken")
        hub = load("Hub", token.address)
        user = boa.env.generate_address("user")
        token.mint(user, 100)
        hub.deposit(60, sender=user)
        token.setFailing(True)
        with boa.reverts("escrow: token transfer failed"):
            hub.deposit(10, sender=user)
        with boa.reverts("escrow: token transfer failed"):
            hub.withdraw(10, sender=user)
        assert tuple(hub.viewAccount(user)) == (60, 0, 0)


# --- marketplace and deals ----------------------------------------------------------------


def test_marketplace_is_set_once_by_the_owner() -> None:
    with boa.env.anchor():
        owner, stranger = boa.env.generate_address("owner"), boa.env.generate_address("stranger")
        token = load("Token", "t", "T", 18)
        with boa.env.prank(owner):
            hub = load("Hub", token.address)
        with boa.reverts("ownable: caller is not the owner"):
            hub.setMarketplace(stranger, sender=stranger)
        with boa.reverts("hub: marketplace is zero"):
            hub.setMarketplace(ZERO, sender=owner)
        hub.setMarketplace(stranger, sender=owner)
        assert hub.marketplace() == stranger
        with boa.reverts("hub: marketplace already set"):
            hub.setMarketplace(owner, sender=owner)


def test_only_the_marketplace_opens_deals(protocol: Protocol) -> None:
    with boa.reverts("hub: caller is not the marketplace"):
        protocol.hub.openDeal(
            b"\x01" * 32,
            b"\x02" * 32,
            protocol["requester"].address,
            0,
            protocol["pool_owner"].address,
            0,
            sender=protocol["requester"].address,
        )


def test_a_deal_id_is_opened_once_and_locks_both_parties() -> None:
    with boa.env.anchor():
        admin, market = boa.env.generate_address("admin"), boa.env.generate_address("market")
        requester, pool = boa.env.generate_address("req"), boa.env.generate_address("pool")
        with boa.env.prank(admin):
            token = load("Token", "t", "T", 18)
            hub = load("Hub", token.address)
            hub.setMarketplace(market)
            for account, amount in ((requester, 100), (pool, 10)):
                token.mint(admin, amount)
                token.approve(hub.address, amount)
                hub.depositFor(account, amount)
        dealid = b"\x07" * 32
        with boa.reverts("escrow: requester free balance too low"):
            hub.openDeal(dealid, b"\x01" * 32, requester, 101, pool, 10, sender=market)
        with boa.reverts("escrow: workerpool owner free balance too low for the stake"):
            hub.openDeal(dealid, b"\x01" * 32, requester, 100, pool, 11, sender=market)
        hub.openDeal(dealid, b"\x01" * 32, requester, 100, pool, 10, sender=market)
        locks = [(e.owner, e.amount, bytes(e.ref)) for e in hub.get_logs()]
        assert locks == [(requester, 100, dealid), (pool, 10, dealid)]
        assert hub.deals(dealid) == b"\x01" * 32
        assert tuple(hub.viewAccount(requester)) == (0, 100, 0)
        assert tuple(hub.viewAccount(pool)) == (0, 10, 0)
        with boa.reverts("hub: deal exists"):
            hub.openDeal(dealid, b"\x02" * 32, requester, 0, pool, 0, sender=market)


def test_the_hub_stores_the_hash_of_the_deal(protocol: Protocol) -> None:
    deal = protocol.match()
    expected = keccak(encode([DEAL_ABI], [deal.fields]))
    assert protocol.hub.hashDeal(deal.fields) == expected
    assert protocol.hub.deals(deal.dealid) == expected


def test_view_account_of_a_stranger_is_empty(protocol: Protocol) -> None:
    assert tuple(protocol.hub.viewAccount(protocol.app)) == (0, 0, 0)
    assert protocol.hub.kitty() == 0
    assert protocol.hub.token() == protocol.token.address


def test_hub_ownership_can_be_transferred(protocol: Protocol) -> None:
    new_owner = protocol["requester"].address
    protocol.hub.transfer_ownership(new_owner, sender=protocol.admin)
    assert protocol.hub.owner() == new_owner
    with boa.reverts("category: caller is not the hub owner"):
        protocol.marketplace.createCategory("XXL", "huge", 100_000, sender=protocol.admin)
    protocol.marketplace.createCategory("XXL", "huge", 100_000, sender=new_owner)


def test_pool_stake_ratio_is_30_percent(protocol: Protocol) -> None:
    assert protocol.hub.POOL_STAKE_RATIO() == 30


# --- the devnet payment token -------------------------------------------------------------


def test_devnet_token_is_a_plain_erc20_only_its_deployer_mints(protocol: Protocol) -> None:
    token, stranger = protocol.token, protocol["worker1"].address
    assert (token.name(), token.symbol(), token.decimals()) == ("decloud test token", "DCT", 18)
    with boa.reverts("erc20: access is denied"):
        token.mint(stranger, 1, sender=stranger)
    balance = token.balanceOf(stranger)
    token.transfer(protocol["worker2"].address, 5, sender=stranger)
    assert token.balanceOf(stranger) == balance - 5
