"""The hub as an executable specification: Hub.vy and Marketplace.vy in pure Python.

DESIGN.md section 2 in code. Each entry point of the two contracts is one function here that
takes the state, the caller, the block timestamp and the call's arguments, checks the same
rules in the same order with the same revert reasons (`require(condition, reason)`), and
changes the state only once every rule held, as the EVM reverts a failing call as a whole.
The contracts are the fast on-chain copy of these functions; `tests/test_differential.py`
feeds both the same random operations and demands the same outcome.

The model does not depend on how the contracts pack storage: balances, weights and counters
are plain integers. Two storage effects are rules of the protocol and are modelled: the hub
keeps only the top SEAL_KEPT_BITS bits of a result seal, and scores saturate at MAX_SCORE.
Gas is not modelled: the hub's check that enough gas is left for a result callback
("callback: not enough gas left for the callback") depends on the transaction, not the state.

Constants

| name                        | value      | meaning                                               |
|-----------------------------|------------|-------------------------------------------------------|
| POOL_STAKE_RATIO            | 30         | % of the workerpool price its owner stakes per task   |
| MAX_CONTRIBUTORS            | 32         | contributions per task; bounds every loop             |
| GROUP_WEIGHT_CAP            | 2**128 - 1 | group weights saturate here                           |
| CALLBACK_GAS                | 200_000    | gas given to a result callback                        |
| CONTRIBUTION_DEADLINE_RATIO | 7          | contributions close at start + 7T                     |
| REVEAL_DEADLINE_RATIO       | 2          | reveals close 2T after the consensus                  |
| FINAL_DEADLINE_RATIO        | 10         | a task must be finalized before start + 10T           |
| KITTY_RATIO                 | 10         | % of the kitty a finalization pays its scheduler      |
| KITTY_MIN                   | 10**9      | least kitty payout (all of the kitty if it is less)   |
| MAX_BALANCE                 | 2**112 - 1 | most tokens the hub may hold, which caps any balance  |
| MAX_SCORE                   | 2**32 - 1  | reputation scores saturate here                       |
| MAX_TRUST                   | 2**32      | largest trust a request may ask for                   |
| MAX_TIME_REF                | 10**8      | longest time reference T of a category, in seconds    |
| TAG_TEE                     | 1          | tag bit asking for (or offering) an enclave           |
| SEAL_KEPT_BITS              | 216        | top bits of a result seal the hub stores and compares |
| ORDER_PRESIGN, ORDER_CLOSE  | 0, 1       | operations of manage_order                            |

T is the category's work clock time reference (XS 300 s, S 1200, M 3600, L 10800, XL 36000).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Final

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from decloud.protocol.ids import (
    authorization_digest,
    deal_id,
    enclave_digest,
    enclave_message,
    result_hash,
    result_seal,
    task_id,
)
from decloud.protocol.orders import (
    SECP256K1_HALF_N,
    AppOrder,
    DatasetOrder,
    Eip712Domain,
    RequestOrder,
    SignatureError,
    WorkerpoolAuthorization,
    WorkerpoolOrder,
    recover_signer,
)

# ----------------------------------------------------------------------------- constants

POOL_STAKE_RATIO: Final = 30
MAX_CONTRIBUTORS: Final = 32
GROUP_WEIGHT_CAP: Final = 2**128 - 1
CALLBACK_GAS: Final = 200_000
CONTRIBUTION_DEADLINE_RATIO: Final = 7
REVEAL_DEADLINE_RATIO: Final = 2
FINAL_DEADLINE_RATIO: Final = 10
KITTY_RATIO: Final = 10
KITTY_MIN: Final = 10**9
MAX_BALANCE: Final = 2**112 - 1
MAX_SCORE: Final = 2**32 - 1
MAX_TRUST: Final = 2**32
MAX_TIME_REF: Final = 10**8
TAG_TEE: Final = 1
SEAL_KEPT_BITS: Final = 216
ORDER_PRESIGN: Final = 0
ORDER_CLOSE: Final = 1
UINT256_MAX: Final = 2**256 - 1

TASK_UNSET: Final = 0
TASK_ACTIVE: Final = 1
TASK_REVEALING: Final = 2
TASK_COMPLETED: Final = 3
TASK_FAILED: Final = 4

CONTRIBUTION_UNSET: Final = 0
CONTRIBUTION_CONTRIBUTED: Final = 1
CONTRIBUTION_PROVEN: Final = 2
CONTRIBUTION_REJECTED: Final = 3

ZERO_ADDRESS: Final = "0x0000000000000000000000000000000000000000"
ZERO_BYTES32: Final = bytes(32)

UINT256_OVERFLOW: Final = "uint256 overflow"
"""The reason this model gives to an amount that does not fit 256 bits. The contracts' checked
arithmetic reverts there with no reason string at all."""

Order = AppOrder | DatasetOrder | WorkerpoolOrder | RequestOrder


class ProtocolError(Exception):
    """A call the hub rejects; `reason` is the contract's revert reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def require(condition: bool, reason: str) -> None:
    """One validity rule: the call reverts with `reason` unless `condition` holds."""
    if not condition:
        raise ProtocolError(reason)


def _uint256(value: int) -> int:
    """An amount computed from call arguments, which must fit the EVM's word."""
    require(value <= UINT256_MAX, UINT256_OVERFLOW)
    return value


