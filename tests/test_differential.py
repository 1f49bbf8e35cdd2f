"""The hub contracts agree with their executable specification, `decloud.protocol.hub`.

A hypothesis state machine applies the same random sequence of operations to the contracts
(titanoboa's in-process EVM) and to the specification, and demands the same outcome: the same
revert reason, or the same balances (free, locked, score of every account), kitty, deal ids,
deals, task statuses and counters, contributions and result groups. After every step, on both
sides, the hub holds exactly the free and locked balances plus the kitty, and nothing is
negative.

The operations: deposits and withdrawals (too large ones too), accounts rich enough to reach
the hub's 2**112 holdings cap, categories, presigned and closed orders, order matches valid and
invalid (prices above the max, wrong trust, missing tags, wrong categories, with and without a
dataset, restrictions by account and by group contract, EOA / EIP-2098 / presigned / ERC-1271
/ malformed signatures, orders reused until consumed), contributions (honest, wrong,
unauthorized, twice, copied or truncated seals, TEE enclave signatures), reveals, reopens,
finalizations, claims, contributeAndFinalize, and time jumps around the deadlines of category
XS (T = 300 s). Besides random calls, a rule plays the honest parties of a recent task, so that
tasks run their whole course.

DECLOUD_PROPERTY_STEPS sets the total number of steps (default 2,000).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import boa
import coincurve
import pytest
from boa.contracts.base_evm_contract import BoaError
from eth_abi.abi import decode
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from decloud.protocol import (
    CONTRIBUTION_CONTRIBUTED,
    CONTRIBUTION_REJECTED,
    GPU,
    MAX_BALANCE,
    MAX_TRUST,
    NO_TAG,
    TASK_ACTIVE,
    TASK_COMPLETED,
    TASK_REVEALING,
    TASK_UNSET,
    TEE,
    UINT256_OVERFLOW,
    Account,
    App,
    AppOrder,
    Category,
    DatasetOrder,
    Deal,
    HubState,
    ProtocolError,
    RequestOrder,
    WorkerpoolAuthorization,
    WorkerpoolOrder,
    authorization_digest,
    enclave_digest,
    enclave_message,
    result_hash,
    result_seal,
    tag_union,
    task_id,
    to_compact,
)
from decloud.protocol import hub as spec
from decloud.protocol.orders import SECP256K1_N
from tests.contracts.harness import (
    ZERO,
    Actor,
    Protocol,
    deploy,
    empty_dataset_order,
    load_test_contract,
)

STEPS = int(os.environ.get("DECLOUD_PROPERTY_STEPS", "2000"))
STEPS_PER_EXAMPLE = 100

WORKERS = ("worker1", "worker2", "worker3", "worker4", "worker5")
ACTORS = ("requester", "requester2", "app_owner", "dataset_owner", "pool_owner", *WORKERS)
# Results workers may compute; the callback data whose keccak256 is each digest.
RESULTS = (b"result-0", b"result-1", b"result-2")
DIGESTS = tuple(keccak(data) for data in RESULTS)
TEE_GPU = tag_union(TEE, GPU)
WHALE_TOKENS = 2**113
ERROR_SELECTOR = keccak(text="Error(string)")[:4]
REVEAL_WINDOW = 600  # 2T in category XS
ENCLAVE = Actor("enclave", keccak(b"decloud-test-enclave"))
ENCLAVE_ADDRESS = ENCLAVE.address

# ---------------------------------------------------------------------------- the world


@dataclass
class World:
    """The deployed protocol, its extra parties, and the specification of its initial state."""

    protocol: Protocol
    wallet: Any
    wallet_pool: str
    groups: tuple[Any, Any]
    enclave: Actor
    stranger: str
    unknown: str
    callback: str
    spec: HubState
    accounts: tuple[str, ...]
    addresses: dict[str, str] = field(default_factory=dict)
    keys: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, actor in self.protocol.actors.items():
            self.addresses[name] = actor.address
            self.keys[actor.address] = actor.key

    def address(self, name: str) -> str:
        return self.addresses[name]

    def key(self, name: str) -> bytes:
        return self.keys[self.addresses[name]]


def _initial_spec(world: World) -> HubState:
    """The specification's view of the freshly deployed world, read from the chain."""
    p = world.protocol
    state = HubState(domain=p.domain, owner=str(p.hub.owner()))
    state.token_balance = p.token.balanceOf(p.hub.address)
    for address in world.accounts:
        state.accounts[address] = Account(*p.hub.viewAccount(address))
        state.wallets[address] = p.token.balanceOf(address)
    count = p.marketplace.category_count()
    state.categories = [Category(*p.marketplace.categories(i)) for i in range(count)]
    for app in (p.app, p.tee_app):
        owner, tee = p.apps.appInfo(app)
        state.apps[app] = App(str(owner), tee)
    state.datasets[p.dataset] = str(p.datasets.datasetOwner(p.dataset))
    for pool in (p.workerpool, world.wallet_pool):
        owner, stake_ratio, reward_ratio = p.workerpools.workerpoolInfo(pool)
        state.workerpools[pool] = spec.Workerpool(str(owner), stake_ratio, reward_ratio)
    state.contract_signers[str(world.wallet.address)] = set()
    for group in world.groups:
        members = {a for a in (*world.accounts, *_resources(world)) if group.isMember(a)}
        state.restriction_groups[str(group.address)] = members
    state.contracts = {
        str(c.address) for c in (p.token, p.apps, p.datasets, p.workerpools, p.hub, p.marketplace)
    }
    return state


def _resources(world: World) -> tuple[str, ...]:
    p = world.protocol
    return (p.app, p.tee_app, p.dataset, p.workerpool, world.wallet_pool)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with boa.env.anchor():
        p = deploy(ACTORS)
        # A smart wallet (ERC-1271) and two restriction groups, all managed by the admin.
        wallet = load_test_contract("Erc1271Wallet", p.admin)
        group_a = load_test_contract("MemberGroup", p.admin)
        group_b = load_test_contract("MemberGroup", p.admin)
        wallet_address = str(wallet.address)
        wallet_pool = str(p.workerpools.createWorkerpool(wallet_address, "wallet pool"))
        p.workerpools.setWorkerpoolPolicy(wallet_pool, 50, 20, sender=wallet_address)
        p.hub.depositFor(wallet_address, 10**20, sender=p["requester"].address)
        p.hub.withdraw(10**21 - 500, sender=p["requester2"].address)
        for member in (p["requester"].address, p.workerpool, p.app, p.dataset):
            group_a.setMember(member, True, sender=p.admin)
        for member in (p["requester2"].address, wallet_address, wallet_pool, p.tee_app):
            group_b.setMember(member, True, sender=p.admin)
        world = World(
            protocol=p,
            wallet=wallet,
            wallet_pool=wallet_pool,
            groups=(group_a, group_b),
            enclave=ENCLAVE,
            stranger=str(boa.env.generate_address("stranger")),
            unknown=str(boa.env.generate_address("unknown resource")),
            callback=str(boa.env.generate_address("callback")),
            spec=HubState(domain=p.domain, owner=ZERO),
            accounts=(*(p[name].address for name in ACTORS), wallet_address),
        )
        world.spec = _initial_spec(world)
        yield world