# --------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Deal:
    """Everything later calls need to know about a deal. The hub stores only `hash()`; callers
    pass the deal back and the hub checks it against that hash. Same fields, same order as the
    Vyper struct."""

    app: str
    app_owner: str
    app_price: int
    dataset: str
    dataset_owner: str
    dataset_price: int
    workerpool: str
    workerpool_owner: str
    workerpool_price: int
    requester: str
    beneficiary: str
    callback: str
    category: int
    time_ref: int
    start_time: int
    trust: int
    tag: bytes
    bot_first: int
    bot_size: int
    worker_stake: int
    scheduler_reward_ratio: int

    ABI_TYPES: ClassVar[tuple[str, ...]] = (
        "address", "address", "uint256", "address", "address", "uint256", "address",
        "address", "uint256", "address", "address", "address", "uint256", "uint256",
        "uint256", "uint256", "bytes32", "uint256", "uint256", "uint256", "uint256",
    )  # fmt: skip

    def as_tuple(self) -> tuple[Any, ...]:
        """Field values in struct order: the ABI tuple the hub's calls take."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def from_tuple(cls, values: Sequence[Any]) -> Deal:
        """The deal from its ABI tuple (addresses in any case, bytes32 as bytes)."""
        converted: list[Any] = []
        for abi_type, value in zip(cls.ABI_TYPES, values, strict=True):
            if abi_type == "address":
                converted.append(str(to_checksum_address(value)))
            elif abi_type == "bytes32":
                converted.append(bytes(value))
            else:
                converted.append(int(value))
        return cls(*converted)

    @classmethod
    def decode(cls, data: bytes) -> Deal:
        """The deal from `abi_encode(deal)`, as the Marketplace logs it in DealCreated."""
        return cls.from_tuple(decode(list(cls.ABI_TYPES), data))

    def encode(self) -> bytes:
        """abi_encode(deal): the struct is static, so its encoding is its fields, in order."""
        return encode(list(self.ABI_TYPES), self.as_tuple())

    def hash(self) -> bytes:
        """keccak256(abi_encode(deal)): what Hub.deals stores and Hub.hashDeal returns."""
        return keccak(self.encode())

    @property
    def contribution_deadline(self) -> int:
        return self.start_time + CONTRIBUTION_DEADLINE_RATIO * self.time_ref

    @property
    def final_deadline(self) -> int:
        return self.start_time + FINAL_DEADLINE_RATIO * self.time_ref

    @property
    def task_price(self) -> int:
        """What the requester pays for one task."""
        return self.app_price + self.dataset_price + self.workerpool_price

    @property
    def pool_stake(self) -> int:
        """What the workerpool owner stakes for one task."""
        return self.workerpool_price * POOL_STAKE_RATIO // 100

    def task_indexes(self) -> range:
        """The request-order indexes of the deal's tasks (taskid = keccak(dealid ‖ index))."""
        return range(self.bot_first, self.bot_first + self.bot_size)


@dataclass(frozen=True)
class Category:
    """A class of tasks; every deadline is a multiple of its work clock time reference T."""

    name: str
    description: str
    work_clock_time_ref: int


@dataclass(frozen=True)
class Task:
    """The life of one task. Same fields, same order as the hub's `viewTask`."""

    status: int = TASK_UNSET
    contributors: int = 0
    reveals: int = 0
    winners: int = 0
    contribution_deadline: int = 0
    reveal_deadline: int = 0
    total_weight: int = 0
    """Sum of the weights of the task's result groups."""

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class Contribution:
    """One worker's vote on one task (all zero: the worker did not contribute)."""

    status: int = CONTRIBUTION_UNSET
    weight: int = 0
    result_hash: bytes = ZERO_BYTES32
    seal_prefix: int = 0
    """The top SEAL_KEPT_BITS bits of the result seal: all the hub keeps of it."""


@dataclass(frozen=True)
class Group:
    """The workers that voted for one result of a task."""

    weight: int = 0
    """Product of the supporters' weights, saturated at GROUP_WEIGHT_CAP."""
    supporters: int = 0
    consensus: bool = False


@dataclass(frozen=True)
class Account:
    """An account inside the hub."""

    free: int = 0
    locked: int = 0
    score: int = 0


@dataclass(frozen=True)
class App:
    """What the app registry tells the Marketplace: owner and whether it runs in an enclave."""

    owner: str
    tee: bool = False


@dataclass(frozen=True)
class Workerpool:
    """What the workerpool registry tells the Marketplace; the ratios are percents."""

    owner: str
    worker_stake_ratio: int = 30
    scheduler_reward_ratio: int = 1


@dataclass(frozen=True)
class Rewards:
    """How the reward pool of a finalized task is split."""

    workers: tuple[tuple[str, int], ...]
    scheduler: int


@dataclass
class HubState:
    """Everything the Hub, the Marketplace and the parts of the world they ask hold.

    The world model is minimal: the payment token as balances (the hub's and its users'), the
    registries as owner tables, and the contracts the hub calls: ERC-1271 wallets with the
    digests each approves, restriction groups with their members, and every other contract
    (which answers neither).
    """

    domain: Eip712Domain
    owner: str
    """The hub's owner: the only account that creates categories."""
    token_balance: int = 0
    """Tokens the hub holds: always the sum of free and locked balances plus the kitty."""
    wallets: dict[str, int] = field(default_factory=dict)
    """Token balances outside the hub (every depositor has approved the hub without limit)."""
    accounts: dict[str, Account] = field(default_factory=dict)
    kitty: int = 0
    """Seized stakes nobody earned yet: filled by claims, paid out by finalizations."""
    categories: list[Category] = field(default_factory=list)
    consumed: dict[bytes, int] = field(default_factory=dict)
    presigned: dict[bytes, str] = field(default_factory=dict)
    deals: dict[bytes, bytes] = field(default_factory=dict)
    """Deal id -> Deal.hash()."""
    tasks: dict[bytes, Task] = field(default_factory=dict)
    contributions: dict[bytes, dict[str, Contribution]] = field(default_factory=dict)
    groups: dict[bytes, dict[bytes, Group]] = field(default_factory=dict)
    """Task id -> result hash -> the group of workers that voted for it."""
    apps: dict[str, App] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)
    """Dataset -> owner."""
    workerpools: dict[str, Workerpool] = field(default_factory=dict)
    contract_signers: dict[str, set[bytes]] = field(default_factory=dict)
    """ERC-1271 wallets -> the digests each approves."""
    restriction_groups: dict[str, set[str]] = field(default_factory=dict)
    """Group contracts (answer `isMember`) -> their members."""
    contracts: set[str] = field(default_factory=set)
    """Other contracts: they answer neither ERC-1271 nor `isMember`."""

    def account(self, address: str) -> Account:
        return self.accounts.get(address, Account())

    def task(self, taskid: bytes) -> Task:
        return self.tasks.get(taskid, Task())

    def contribution(self, taskid: bytes, worker: str) -> Contribution:
        return self.contributions.get(taskid, {}).get(worker, Contribution())

    def group(self, taskid: bytes, result_hash: bytes) -> Group:
        return self.groups.get(taskid, {}).get(result_hash, Group())

    def is_contract(self, address: str) -> bool:
        return (
            address in self.contract_signers
            or address in self.restriction_groups
            or address in self.contracts
        )

    def is_conserved(self) -> bool:
        """The escrow invariant: tokens held == sum of free + locked + kitty, none negative."""
        balances = [b for a in self.accounts.values() for b in (a.free, a.locked)]
        return (
            min(balances, default=0) >= 0
            and self.kitty >= 0
            and self.token_balance == sum(balances) + self.kitty
        )