# ------------------------------------------------------------------------------ helpers


def revert_reason(error: BoaError) -> str:
    """The reason string of a reverted call. Checked arithmetic reverts with none; the
    specification calls an amount that does not fit 256 bits UINT256_OVERFLOW."""
    frame = error.stack_trace.last_frame
    args = getattr(frame.vm_error, "args", ())
    reason = args[0] if args else b""
    if isinstance(reason, bytes) and reason[:4] == ERROR_SELECTOR:
        reason = str(decode(["string"], reason[4:])[0])
    if isinstance(reason, str):
        return reason
    detail = str(getattr(frame, "error_detail", ""))
    if reason == b"" and detail in ("safeadd", "safemul"):
        return UINT256_OVERFLOW
    return f"{reason!r} ({detail})"


def sign_digest(key: bytes, digest: bytes) -> bytes:
    """A 65-byte r‖s‖v signature of a digest (libsecp256k1 always gives the low s)."""
    signature = coincurve.PrivateKey(key).sign_recoverable(digest, hasher=None)
    return signature[:64] + bytes([signature[64] + 27])


def with_high_s(signature: bytes) -> bytes:
    """The malleated twin (r, n - s) of a signature, which the hub must refuse."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


GOOD_SIGNATURES = ("valid",) * 6 + ("compact", "presign")
BAD_SIGNATURES = ("empty", "wrong_key", "high_s", "garbage", "short", "v_zero")
DEFECTS = (
    "category mismatch",
    "unknown category",
    "trust above the pool's",
    "trust too high",
    "app price above max",
    "dataset price above max",
    "pool price above max",
    "price overflows",
    "missing tag",
    "TEE without TEE app",
    "request names another app",
    "request names another dataset",
    "unknown app",
    "unknown dataset",
    "unknown pool",
    "restricted",
    "dataset order without dataset",
    "poor requester",
    "fully consumed",
)
RESTRICTIONS = (
    ("request", "workerpool"),
    ("app", "datasetrestrict"),
    ("app", "workerpoolrestrict"),
    ("app", "requesterrestrict"),
    ("dataset", "apprestrict"),
    ("dataset", "workerpoolrestrict"),
    ("dataset", "requesterrestrict"),
    ("workerpool", "apprestrict"),
    ("workerpool", "datasetrestrict"),
    ("workerpool", "requesterrestrict"),
)


Target = tuple[bytes, Deal, int, bytes]
"""A task: deal id, deal, index, task id."""


@dataclass
class Quad:
    """Four orders and their signatures, as passed to matchOrders."""

    app: AppOrder
    dataset: DatasetOrder
    workerpool: WorkerpoolOrder
    request: RequestOrder
    signatures: dict[str, bytes] = field(default_factory=dict)


def _biased(*choices: Any) -> st.SearchStrategy[Any]:
    """Choices with repetitions for weights. Hypothesis favours the simplest choice, the first
    one, so it must be the common case."""
    return st.sampled_from(choices)


def one_in(draw: Any, n: int) -> bool:
    """True about once in `n` draws (rarely, as Hypothesis favours the first choice)."""
    return bool(draw(st.sampled_from((False,) * (n - 1) + (True,))))


# ------------------------------------------------------------------------ state machine


class HubMachine(RuleBasedStateMachine):
    """The same operations on the contracts and on the specification, step by step."""

    steps_run = 0
    """Steps run by every example so far (class-wide, for the final count)."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.p = world.protocol
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.spec = copy.deepcopy(world.spec)
        self.deals: list[tuple[bytes, Deal]] = []
        self.quads: list[Quad] = []
        self.votes: dict[tuple[bytes, str], bytes] = {}
        self.whales: set[str] = set()  # accounts minted WHALE_TOKENS
        self.focus: Target | None = None  # the task advance_task advanced last
        self.steps = -1  # hypothesis checks invariants once before the first step too

    def teardown(self) -> None:
        HubMachine.steps_run += self.steps
        self._anchor.__exit__(None, None, None)

    # --- running an operation on both sides ---------------------------------------------

    def both(self, what: str, on_chain: Callable[[], Any], in_spec: Callable[[int], Any]) -> Any:
        """Runs one call on the contracts and in the specification at the same block time;
        both must revert with the same reason or both succeed. Returns both results on
        success, None on a revert."""
        now = boa.env.timestamp
        try:
            chain_result, chain_reason = on_chain(), None
        except BoaError as error:
            chain_result, chain_reason = None, revert_reason(error)
        before = _fingerprint(self.spec)
        try:
            spec_result, spec_reason = in_spec(now), None
        except ProtocolError as error:
            spec_result, spec_reason = None, error.reason
            assert _fingerprint(self.spec) == before, f"{what}: the spec changed state, then failed"
        assert chain_reason == spec_reason, (
            f"{what}: the contract {_told(chain_reason)}, the specification {_told(spec_reason)}"
        )
        if chain_reason is not None:
            return None
        return chain_result, spec_result

    @invariant()
    def money_is_conserved(self) -> None:
        """After every step: the same accounts on both sides, and conservation on both."""
        self.check_accounts()
        self.steps += 1

    def check_accounts(self) -> None:
        """Same free, locked and score everywhere; the money is conserved on both sides."""
        hub = self.p.hub
        total = 0
        for address in self.world.accounts:
            on_chain = tuple(hub.viewAccount(address))
            expected = self.spec.account(address)
            assert on_chain == (expected.free, expected.locked, expected.score), (
                f"account {address}: the contract has {on_chain}, the specification {expected}"
            )
            total += on_chain[0] + on_chain[1]
        kitty = hub.kitty()
        assert kitty == self.spec.kitty, f"kitty: contract {kitty}, spec {self.spec.kitty}"
        held = self.p.token.balanceOf(hub.address)
        assert held == self.spec.token_balance, f"hub tokens: {held} != {self.spec.token_balance}"
        assert held == total + kitty, f"contract breaks conservation: {held} != {total} + {kitty}"
        assert self.spec.is_conserved(), "the specification breaks conservation"

    def check_task(self, taskid: bytes, workers: tuple[str, ...] = ()) -> None:
        """Same task, same contributions of `workers`, same result groups."""
        hub = self.p.hub
        on_chain = tuple(hub.viewTask(taskid))
        expected = self.spec.task(taskid).as_tuple()
        assert on_chain == expected, f"task {taskid.hex()}: contract {on_chain}, spec {expected}"
        for worker in workers:
            status, weight, hash_ = hub.viewContribution(taskid, worker)
            c = self.spec.contribution(taskid, worker)
            assert (status, weight, bytes(hash_)) == (c.status, c.weight, c.result_hash), (
                f"contribution of {worker}: contract {(status, weight)}, spec {c}"
            )
        for digest in DIGESTS:
            hash_ = result_hash(taskid, digest)
            g = self.spec.group(taskid, hash_)
            on_chain_group = tuple(hub.viewGroup(taskid, hash_))
            assert on_chain_group == (g.weight, g.supporters, g.consensus), (
                f"group {digest.hex()[:8]}: contract {on_chain_group}, spec {g}"
            )

    # --- signatures -----------------------------------------------------------------------

    def approve(self, digest: bytes) -> None:
        """The smart wallet approves a digest, on both sides."""
        self.world.wallet.allow(digest, True, sender=self.p.admin)
        self.spec.contract_signers[str(self.world.wallet.address)].add(digest)

    def signature(self, draw: Any, signer: str, digest: bytes, mode: str) -> bytes:
        """A signature by `signer` in the given mode (valid, EIP-2098, malformed...)."""
        if signer == str(self.world.wallet.address):
            if mode in ("valid", "compact"):
                self.approve(digest)
            return b"" if mode in ("empty", "presign") else b"\x01" * 65
        key = self.world.keys.get(signer, self.world.enclave.key)
        valid = sign_digest(key, digest)
        if mode == "compact":
            return to_compact(valid)
        if mode in ("empty", "presign"):
            return b""
        if mode == "wrong_key":
            other = "worker4" if signer == self.world.address("worker5") else "worker5"
            return sign_digest(self.world.key(other), digest)
        if mode == "high_s":
            return with_high_s(valid)
        if mode == "garbage":
            return bytes(draw(st.binary(min_size=65, max_size=65)))
        if mode == "short":
            return valid[:10]
        if mode == "v_zero":
            return valid[:64] + bytes([valid[64] - 27])
        return valid

    # --- escrow ---------------------------------------------------------------------------

    @rule(name=st.sampled_from(ACTORS), data=st.data())
    def escrow(self, name: str, data: st.DataObject) -> None:
        """A deposit (for oneself or another account), a withdrawal, or a whale's deposit: an
        account minted enough tokens to reach the hub's 2**112 cap deposits near it."""
        draw, who = data.draw, self.world.address(name)
        operation = draw(_biased("deposit", "deposit", "withdraw", "withdraw", "whale"))
        room = MAX_BALANCE - self.spec.token_balance
        free = self.spec.account(who).free
        if operation == "deposit":
            amount = draw(_biased(10**18, 1, 0, 2**256 - 1, room, room + 1), label="amount")
            account = draw(_biased(who, who, who, ZERO, *self.world.accounts), label="for")
            if account == who:
                self.both(
                    "deposit",
                    lambda: self.p.hub.deposit(amount, sender=who),
                    lambda now: spec.deposit(self.spec, who, now, amount),
                )
            else:
                self.both(
                    "depositFor",
                    lambda: self.p.hub.depositFor(account, amount, sender=who),
                    lambda now: spec.deposit_for(self.spec, who, now, account, amount),
                )
        elif operation == "withdraw":
            amount = draw(_biased(free // 2, 1, 0, free, free + 1, 2**256 - 1), label="amount")
            self.both(
                "withdraw",
                lambda: self.p.hub.withdraw(amount, sender=who),
                lambda now: spec.withdraw(self.spec, who, now, amount),
            )
        else:
            if who not in self.whales:
                self.p.token.mint(who, WHALE_TOKENS, sender=self.p.admin)
                self.spec.wallets[who] += WHALE_TOKENS
                self.whales.add(who)
            amount = draw(_biased(room // 2, room, room + 1), label="amount")
            self.both(
                "deposit",
                lambda: self.p.hub.deposit(amount, sender=who),
                lambda now: spec.deposit(self.spec, who, now, amount),
            )
        on_chain = self.p.token.balanceOf(who)
        assert on_chain == self.spec.wallets[who], f"wallet {who}: {on_chain}"

    # --- categories and orders ------------------------------------------------------------

    @precondition(lambda self: len(self.spec.categories) < 8)
    @rule(data=st.data())
    def create_category(self, data: st.DataObject) -> None:
        """The hub owner (or someone else) creates a category, with a valid T or not."""
        caller = data.draw(_biased(self.spec.owner, *self.world.accounts), label="caller")
        time_ref = data.draw(_biased(60, 300, 0, spec.MAX_TIME_REF, spec.MAX_TIME_REF + 1))
        outcome = self.both(
            "createCategory",
            lambda: self.p.marketplace.createCategory("C", "a category", time_ref, sender=caller),
            lambda now: spec.create_category(self.spec, caller, now, "C", "a category", time_ref),
        )
        if outcome is not None:
            assert outcome[0] == outcome[1], f"category ids: {outcome}"

    def new_quad(self, draw: Any, defects: bool = True) -> Quad:
        """Four compatible orders, then up to two defects, each breaking one matching rule."""
        p, w = self.p, self.world
        requester = draw(_biased(*[w.address("requester")] * 6, w.address("requester2"),
                                 str(w.wallet.address)))  # fmt: skip
        app = draw(_biased(p.app, p.app, p.app, p.tee_app))
        tee_app = app == p.tee_app
        dataset = draw(_biased(p.dataset, ZERO))
        pool = draw(_biased(p.workerpool, p.workerpool, w.wallet_pool))
        category = draw(_biased(0, 0, 0, 0, 0, 0, 1, 4, len(self.spec.categories) - 1))
        trust = draw(_biased(0, 1, 1, 1, 1, 2, 3, 3, 3, 5, 100))
        app_price, dataset_price = draw(_biased(0, 1, 3, 10)), draw(_biased(0, 2, 5))
        pool_price = draw(_biased(0, 7, 10, 100, 100, 1000))

        def restrict(target: str) -> str:
            """An open restriction, the account itself, or a group it belongs to."""
            groups = self.spec.restriction_groups.items()
            group = [g for g, members in groups if target in members] or [ZERO]
            return str(draw(_biased(*(ZERO,) * 6, target, group[0])))

        def salt() -> bytes:
            return bytes(draw(st.binary(min_size=32, max_size=32)))

        app_order = AppOrder(
            app=app,
            appprice=app_price,
            volume=draw(_biased(1, 2, 3, 5, 5, 2**255)),
            tag=draw(_biased(TEE, NO_TAG) if tee_app else _biased(NO_TAG, NO_TAG, GPU)),
            datasetrestrict=restrict(dataset),
            workerpoolrestrict=restrict(pool),
            requesterrestrict=restrict(requester),
            salt=salt(),
        )
        dataset_order = empty_dataset_order()
        if dataset != ZERO:
            dataset_order = DatasetOrder(
                dataset=dataset,
                datasetprice=dataset_price,
                volume=draw(_biased(1, 2, 3, 5, 2**255)),
                tag=draw(_biased(NO_TAG, NO_TAG, NO_TAG, GPU)),
                apprestrict=restrict(app),
                workerpoolrestrict=restrict(pool),
                requesterrestrict=restrict(requester),
                salt=salt(),
            )
        workerpool_order = WorkerpoolOrder(
            workerpool=pool,
            workerpoolprice=pool_price,
            volume=draw(_biased(1, 2, 3, 5, 2**255)),
            tag=draw(_biased(TEE_GPU, TEE_GPU, TEE_GPU, GPU)),
            category=category,
            trust=trust + draw(_biased(0, 0, 0, 5)),
            apprestrict=restrict(app),
            datasetrestrict=restrict(dataset),
            requesterrestrict=restrict(requester),
            salt=salt(),
        )
        request_order = RequestOrder(
            app=app,
            appmaxprice=app_price + draw(_biased(0, 0, 0, 3)),
            dataset=dataset,
            datasetmaxprice=dataset_price + draw(_biased(0, 0, 0, 3)),
            workerpool=restrict(pool),
            workerpoolmaxprice=pool_price + draw(_biased(0, 0, 0, 3)),
            requester=requester,
            volume=draw(_biased(1, 1, 1, 2, 3)),
            tag=draw(_biased(NO_TAG, NO_TAG, NO_TAG, TEE if tee_app else GPU)),
            category=category,
            trust=trust,
            beneficiary=requester,
            callback=draw(_biased(ZERO, ZERO, ZERO, w.callback, str(w.groups[0].address))),
            params='{"iexec_args":"--size 64"}',
            salt=salt(),
        )
        quad = Quad(app_order, dataset_order, workerpool_order, request_order)
        for _ in range(draw(_biased(0, 0, 0, 1, 1, 2), label="defects") if defects else 0):
            self.break_quad(draw, quad)
        return quad

    def break_quad(self, draw: Any, quad: Quad) -> None:
        """Breaks one matching rule of four compatible orders."""
        p, w = self.p, self.world
        a, d, wo, r = quad.app, quad.dataset, quad.workerpool, quad.request
        defect = draw(st.sampled_from(DEFECTS), label="defect")
        outsider = draw(
            _biased(w.stranger, str(p.token.address), *[str(g.address) for g in w.groups])
        )
        if defect == "category mismatch":
            wo = replace(wo, category=(r.category + 1) % 5)
        elif defect == "unknown category":
            unknown = len(self.spec.categories)
            r, wo = replace(r, category=unknown), replace(wo, category=unknown)
        elif defect == "trust above the pool's":
            r = replace(r, trust=wo.trust + 1)
        elif defect == "trust too high":
            r, wo = replace(r, trust=MAX_TRUST + 1), replace(wo, trust=MAX_TRUST + 1)
        elif defect == "app price above max":
            a = replace(a, appprice=r.appmaxprice + 1)
        elif defect == "dataset price above max":
            d = replace(d, datasetprice=r.datasetmaxprice + 1)
        elif defect == "pool price above max":
            wo = replace(wo, workerpoolprice=r.workerpoolmaxprice + 1)
        elif defect == "price overflows":
            wo = replace(wo, workerpoolprice=2**254)
            r = replace(r, workerpoolmaxprice=2**254)
        elif defect == "missing tag":
            wo = replace(wo, tag=NO_TAG)
            r = replace(r, tag=GPU)
        elif defect == "TEE without TEE app":
            a = replace(a, app=p.app, tag=TEE)
            r = replace(r, app=p.app)
        elif defect == "request names another app":
            r = replace(r, app=p.tee_app if a.app == p.app else p.app)
        elif defect == "request names another dataset":
            r = replace(r, dataset=ZERO if r.dataset != ZERO else p.dataset)
        elif defect == "unknown app":
            a, r = replace(a, app=w.unknown), replace(r, app=w.unknown)
        elif defect == "unknown dataset":
            d, r = replace(d, dataset=w.unknown), replace(r, dataset=w.unknown)
        elif defect == "unknown pool":
            wo = replace(wo, workerpool=w.unknown)
        elif defect == "restricted":
            field_ = draw(st.sampled_from(RESTRICTIONS), label="restriction")
            order = {"app": a, "dataset": d, "workerpool": wo, "request": r}[field_[0]]
            order = replace(order, **{field_[1]: outsider})
            if field_[0] == "app":
                a = order
            elif field_[0] == "dataset":
                d = order
            elif field_[0] == "workerpool":
                wo = order
            else:
                r = order
        elif defect == "dataset order without dataset":
            d = DatasetOrder(p.dataset, 1, 1, NO_TAG, ZERO, ZERO, ZERO, bytes(32))
        elif defect == "poor requester":
            poor = w.address("requester2")
            r = replace(r, requester=poor, beneficiary=poor)
        elif defect == "fully consumed":
            a = replace(a, volume=0)
        quad.app, quad.dataset, quad.workerpool, quad.request = a, d, wo, r

    def order_owner(self, order: Any) -> str:
        """The account expected to sign an order: its resource's owner, or a plausible one."""
        owner = spec.order_owner(self.spec, order)
        if owner != ZERO:
            return owner
        fallback = {AppOrder: "app_owner", DatasetOrder: "dataset_owner"}
        return self.world.address(fallback.get(type(order), "pool_owner"))

    def manage(self, order: Any, caller: str, operation: int) -> None:
        """Presigns or closes an order on both sides."""
        method = {
            AppOrder: self.p.marketplace.manageAppOrder,
            DatasetOrder: self.p.marketplace.manageDatasetOrder,
            WorkerpoolOrder: self.p.marketplace.manageWorkerpoolOrder,
            RequestOrder: self.p.marketplace.manageRequestOrder,
        }[type(order)]
        self.both(
            f"manage {type(order).__name__} {operation}",
            lambda: method(order.as_tuple(), operation, sender=caller),
            lambda now: spec.manage_order(self.spec, caller, now, order, operation),
        )

    def sign_quad(self, draw: Any, quad: Quad, defects: bool = True) -> None:
        """Signs the four orders in good ways, except sometimes one in a bad way."""
        domain = self.spec.domain
        orders = {"app": quad.app, "dataset": quad.dataset, "workerpool": quad.workerpool,
                  "request": quad.request}  # fmt: skip
        broken = draw(_biased(*[None] * 6, *orders), label="badly signed") if defects else None
        for kind, order in orders.items():
            modes = BAD_SIGNATURES if kind == broken else GOOD_SIGNATURES
            mode = draw(st.sampled_from(modes), label=f"{kind} signature")
            owner = self.order_owner(order)
            if mode == "presign":
                self.manage(order, owner, spec.ORDER_PRESIGN)
            quad.signatures[kind] = self.signature(draw, owner, order.digest(domain), mode)

    @initialize(data=st.data())
    def open_deals(self, data: st.DataObject) -> None:
        """Every example starts with two deals of four compatible, well signed orders, so that
        tasks run even when the example never matches orders again."""
        for _ in range(2):
            quad = self.new_quad(data.draw, defects=False)
            self.sign_quad(data.draw, quad, defects=False)
            self.match(quad, data.draw(_biased(*self.world.accounts), label="caller"))

    @rule(data=st.data())
    def match_orders(self, data: st.DataObject) -> None:
        """Orders met before (volumes run out) or new ones, compatible or broken."""
        draw = data.draw
        if self.quads and one_in(draw, 8):
            quad = self.quads[draw(st.integers(0, len(self.quads) - 1), label="reused orders")]
        else:
            quad = self.new_quad(draw)
            if self.quads and one_in(draw, 5):
                earlier = self.quads[draw(st.integers(0, len(self.quads) - 1))]
                quad.app, quad.workerpool = earlier.app, earlier.workerpool
            self.sign_quad(draw, quad)
        self.match(quad, draw(_biased(*self.world.accounts), label="caller"))

    def match(self, quad: Quad, caller: str) -> None:
        """Matches four signed orders on both sides; a new deal must be the same on both."""
        q, s = quad, quad.signatures
        outcome = self.both(
            "matchOrders",
            lambda: self.p.marketplace.matchOrders(
                q.app.as_tuple(), s["app"], q.dataset.as_tuple(), s["dataset"],
                q.workerpool.as_tuple(), s["workerpool"], q.request.as_tuple(), s["request"],
                sender=caller,
            ),
            lambda now: spec.match_orders(
                self.spec, caller, now, q.app, s["app"], q.dataset, s["dataset"],
                q.workerpool, s["workerpool"], q.request, s["request"],
            ),
        )  # fmt: skip
        if outcome is not None:
            chain_dealid, (dealid, deal) = outcome
            assert bytes(chain_dealid) == dealid, "deal ids differ"
            logged = [e for e in self.p.marketplace.get_logs() if type(e).__name__ == "DealCreated"]
            assert Deal.decode(bytes(logged[-1].deal)) == deal, "deals differ"
            assert bytes(self.p.hub.deals(dealid)) == deal.hash(), "deal hashes differ"
            assert bytes(self.p.hub.hashDeal(deal.as_tuple())) == deal.hash(), "hashDeal differs"
            self.deals.append((dealid, deal))
            if quad not in self.quads:
                self.quads.append(quad)

    @rule(data=st.data())
    def manage_order(self, data: st.DataObject) -> None:
        """Presign or close an order seen before (or fresh), by its owner or someone else."""
        draw = data.draw
        if self.quads and not one_in(draw, 4):
            quad = self.quads[draw(st.integers(0, len(self.quads) - 1))]
        else:
            quad = self.new_quad(draw)
        order = draw(_biased(quad.app, quad.dataset, quad.workerpool, quad.request))
        owner = self.order_owner(order)
        caller = draw(_biased(owner, owner, owner, *self.world.accounts))
        operation = draw(_biased(spec.ORDER_PRESIGN, spec.ORDER_CLOSE, spec.ORDER_CLOSE, 2, 255))
        self.manage(order, caller, operation)

    # --- tasks ----------------------------------------------------------------------------

    def recent_tasks(self, deals: list[tuple[bytes, Deal]] | None = None) -> list[Target]:
        """Every task of the last eight deals."""
        return [
            (dealid, deal, index, task_id(dealid, index))
            for dealid, deal in (deals or self.deals)[-8:]
            for index in range(deal.bot_first, deal.bot_first + deal.bot_size)
        ]

    def pick_task(
        self,
        draw: Any,
        statuses: tuple[int, ...] = (),
        deals: list[tuple[bytes, Deal]] | None = None,
    ) -> Target:
        """A task of a recent deal: mostly one in one of `statuses` if there is any, sometimes
        any task, an index outside its deal, or a forged copy of its deal."""
        deals = deals or self.deals
        wanted = [t for t in self.recent_tasks(deals) if self.spec.task(t[3]).status in statuses]
        if wanted and not one_in(draw, 4):
            dealid, deal, index, _ = wanted[draw(st.integers(0, len(wanted) - 1), label="task")]
        else:
            latest = len(deals) - 1
            dealid, deal = deals[latest - draw(st.integers(0, min(latest, 4)), label="deal")]
            if not one_in(draw, 10):
                index = deal.bot_first + draw(st.integers(0, deal.bot_size - 1))
            else:
                index = max(deal.bot_first + draw(st.integers(-1, deal.bot_size)), 0)
        if one_in(draw, 30):
            deal = replace(deal, workerpool_price=deal.workerpool_price + 1)
        return dealid, deal, index, task_id(dealid, index)

    def authorization(
        self, draw: Any, deal: Deal, taskid: bytes, worker: str, enclave: str, honest: bool
    ) -> bytes:
        """The scheduler's authorization of a worker, valid or broken in one way."""
        modes = ("valid", "compact") if honest else (
            *["valid"] * 10, "compact", "wrong_worker", "wrong_task", "wrong_key", "empty",
            "high_s", "wrong_enclave",
        )  # fmt: skip
        mode = draw(st.sampled_from(modes), label="authorization")
        if mode == "wrong_worker":
            first = self.world.address("worker1")
            worker = first if worker != first else ZERO
        if mode == "wrong_task":
            taskid = keccak(taskid)
        if mode == "wrong_enclave":
            enclave = self.world.stranger
        authorization = WorkerpoolAuthorization(worker, taskid, enclave)
        digest = authorization_digest(authorization, self.spec.domain)
        sign_mode = mode if mode in ("compact", "wrong_key", "empty", "high_s") else "valid"
        return self.signature(draw, deal.workerpool_owner, digest, sign_mode)

    def enclave(
        self, draw: Any, deal: Deal, hash_: bytes, seal: bytes, honest: bool
    ) -> tuple[str, bytes]:
        """The enclave challenge and its signature of the contribution, if any."""
        tee = int.from_bytes(deal.tag, "big") & spec.TAG_TEE
        if honest:
            mode = "valid" if tee else draw(_biased("none", "none", "valid"), label="enclave")
        else:
            choices = ("valid", "valid", "valid", "none", "wrong_key", "empty")
            mode = draw(_biased(*choices) if tee else _biased("none", "none", "none", *choices))
        if mode == "none":
            return ZERO, b""
        message = enclave_digest(enclave_message(hash_, seal))
        key = self.world.key("worker5") if mode == "wrong_key" else self.world.enclave.key
        return ENCLAVE_ADDRESS, b"" if mode == "empty" else sign_digest(key, message)

    def contributor(self, draw: Any) -> str:
        others = ("requester", "app_owner", "dataset_owner", "pool_owner", "requester2")
        return self.world.address(draw(_biased(*WORKERS, *WORKERS, *WORKERS, *others)))

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def advance_task(self, data: st.DataObject) -> None:
        """What honest parties do next for a task of a recent deal, mostly the one advanced
        last: a worker contributes (or, on a trust-1 deal, contributes and finalizes at once),
        a winner reveals, or all stay silent until the reveal deadline, the scheduler finalizes
        or reopens, anyone claims after the final deadline. With no open task, a requester
        buys more."""
        draw = data.draw
        open_ = [t for t in self.recent_tasks() if self.spec.task(t[3]).status < TASK_COMPLETED]
        if not open_:
            quad = self.new_quad(draw, defects=False)
            self.sign_quad(draw, quad, defects=False)
            self.match(quad, draw(_biased(*self.world.accounts), label="caller"))
            return
        if self.focus in open_ and not one_in(draw, 4):
            target = self.focus
        else:
            target = open_[draw(st.integers(0, len(open_) - 1), label="task")]
        self.focus = target
        _, deal, _, taskid = target
        task, now = self.spec.task(taskid), boa.env.timestamp
        consensus = self.consensus(taskid)
        pending = [
            (worker, self.votes[(taskid, worker)])
            for worker, c in self.spec.contributions.get(taskid, {}).items()
            if c.status == CONTRIBUTION_CONTRIBUTED and c.result_hash == consensus
        ]
        if now >= deal.final_deadline:
            self.claim_task(draw, target, honest=True)
        elif task.status != TASK_REVEALING:
            if task.status == TASK_UNSET and deal.trust == 1 and one_in(draw, 3):
                self.contribute_and_finalize_task(draw, target, honest=True)
            else:
                self.contribute_to(draw, target, honest=True)
        elif pending and now < task.reveal_deadline and task.reveals < task.winners:
            if one_in(draw, 3):  # the winners stay silent until the reveal deadline
                boa.env.time_travel(seconds=task.reveal_deadline - now)
            else:
                worker, digest = pending[draw(st.integers(0, len(pending) - 1), label="winner")]
                self.reveal_once(taskid, worker, digest)
        elif task.reveals == 0:
            self.reopen_task(draw, target, honest=not one_in(draw, 3))
        else:
            self.finalize_task(draw, target, honest=True)

    def consensus(self, taskid: bytes) -> bytes | None:
        """The result hash that reached consensus, if any."""
        groups = self.spec.groups.get(taskid, {})
        return next((h for h, g in groups.items() if g.consensus), None)

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def initialize(self, data: st.DataObject) -> None:
        dealid, deal, index, taskid = self.pick_task(data.draw, (TASK_UNSET,))
        caller = data.draw(_biased(*self.world.accounts))
        self.both(
            "initialize",
            lambda: self.p.hub.initialize(dealid, deal.as_tuple(), index, sender=caller),
            lambda now: spec.initialize(self.spec, caller, now, dealid, deal, index),
        )
        self.check_task(taskid)

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def contribute(self, data: st.DataObject) -> None:
        """A vote that may be right or wrong, unauthorized, copied, truncated, badly sealed."""
        target = self.pick_task(data.draw, (TASK_UNSET, TASK_ACTIVE))
        self.contribute_to(data.draw, target, honest=data.draw(st.booleans()))

    def contribute_to(self, draw: Any, target: Target, honest: bool) -> None:
        dealid, deal, index, taskid = target
        worker = self.contributor(draw)
        digest = DIGESTS[draw(_biased(0, 0, 0, 0, 1, 2), label="digest")]
        hash_ = result_hash(taskid, digest) if honest or not one_in(draw, 30) else bytes(32)
        seal = result_seal(worker, taskid, digest)
        seal_modes = ("right",) if honest else ("right",) * 4 + ("low_bits", "copied", "high_bit")
        seal_mode = draw(st.sampled_from(seal_modes), label="seal")
        if seal_mode == "low_bits":
            seal_int = int.from_bytes(seal, "big") ^ draw(st.integers(1, 2**40 - 1))
            seal = seal_int.to_bytes(32, "big")
        elif seal_mode == "copied":
            seal = result_seal(self.contributor(draw), taskid, digest)
        elif seal_mode == "high_bit":
            seal = (int.from_bytes(seal, "big") ^ (1 << 255)).to_bytes(32, "big")
        enclave, enclave_sign = self.enclave(draw, deal, hash_, seal, honest)
        authorization = self.authorization(draw, deal, taskid, worker, enclave, honest)
        outcome = self.both(
            "contribute",
            lambda: self.p.hub.contribute(
                dealid, deal.as_tuple(), index, hash_, seal, enclave, enclave_sign,
                authorization, sender=worker,
            ),
            lambda now: spec.contribute(
                self.spec, worker, now, dealid, deal, index, hash_, seal, enclave,
                enclave_sign, authorization,
            ),
        )  # fmt: skip
        if outcome is not None:
            self.votes[(taskid, worker)] = digest
        self.check_task(taskid, (worker,))

    @precondition(lambda self: self.votes)
    @rule(data=st.data())
    def reveal(self, data: st.DataObject) -> None:
        """A reveal of a recent vote, sometimes with another digest or by someone else."""
        draw = data.draw
        votes = list(self.votes.items())
        latest = len(votes) - 1
        (taskid, worker), digest = votes[latest - draw(st.integers(0, min(latest, 5)))]
        if one_in(draw, 6):
            digest = DIGESTS[draw(st.integers(0, 2))]
        if one_in(draw, 10):
            worker = self.contributor(draw)
        self.reveal_once(taskid, worker, digest)

    def reveal_once(self, taskid: bytes, worker: str, digest: bytes) -> None:
        self.both(
            "reveal",
            lambda: self.p.hub.reveal(taskid, digest, sender=worker),
            lambda now: spec.reveal(self.spec, worker, now, taskid, digest),
        )
        self.check_task(taskid, (worker,))

    def contributors(
        self, draw: Any, taskid: bytes, only: Callable[[Any], bool], honest: bool
    ) -> list[str]:
        """The list a scheduler passes: the right workers sorted, or a broken list."""
        workers = sorted(
            (w for w, c in self.spec.contributions.get(taskid, {}).items() if only(c)),
            key=lambda a: int(a, 16),
        )
        if honest:
            return workers
        mode = draw(_biased(*["right"] * 6, "reversed", "missing", "stranger", "twice"))
        if mode == "reversed":
            return workers[::-1]
        if mode == "missing" and workers:
            return workers[:-1]
        if mode == "stranger":
            return sorted([*workers[1:], self.world.stranger], key=lambda a: int(a, 16))
        if mode == "twice" and workers:
            return [*workers, workers[-1]]
        return workers

    def scheduler(self, draw: Any, deal: Deal, honest: bool) -> str:
        if honest:
            return deal.workerpool_owner
        return str(draw(_biased(*[deal.workerpool_owner] * 24, *self.world.accounts)))

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def reopen(self, data: st.DataObject) -> None:
        target = self.pick_task(data.draw, (TASK_REVEALING,))
        self.reopen_task(data.draw, target, honest=False)

    def reopen_task(self, draw: Any, target: Target, honest: bool) -> None:
        dealid, deal, index, taskid = target
        consensus = self.consensus(taskid)
        if consensus is None or (not honest and one_in(draw, 10)):
            consensus = result_hash(taskid, DIGESTS[draw(st.integers(0, 2))])
        # Contributors of the same result that an earlier reopen rejected are no supporters.
        same = sorted(
            (w for w, c in self.spec.contributions.get(taskid, {}).items()
             if c.result_hash == consensus),
            key=lambda a: int(a, 16),
        )  # fmt: skip
        rejected = any(
            self.spec.contribution(taskid, w).status == CONTRIBUTION_REJECTED for w in same
        )
        if honest or not (rejected and draw(st.booleans())):
            pending = CONTRIBUTION_CONTRIBUTED
            supporters = self.contributors(
                draw, taskid, lambda c: c.result_hash == consensus and c.status == pending, honest
            )
        else:
            # As many same-result contributors as the group has, rejected ones included.
            size = self.spec.group(taskid, consensus).supporters
            picked = draw(st.permutations(same))[:size] if same else []
            supporters = sorted(picked, key=lambda a: int(a, 16))
        caller = self.scheduler(draw, deal, honest)
        self.both(
            "reopen",
            lambda: self.p.hub.reopen(
                dealid, deal.as_tuple(), index, consensus, supporters, sender=caller
            ),
            lambda now: spec.reopen(
                self.spec, caller, now, dealid, deal, index, consensus, supporters
            ),
        )
        self.check_task(taskid, tuple(supporters))

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def finalize(self, data: st.DataObject) -> None:
        target = self.pick_task(data.draw, (TASK_REVEALING,))
        self.finalize_task(data.draw, target, honest=False)

    def finalize_task(self, draw: Any, target: Target, honest: bool) -> None:
        dealid, deal, index, taskid = target
        contributors = self.contributors(draw, taskid, lambda c: True, honest)
        consensus = [
            data_ for data_, digest in zip(RESULTS, DIGESTS, strict=True)
            if self.spec.group(taskid, result_hash(taskid, digest)).consensus
        ]  # fmt: skip
        if honest:
            callback_data = consensus[0] if consensus and deal.callback != ZERO else b""
        else:
            callback_data = draw(_biased(*consensus * 6, *RESULTS, b""))
        caller = self.scheduler(draw, deal, honest)
        self.both(
            "finalize",
            lambda: self.p.hub.finalize(
                dealid, deal.as_tuple(), index, contributors, b"ipfs://result", callback_data,
                sender=caller,
            ),
            lambda now: spec.finalize(
                self.spec, caller, now, dealid, deal, index, contributors, b"ipfs://result",
                callback_data,
            ),
        )  # fmt: skip
        self.check_task(taskid, tuple(contributors))

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        target = self.pick_task(data.draw, (TASK_UNSET, TASK_ACTIVE, TASK_REVEALING))
        self.claim_task(data.draw, target, honest=False)

    def claim_task(self, draw: Any, target: Target, honest: bool) -> None:
        dealid, deal, index, taskid = target
        contributors = self.contributors(draw, taskid, lambda c: True, honest)
        caller = draw(_biased(*self.world.accounts))
        self.both(
            "claim",
            lambda: self.p.hub.claim(dealid, deal.as_tuple(), index, contributors, sender=caller),
            lambda now: spec.claim(self.spec, caller, now, dealid, deal, index, contributors),
        )
        self.check_task(taskid, tuple(contributors))

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def contribute_and_finalize(self, data: st.DataObject) -> None:
        draw = data.draw
        trusted_once = [(i, d) for i, d in self.deals if d.trust == 1]
        deals = trusted_once if trusted_once and not one_in(draw, 5) else self.deals
        target = self.pick_task(draw, (TASK_UNSET,), deals)
        self.contribute_and_finalize_task(draw, target, honest=draw(st.booleans()))

    def contribute_and_finalize_task(self, draw: Any, target: Target, honest: bool) -> None:
        dealid, deal, index, taskid = target
        worker = self.contributor(draw)
        choice = draw(_biased(0, 0, 0, 1, 2), label="digest")
        digest = DIGESTS[choice]
        wrong_data = not honest and one_in(draw, 6)
        callback_data = RESULTS[(choice + 1) % 3] if wrong_data else RESULTS[choice]
        hash_, seal = result_hash(taskid, digest), result_seal(worker, taskid, digest)
        enclave, enclave_sign = self.enclave(draw, deal, hash_, seal, honest)
        authorization = self.authorization(draw, deal, taskid, worker, enclave, honest)
        self.both(
            "contributeAndFinalize",
            lambda: self.p.hub.contributeAndFinalize(
                dealid, deal.as_tuple(), index, digest, b"ipfs://result", callback_data,
                enclave, enclave_sign, authorization, sender=worker,
            ),
            lambda now: spec.contribute_and_finalize(
                self.spec, worker, now, dealid, deal, index, digest, b"ipfs://result",
                callback_data, enclave, enclave_sign, authorization,
            ),
        )  # fmt: skip
        self.check_task(taskid, (worker,))

    # --- time -----------------------------------------------------------------------------

    @rule(
        seconds=st.one_of(
            st.integers(1, 700),
            st.integers(1, 700),
            st.sampled_from((1, 299, 300, 301, 599, 600, 601, 2099, 2100, 2101, 2999, 3000)),
        )
    )
    def time_passes(self, seconds: int) -> None:
        """Time jumps, often around the deadlines of category XS (T = 300 s): reveals close
        2T after the consensus, contributions 7T and finalization 10T after the deal."""
        boa.env.time_travel(seconds=seconds)


def _fingerprint(state: HubState) -> tuple[Any, ...]:
    """Everything a call may change in the specification's state, copied."""
    return (
        state.token_balance,
        state.kitty,
        dict(state.wallets),
        dict(state.accounts),
        len(state.categories),
        dict(state.consumed),
        dict(state.presigned),
        dict(state.deals),
        dict(state.tasks),
        {taskid: dict(c) for taskid, c in state.contributions.items()},
        {taskid: dict(g) for taskid, g in state.groups.items()},
    )


def _told(reason: str | None) -> str:
    return "succeeded" if reason is None else f"reverted with {reason!r}"


def test_contracts_agree_with_the_specification(world: World) -> None:
    """Random operation sequences: the contracts and the specification never disagree.
    Hypothesis may end an example early, so runs repeat until STEPS steps ran."""
    HubMachine.steps_run = 0
    while HubMachine.steps_run < STEPS:
        missing = STEPS - HubMachine.steps_run
        run_state_machine_as_test(
            lambda: HubMachine(world),
            settings=settings(
                max_examples=-(-missing // STEPS_PER_EXAMPLE),
                stateful_step_count=STEPS_PER_EXAMPLE,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )


@pytest.mark.parametrize(("trust", "votes"), [(1, 1), (3, 2), (5, 3), (100, 7)])
def test_fresh_workers_need_the_votes_design_promises(trust: int, votes: int) -> None:
    """DESIGN.md: fresh workers (weight 2) reach consensus at trust 3 with 2 agreeing votes,
    at trust 100 with 7."""

    def reached(agreeing: int) -> bool:
        group = 0
        for _ in range(agreeing):
            group = spec.grown_group_weight(group, spec.worker_weight(0))
        return spec.consensus_reached(group, 1 + group, trust)

    assert reached(votes)
    assert not reached(votes - 1)


def test_reopen_refuses_a_worker_rejected_by_an_earlier_reopen(world: World) -> None:
    """A scenario too deep for random search, run on both sides: a trust-1 task reaches
    consensus twice on the same result, each time with a silent winner. The second reopen
    must name the pending winner, not the one the first reopen already rejected (whose
    result hash still equals the consensus)."""
    machine = HubMachine(world)
    try:
        p = world.protocol
        quad = Quad(p.app_order(), empty_dataset_order(), p.workerpool_order(trust=1),
                    p.request_order(trust=1))  # fmt: skip
        quad.signatures = {
            "app": p.sign(quad.app, "app_owner"),
            "dataset": b"",
            "workerpool": p.sign(quad.workerpool, "pool_owner"),
            "request": p.sign(quad.request, "requester"),
        }
        machine.match(quad, world.address("requester"))
        assert machine.deals, "the orders did not match"
        dealid, deal = machine.deals[-1]
        taskid = task_id(dealid, 0)
        consensus = result_hash(taskid, DIGESTS[0])
        first, second = world.address("worker1"), world.address("worker2")

        def contribute(worker: str) -> None:
            seal = result_seal(worker, taskid, DIGESTS[0])
            authorization = sign_digest(
                world.key("pool_owner"),
                authorization_digest(WorkerpoolAuthorization(worker, taskid, ZERO), p.domain),
            )
            machine.both(
                "contribute",
                lambda: p.hub.contribute(
                    dealid, deal.as_tuple(), 0, consensus, seal, ZERO, b"", authorization,
                    sender=worker,
                ),
                lambda now: spec.contribute(
                    machine.spec, worker, now, dealid, deal, 0, consensus, seal, ZERO, b"",
                    authorization,
                ),
            )  # fmt: skip

        def reopen(supporters: list[str]) -> bool:
            outcome = machine.both(
                "reopen",
                lambda: p.hub.reopen(
                    dealid, deal.as_tuple(), 0, consensus, supporters, sender=deal.workerpool_owner
                ),
                lambda now: spec.reopen(
                    machine.spec, deal.workerpool_owner, now, dealid, deal, 0, consensus, supporters
                ),
            )
            machine.check_task(taskid, (first, second))
            return outcome is not None

        contribute(first)
        boa.env.time_travel(seconds=REVEAL_WINDOW)
        assert reopen([first])
        contribute(second)
        boa.env.time_travel(seconds=REVEAL_WINDOW)
        assert not reopen([first])
        assert reopen([second])
        machine.check_accounts()
    finally:
        machine.teardown()