class _Ledger:
    """The balance changes of one call, written to the state only by `commit`, once every rule
    held: the EVM reverts a failing call as a whole."""

    def __init__(self, state: HubState) -> None:
        self._state = state
        self._changed: dict[str, Account] = {}

    def __getitem__(self, address: str) -> Account:
        if address in self._changed:
            return self._changed[address]
        return self._state.account(address)

    def _update(self, address: str, free: int = 0, locked: int = 0) -> None:
        account = self[address]
        self._changed[address] = replace(
            account, free=account.free + free, locked=account.locked + locked
        )

    def lock(self, address: str, amount: int, reason: str) -> None:
        require(self[address].free >= amount, reason)
        self._update(address, free=-amount, locked=amount)

    def credit(self, address: str, amount: int) -> None:
        self._update(address, free=amount)

    def settle(self, address: str, unlock: int = 0, seize: int = 0, reward: int = 0) -> None:
        """`unlock` goes from locked to free, `seize` leaves locked (the caller credits it
        elsewhere), `reward` is added to free."""
        self._update(address, free=unlock + reward, locked=-unlock - seize)

    def punish(self, worker: str, stake: int) -> None:
        """A wrong or silent contribution: its stake is seized, the score cut to two thirds."""
        self._update(worker, locked=-stake)
        account = self[worker]
        self._changed[worker] = replace(account, score=account.score * 2 // 3)

    def reward_worker(self, worker: str, stake: int, reward: int, scored: bool) -> None:
        """A proven contribution: stake back, reward, and +1 score if others contributed."""
        self._update(worker, free=stake + reward, locked=-stake)
        account = self[worker]
        self._changed[worker] = replace(account, score=min(account.score + int(scored), MAX_SCORE))

    def commit(self) -> None:
        self._state.accounts.update(self._changed)


# ---------------------------------------------------------------------- pure helpers


def worker_weight(score: int) -> int:
    """Sarmenta credibility: the odds that a worker with reputation `score` is honest."""
    return max(score // 3, 3) - 1


def grown_group_weight(group_weight: int, weight: int) -> int:
    """A group's weight once a worker of `weight` joins it: the product of its supporters'
    weights (an empty group has weight 0), saturated so that sums stay bounded."""
    return min(max(group_weight, 1) * weight, GROUP_WEIGHT_CAP)


def consensus_reached(group: int, total: int, trust: int) -> bool:
    """Whether a result group of weight `group` wins with confidence 1 - 1/trust, where `total`
    is 1 + the sum of every group's weight: group * T > total * (T - 1)."""
    return group * trust > total * (trust - 1)


def workers_share(reward_pool: int, scheduler_reward_ratio: int) -> int:
    """The workers' part of a reward pool; the scheduler keeps the rest."""
    return reward_pool * (100 - scheduler_reward_ratio) // 100


def distribute_rewards(
    reward_pool: int, scheduler_reward_ratio: int, proven_weights: Mapping[str, int]
) -> Rewards:
    """Splits the workerpool price plus the seized stakes: the workers' share by weight among
    the proven workers (rounded down), everything else, rounding included, to the scheduler."""
    share = workers_share(reward_pool, scheduler_reward_ratio)
    total = sum(proven_weights.values())
    workers = tuple((w, share * weight // total) for w, weight in proven_weights.items())
    return Rewards(workers, reward_pool - sum(reward for _, reward in workers))


def seal_prefix(seal: bytes) -> int:
    """The part of a result seal the hub keeps; the bits below are never compared."""
    return int.from_bytes(seal, "big") >> (256 - SEAL_KEPT_BITS)


def ecdsa_recover(digest: bytes, signature: bytes) -> str:
    """The signer of `digest` as the hub recovers it from a 65-byte r‖s‖v or a 64-byte EIP-2098
    signature. Recovery never reverts: any other length, a high s (the malleated twin of a
    valid signature, EIP-2), a v other than 27 or 28, or an unrecoverable signature gives the
    zero address, which never matches a signer."""
    if len(signature) == 65:
        r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    elif len(signature) == 64:
        r, vs = signature[:32], int.from_bytes(signature[32:], "big")
        s, v = vs & (2**255 - 1), 27 + (vs >> 255)
    else:
        return ZERO_ADDRESS
    if s > SECP256K1_HALF_N or v not in (27, 28):
        return ZERO_ADDRESS
    try:
        return recover_signer(digest, r + s.to_bytes(32, "big") + bytes([v]))
    except SignatureError:
        return ZERO_ADDRESS


def is_valid_signature(state: HubState, signer: str, digest: bytes, signature: bytes) -> bool:
    """Whether `signer` approved `digest`: a contract through ERC-1271, an account by ECDSA.
    The zero address approves nothing."""
    if signer == ZERO_ADDRESS:
        return False
    if state.is_contract(signer):
        return digest in state.contract_signers.get(signer, set())
    return ecdsa_recover(digest, signature) == signer


def verify_order_signature(state: HubState, signer: str, digest: bytes, signature: bytes) -> bool:
    """An order's signature; an empty one stands for an on-chain presign by the signer."""
    if len(signature) == 0:
        return signer != ZERO_ADDRESS and state.presigned.get(digest) == signer
    return is_valid_signature(state, signer, digest, signature)


def allowed(state: HubState, restriction: str, account: str) -> bool:
    """A restriction is open (zero), names the account itself, or names a group contract that
    counts the account among its members."""
    if restriction in (ZERO_ADDRESS, account):
        return True
    if not state.is_contract(restriction):
        return False
    return account in state.restriction_groups.get(restriction, set())


def remaining(state: HubState, digest: bytes, volume: int) -> int:
    """Tasks an order can still fill; closing an order consumes all of it."""
    return max(volume - state.consumed.get(digest, 0), 0)


def order_owner(state: HubState, order: Order) -> str:
    """Who may presign or close an order: the owner of its resource, or its requester."""
    if isinstance(order, AppOrder):
        return state.apps[order.app].owner if order.app in state.apps else ZERO_ADDRESS
    if isinstance(order, DatasetOrder):
        return state.datasets.get(order.dataset, ZERO_ADDRESS)
    if isinstance(order, WorkerpoolOrder):
        pool = state.workerpools.get(order.workerpool)
        return pool.owner if pool else ZERO_ADDRESS
    return order.requester


def _tag(tag: bytes) -> int:
    return int.from_bytes(tag, "big")


# ---------------------------------------------------------------------------- escrow


def deposit(state: HubState, caller: str, now: int, amount: int) -> None:
    """Moves `amount` tokens from the caller's wallet into its free balance."""
    _deposit(state, caller, caller, amount)


def deposit_for(state: HubState, caller: str, now: int, account: str, amount: int) -> None:
    """Moves `amount` tokens from the caller's wallet into `account`'s free balance."""
    require(account != ZERO_ADDRESS, "escrow: deposit for the zero address")
    _deposit(state, caller, account, amount)


def _deposit(state: HubState, caller: str, account: str, amount: int) -> None:
    require(amount > 0, "escrow: zero amount")
    free = _uint256(state.account(account).free + amount)
    # The hub pulls the caller's tokens; a failing transfer reverts with the token's reason
    # (here the devnet token's, snekmate's ERC-20).
    require(state.wallets.get(caller, 0) >= amount, "erc20: transfer amount exceeds balance")
    # Every balance and the kitty are parts of the hub's holdings: capping them caps all.
    require(state.token_balance + amount <= MAX_BALANCE, "escrow: hub balance above 2**112")
    state.accounts[account] = replace(state.account(account), free=free)
    state.wallets[caller] -= amount
    state.token_balance += amount


def withdraw(state: HubState, caller: str, now: int, amount: int) -> None:
    """Sends `amount` tokens of the caller's free balance back to its wallet."""
    require(amount > 0, "escrow: zero amount")
    account = state.account(caller)
    require(account.free >= amount, "escrow: free balance too low")
    state.accounts[caller] = replace(account, free=account.free - amount)
    state.wallets[caller] = state.wallets.get(caller, 0) + amount
    state.token_balance -= amount


# ----------------------------------------------------------------- categories, orders


def create_category(
    state: HubState, caller: str, now: int, name: str, description: str, work_clock_time_ref: int
) -> int:
    """Creates a category of tasks; returns its id (ids count from 0)."""
    require(caller == state.owner, "category: caller is not the hub owner")
    require(work_clock_time_ref > 0, "category: zero time reference")
    require(work_clock_time_ref <= MAX_TIME_REF, "category: time reference too long")
    state.categories.append(Category(name, description, work_clock_time_ref))
    return len(state.categories) - 1


def manage_order(state: HubState, caller: str, now: int, order: Order, operation: int) -> None:
    """Presigns (an empty signature then stands for the owner's) or closes (consumes all of)
    an order; only its owner may."""
    require(caller == order_owner(state, order), "order: caller is not the owner")
    require(operation <= ORDER_CLOSE, "order: unknown operation")
    digest = order.digest(state.domain)
    if operation == ORDER_PRESIGN:
        state.presigned[digest] = caller
    else:
        state.consumed[digest] = max(order.volume, state.consumed.get(digest, 0))


# -------------------------------------------------------------------------- matching


def match_orders(
    state: HubState,
    caller: str,
    now: int,
    app_order: AppOrder,
    app_sign: bytes,
    dataset_order: DatasetOrder,
    dataset_sign: bytes,
    workerpool_order: WorkerpoolOrder,
    workerpool_sign: bytes,
    request_order: RequestOrder,
    request_sign: bytes,
) -> tuple[bytes, Deal]:
    """Matches four compatible orders into a deal of as many tasks as every order has left,
    locks the requester's payment and the workerpool owner's stake, and returns the deal id and
    the deal. With no dataset (the request names none) the dataset order is ignored but must
    name no dataset either."""
    category = request_order.category
    time_ref = (
        state.categories[category].work_clock_time_ref if category < len(state.categories) else 0
    )
    require(request_order.category == workerpool_order.category, "match: category mismatch")
    require(time_ref > 0, "match: unknown category")
    require(request_order.trust <= workerpool_order.trust, "match: trust above the workerpool's")
    require(request_order.trust <= MAX_TRUST, "match: trust too high")
    require(
        app_order.appprice <= request_order.appmaxprice,
        "match: app price above the request's max",
    )
    require(
        workerpool_order.workerpoolprice <= request_order.workerpoolmaxprice,
        "match: workerpool price above the request's max",
    )
    has_dataset = request_order.dataset != ZERO_ADDRESS
    dataset_price = dataset_order.datasetprice if has_dataset else 0
    if has_dataset:
        require(
            dataset_price <= request_order.datasetmaxprice,
            "match: dataset price above the request's max",
        )
    tag = _tag(app_order.tag) | _tag(request_order.tag)
    if has_dataset:
        tag |= _tag(dataset_order.tag)
    require(tag & ~_tag(workerpool_order.tag) == 0, "match: workerpool lacks a required tag")
    require(request_order.app == app_order.app, "match: request names another app")
    require(request_order.dataset == dataset_order.dataset, "match: request names another dataset")

    app, dataset, pool = app_order.app, request_order.dataset, workerpool_order.workerpool
    requester = request_order.requester
    # (restriction, restricted account, reason), in the order the Marketplace checks them.
    ao, do, wo = app_order, dataset_order, workerpool_order
    restrictions = [
        (request_order.workerpool, pool, "match: request restricts the workerpool"),
        (ao.datasetrestrict, dataset, "match: app order restricts the dataset"),
        (ao.workerpoolrestrict, pool, "match: app order restricts the workerpool"),
        (ao.requesterrestrict, requester, "match: app order restricts the requester"),
    ]
    if has_dataset:
        restrictions += [
            (do.apprestrict, app, "match: dataset order restricts the app"),
            (do.workerpoolrestrict, pool, "match: dataset order restricts the workerpool"),
            (do.requesterrestrict, requester, "match: dataset order restricts the requester"),
        ]
    restrictions += [
        (wo.apprestrict, app, "match: workerpool order restricts the app"),
        (wo.datasetrestrict, dataset, "match: workerpool order restricts the dataset"),
        (wo.requesterrestrict, requester, "match: workerpool order restricts the requester"),
    ]
    for restriction, account, reason in restrictions:
        require(allowed(state, restriction, account), reason)

    app_info = state.apps.get(app, App(ZERO_ADDRESS))
    require(app_info.owner != ZERO_ADDRESS, "match: unknown app")
    require(tag & TAG_TEE == 0 or app_info.tee, "match: TEE tag needs a TEE app")
    dataset_owner = ZERO_ADDRESS
    if has_dataset:
        dataset_owner = state.datasets.get(dataset, ZERO_ADDRESS)
        require(dataset_owner != ZERO_ADDRESS, "match: unknown dataset")
    pool_info = state.workerpools.get(pool, Workerpool(ZERO_ADDRESS, 0, 0))
    require(pool_info.owner != ZERO_ADDRESS, "match: unknown workerpool")

    app_hash = app_order.digest(state.domain)
    dataset_hash = dataset_order.digest(state.domain) if has_dataset else ZERO_BYTES32
    pool_hash = workerpool_order.digest(state.domain)
    request_hash = request_order.digest(state.domain)
    require(
        verify_order_signature(state, app_info.owner, app_hash, app_sign),
        "match: invalid app order signature",
    )
    if has_dataset:
        require(
            verify_order_signature(state, dataset_owner, dataset_hash, dataset_sign),
            "match: invalid dataset order signature",
        )
    require(
        verify_order_signature(state, pool_info.owner, pool_hash, workerpool_sign),
        "match: invalid workerpool order signature",
    )
    require(
        verify_order_signature(state, requester, request_hash, request_sign),
        "match: invalid request order signature",
    )

    volume = remaining(state, app_hash, app_order.volume)
    require(volume > 0, "match: app order fully consumed")
    if has_dataset:
        dataset_remaining = remaining(state, dataset_hash, dataset_order.volume)
        require(dataset_remaining > 0, "match: dataset order fully consumed")
        volume = min(volume, dataset_remaining)
    pool_remaining = remaining(state, pool_hash, workerpool_order.volume)
    require(pool_remaining > 0, "match: workerpool order fully consumed")
    request_consumed = state.consumed.get(request_hash, 0)
    require(request_order.volume > request_consumed, "match: request order fully consumed")
    volume = min(volume, pool_remaining, request_order.volume - request_consumed)

    price = workerpool_order.workerpoolprice
    task_price = _uint256(app_order.appprice + dataset_price + price)
    deal = Deal(
        app=app,
        app_owner=app_info.owner,
        app_price=app_order.appprice,
        dataset=dataset,
        dataset_owner=dataset_owner,
        dataset_price=dataset_price,
        workerpool=pool,
        workerpool_owner=pool_info.owner,
        workerpool_price=price,
        requester=requester,
        beneficiary=request_order.beneficiary,
        callback=request_order.callback,
        category=category,
        time_ref=time_ref,
        start_time=now,
        trust=max(request_order.trust, 1),
        tag=tag.to_bytes(32, "big"),
        bot_first=request_consumed,
        bot_size=volume,
        worker_stake=_uint256(price * pool_info.worker_stake_ratio) // 100,
        scheduler_reward_ratio=pool_info.scheduler_reward_ratio,
    )
    payment = _uint256(task_price * volume)
    stake = _uint256(_uint256(price * POOL_STAKE_RATIO) // 100 * volume)

    # Hub.openDeal
    dealid = deal_id(request_hash, request_consumed)
    require(dealid not in state.deals, "hub: deal exists")
    ledger = _Ledger(state)
    ledger.lock(requester, payment, "escrow: requester free balance too low")
    ledger.lock(
        pool_info.owner, stake, "escrow: workerpool owner free balance too low for the stake"
    )

    state.consumed[app_hash] = state.consumed.get(app_hash, 0) + volume
    if has_dataset:
        state.consumed[dataset_hash] = state.consumed.get(dataset_hash, 0) + volume
    state.consumed[pool_hash] = state.consumed.get(pool_hash, 0) + volume
    state.consumed[request_hash] = request_consumed + volume
    state.deals[dealid] = deal.hash()
    ledger.commit()
    return dealid, deal


# ----------------------------------------------------------------------------- tasks


def _task_of(state: HubState, dealid: bytes, deal: Deal, index: int) -> bytes:
    """The id of task `index` of a deal, once the caller's copy of the deal is proven genuine."""
    require(state.deals.get(dealid) == deal.hash(), "task: unknown deal")
    require(
        deal.bot_first <= index < deal.bot_first + deal.bot_size, "task: index outside the deal"
    )
    return task_id(dealid, index)


def _opened_task(deal: Deal, now: int) -> Task:
    require(now < deal.contribution_deadline, "task: contribution deadline passed")
    return Task(status=TASK_ACTIVE, contribution_deadline=deal.contribution_deadline)


def _check_authorization(
    state: HubState,
    worker: str,
    deal: Deal,
    taskid: bytes,
    hash_: bytes,
    seal: bytes,
    enclave_challenge: str,
    enclave_sign: bytes,
    authorization_sign: bytes,
) -> None:
    """Only workers the scheduler chose may contribute, and a TEE result needs the signature of
    the task's enclave key over the vote and its seal."""
    authorization = WorkerpoolAuthorization(worker, taskid, enclave_challenge)
    require(
        is_valid_signature(
            state,
            deal.workerpool_owner,
            authorization_digest(authorization, state.domain),
            authorization_sign,
        ),
        "task: worker not authorized by the scheduler",
    )
    if _tag(deal.tag) & TAG_TEE:
        require(enclave_challenge != ZERO_ADDRESS, "task: TEE task needs an enclave challenge")
    if enclave_challenge != ZERO_ADDRESS:
        signed = enclave_digest(enclave_message(hash_, seal))
        require(
            ecdsa_recover(signed, enclave_sign) == enclave_challenge,
            "task: invalid enclave signature",
        )


def _check_sorted(worker: str, previous: int) -> int:
    """One step of the hub's list checks: addresses strictly ascending (so none repeats, and
    the zero address never appears); returns the new previous."""
    require(int(worker, 16) > previous, "task: contributors not sorted")
    return int(worker, 16)


def kitty_share(kitty: int) -> int:
    """What a finalization takes from the kitty for its scheduler: KITTY_RATIO percent, at
    least KITTY_MIN, at most all of it."""
    return min(kitty, max(kitty * KITTY_RATIO // 100, KITTY_MIN))


def _pay_task(state: HubState, ledger: _Ledger, deal: Deal, scheduler_reward: int) -> None:
    """A completed task: the requester's payment is spent on the app and dataset owners and the
    workerpool owner, who also gets its stake back and a share of the kitty, so that seized
    stakes flow back to the schedulers that complete tasks. Called once every rule held."""
    ledger.settle(deal.requester, seize=deal.task_price)
    ledger.credit(deal.app_owner, deal.app_price)
    if deal.dataset != ZERO_ADDRESS:
        ledger.credit(deal.dataset_owner, deal.dataset_price)
    share = kitty_share(state.kitty)
    state.kitty -= share
    ledger.settle(deal.workerpool_owner, unlock=deal.pool_stake, reward=scheduler_reward + share)


def initialize(
    state: HubState, caller: str, now: int, dealid: bytes, deal: Deal, index: int
) -> bytes:
    """Opens task `index` of a deal for contributions (anyone; the first contribution does it
    too). Returns the task id."""
    taskid = _task_of(state, dealid, deal, index)
    require(state.task(taskid).status == TASK_UNSET, "task: already initialized")
    state.tasks[taskid] = _opened_task(deal, now)
    return taskid


def contribute(
    state: HubState,
    caller: str,
    now: int,
    dealid: bytes,
    deal: Deal,
    index: int,
    result_hash: bytes,
    result_seal: bytes,
    enclave_challenge: str,
    enclave_sign: bytes,
    authorization_sign: bytes,
) -> None:
    """Casts the caller's vote `result_hash` on a task, locking its stake. The vote that makes
    its group win (Sarmenta credibility) opens the reveal phase."""
    taskid = _task_of(state, dealid, deal, index)
    task = state.task(taskid)
    if task.status == TASK_UNSET:
        task = _opened_task(deal, now)
    require(task.status == TASK_ACTIVE, "task: not accepting contributions")
    require(now < task.contribution_deadline, "task: contribution deadline passed")
    require(task.contributors < MAX_CONTRIBUTORS, "task: contributor cap reached")
    require(
        state.contribution(taskid, caller).status == CONTRIBUTION_UNSET,
        "task: worker already contributed",
    )
    require(result_hash != ZERO_BYTES32, "task: empty result hash")
    _check_authorization(
        state, caller, deal, taskid, result_hash, result_seal,
        enclave_challenge, enclave_sign, authorization_sign,
    )  # fmt: skip
    ledger = _Ledger(state)
    ledger.lock(caller, deal.worker_stake, "escrow: worker free balance too low for the stake")

    weight = worker_weight(state.account(caller).score)
    group = state.group(taskid, result_hash)
    new_weight = grown_group_weight(group.weight, weight)
    total_weight = task.total_weight + new_weight - group.weight
    task = replace(task, contributors=task.contributors + 1, total_weight=total_weight)
    won = consensus_reached(new_weight, total_weight + 1, deal.trust)
    if won:
        task = replace(
            task,
            status=TASK_REVEALING,
            winners=group.supporters + 1,
            reveal_deadline=now + REVEAL_DEADLINE_RATIO * deal.time_ref,
        )
    state.contributions.setdefault(taskid, {})[caller] = Contribution(
        CONTRIBUTION_CONTRIBUTED, weight, result_hash, seal_prefix(result_seal)
    )
    state.groups.setdefault(taskid, {})[result_hash] = Group(new_weight, group.supporters + 1, won)
    state.tasks[taskid] = task
    ledger.commit()


def reveal(state: HubState, caller: str, now: int, taskid: bytes, result_digest: bytes) -> None:
    """Proves the caller's contribution: the digest must give its vote and its seal (the top
    SEAL_KEPT_BITS bits), and its vote must be the consensus."""
    task = state.task(taskid)
    require(task.status == TASK_REVEALING, "task: not in the reveal phase")
    require(now < task.reveal_deadline, "task: reveal deadline passed")
    contribution = state.contribution(taskid, caller)
    require(
        contribution.status == CONTRIBUTION_CONTRIBUTED,
        "task: no pending contribution from this worker",
    )
    hash_ = result_hash(taskid, result_digest)
    require(hash_ == contribution.result_hash, "task: digest does not match the result hash")
    require(
        seal_prefix(result_seal(caller, taskid, result_digest)) == contribution.seal_prefix,
        "task: digest does not match the result seal",
    )
    require(state.group(taskid, hash_).consensus, "consensus: result is not the consensus")
    state.contributions[taskid][caller] = replace(contribution, status=CONTRIBUTION_PROVEN)
    state.tasks[taskid] = replace(task, reveals=task.reveals + 1)


def reopen(
    state: HubState,
    caller: str,
    now: int,
    dealid: bytes,
    deal: Deal,
    index: int,
    consensus: bytes,
    supporters: Sequence[str],
) -> None:
    """When no winner revealed before the reveal deadline, the scheduler rejects the winners
    (their stakes are seized at the end) and reopens the task for contributions, giving new
    workers at least T more, within the final deadline. `supporters` are the consensus group's
    pending contributors, sorted ascending."""
    require(caller == deal.workerpool_owner, "task: only the scheduler may reopen")
    taskid = _task_of(state, dealid, deal, index)
    task = state.task(taskid)
    require(task.status == TASK_REVEALING, "task: not in the reveal phase")
    require(now >= task.reveal_deadline, "task: reveal deadline not reached")
    require(task.reveals == 0, "task: a winner revealed, finalize instead")
    group = state.group(taskid, consensus)
    require(group.consensus, "consensus: result is not the consensus")
    require(len(supporters) == group.supporters, "task: supporters list incomplete")
    previous = 0
    for worker in supporters:
        previous = _check_sorted(worker, previous)
        contribution = state.contribution(taskid, worker)
        # A worker rejected by an earlier reopen of the same result is no longer a supporter.
        require(
            contribution.result_hash == consensus
            and contribution.status == CONTRIBUTION_CONTRIBUTED,
            "task: not a supporter of the consensus",
        )

    for worker in supporters:
        contributions = state.contributions[taskid]
        contributions[worker] = replace(contributions[worker], status=CONTRIBUTION_REJECTED)
    del state.groups[taskid][consensus]
    extended = min(now + deal.time_ref, deal.final_deadline - REVEAL_DEADLINE_RATIO * deal.time_ref)
    state.tasks[taskid] = replace(
        task,
        status=TASK_ACTIVE,
        winners=0,
        reveal_deadline=0,
        total_weight=task.total_weight - group.weight,
        contribution_deadline=max(task.contribution_deadline, extended),
    )


def finalize(
    state: HubState,
    caller: str,
    now: int,
    dealid: bytes,
    deal: Deal,
    index: int,
    contributors: Sequence[str],
    results: bytes,
    results_callback: bytes,
) -> None:
    """The scheduler closes a task once every winner revealed, or after the reveal deadline
    with at least one reveal: wrong and silent contributors lose their stake and a third of
    their score to the reward pool, which the proven workers share by weight with the
    scheduler; the app and dataset owners get their prices. `contributors` are every
    contributor, sorted ascending. With a callback, `results_callback` must hash to the
    consensus digest, so consensus covers the value the callback receives (the hub then calls
    it with bounded gas and ignores its outcome)."""
    require(caller == deal.workerpool_owner, "task: only the scheduler may finalize")
    taskid = _task_of(state, dealid, deal, index)
    task = state.task(taskid)
    require(task.status == TASK_REVEALING, "task: no consensus to finalize")
    require(now < deal.final_deadline, "task: final deadline passed, claim instead")
    require(
        task.reveals == task.winners or (task.reveals > 0 and now >= task.reveal_deadline),
        "task: winners still revealing",
    )
    require(len(contributors) == task.contributors, "task: contributors list incomplete")
    if deal.callback != ZERO_ADDRESS:
        callback_hash = result_hash(taskid, keccak(results_callback))
        require(
            state.group(taskid, callback_hash).consensus,
            "callback: data does not match the consensus",
        )
    previous = 0
    for worker in contributors:
        previous = _check_sorted(worker, previous)
        require(
            state.contribution(taskid, worker).status != CONTRIBUTION_UNSET,
            "task: not a contributor",
        )

    ledger = _Ledger(state)
    seized = 0
    proven_weights: dict[str, int] = {}
    for worker in contributors:
        contribution = state.contributions[taskid][worker]
        if contribution.status == CONTRIBUTION_PROVEN:
            proven_weights[worker] = contribution.weight
        else:
            seized += deal.worker_stake
            ledger.punish(worker, deal.worker_stake)
    rewards = distribute_rewards(
        deal.workerpool_price + seized, deal.scheduler_reward_ratio, proven_weights
    )
    for worker, reward in rewards.workers:
        ledger.reward_worker(worker, deal.worker_stake, reward, scored=task.contributors > 1)
    _pay_task(state, ledger, deal, rewards.scheduler)
    state.tasks[taskid] = replace(task, status=TASK_COMPLETED)
    ledger.commit()


def contribute_and_finalize(
    state: HubState,
    caller: str,
    now: int,
    dealid: bytes,
    deal: Deal,
    index: int,
    result_digest: bytes,
    results: bytes,
    results_callback: bytes,
    enclave_challenge: str,
    enclave_sign: bytes,
    authorization_sign: bytes,
) -> None:
    """One transaction for a trust-1 task (the TEE path): the caller's result is final. The
    worker must hold its stake free, but nothing is locked since the task settles at once; its
    score does not change."""
    require(deal.trust == 1, "task: contributeAndFinalize needs trust 1")
    taskid = _task_of(state, dealid, deal, index)
    require(taskid not in state.tasks, "task: already initialized")
    require(now < deal.contribution_deadline, "task: contribution deadline passed")
    hash_ = result_hash(taskid, result_digest)
    seal = result_seal(caller, taskid, result_digest)
    _check_authorization(
        state,
        caller,
        deal,
        taskid,
        hash_,
        seal,
        enclave_challenge,
        enclave_sign,
        authorization_sign,
    )
    if deal.callback != ZERO_ADDRESS:
        require(
            keccak(results_callback) == result_digest,
            "callback: data does not match the result digest",
        )
    ledger = _Ledger(state)
    require(
        ledger[caller].free >= deal.worker_stake,
        "escrow: worker free balance too low for the stake",
    )
    rewards = distribute_rewards(deal.workerpool_price, deal.scheduler_reward_ratio, {caller: 1})
    ledger.credit(caller, rewards.workers[0][1])
    _pay_task(state, ledger, deal, rewards.scheduler)
    state.tasks[taskid] = Task(
        status=TASK_COMPLETED,
        contributors=1,
        reveals=1,
        winners=1,
        contribution_deadline=deal.contribution_deadline,
    )
    ledger.commit()


def claim(
    state: HubState,
    caller: str,
    now: int,
    dealid: bytes,
    deal: Deal,
    index: int,
    contributors: Sequence[str],
) -> None:
    """Anyone, after the final deadline of a task that did not complete: the requester is
    refunded, the workerpool owner's stake goes to the kitty, and so do the stakes of the
    contributors that had to reveal and did not (rejected ones, and pending winners); every
    other contributor gets its stake back. `contributors` are every contributor, sorted."""
    taskid = _task_of(state, dealid, deal, index)
    task = state.task(taskid)
    require(task.status < TASK_COMPLETED, "task: already completed or claimed")
    require(now >= deal.final_deadline, "task: final deadline not reached")
    require(len(contributors) == task.contributors, "task: contributors list incomplete")
    previous = 0
    for worker in contributors:
        previous = _check_sorted(worker, previous)
        require(
            state.contribution(taskid, worker).status != CONTRIBUTION_UNSET,
            "task: not a contributor",
        )

    ledger = _Ledger(state)
    silent = 0
    for worker in contributors:
        contribution = state.contributions[taskid][worker]
        if contribution.status == CONTRIBUTION_REJECTED or (
            contribution.status == CONTRIBUTION_CONTRIBUTED
            and state.group(taskid, contribution.result_hash).consensus
        ):
            silent += deal.worker_stake
            ledger.punish(worker, deal.worker_stake)
        else:
            ledger.settle(worker, unlock=deal.worker_stake)
    ledger.settle(deal.workerpool_owner, seize=deal.pool_stake)
    ledger.settle(deal.requester, unlock=deal.task_price)
    state.kitty += deal.pool_stake + silent
    state.tasks[taskid] = replace(task, status=TASK_FAILED)
    ledger.commit()
