# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title decloud hub
@custom:contract-name Hub
@license Apache-2.0
@notice The hub holds the money and runs the tasks: escrow (free and locked
        balances, the kitty of seized stakes), deals opened by the
        Marketplace, the task lifecycle (contribute, reveal, finalize,
        reopen, claim, contributeAndFinalize), Sarmenta credibility
        consensus, worker reputation and payments. Orders, categories and
        matching live in the Marketplace, which calls `openDeal`.
        `decloud.protocol.hub` is the executable specification of both
        contracts: same rules, same order of checks, same revert reasons.
@dev Gas design. Storage holds only what later calls must trust: a deal is
     stored as the hash of its `Deal` struct and every later call passes the
     struct as calldata, checked against that hash; a task is one packed
     slot; an account (free balance, locked balance, reputation score) is
     one packed slot. The first contribution initializes its task.
@custom:security Money invariant: the hub's token balance equals the sum of
                 every account's free and locked balances plus the kitty.
                 Every movement emits an event. Loops run over at most
                 MAX_CONTRIBUTORS addresses that the caller passes sorted;
                 the contract checks the list is exactly the task's
                 contributors.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.utils import eip712_domain_separator
import signatures

initializes: ownable
initializes: eip712_domain_separator

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    eip712_domain_separator.eip712Domain,
)


# ---------------------------------------------------------------- constants

# The workerpool owner stakes this percent of the workerpool price per task,
# seized to the kitty if the task is claimed (the scheduler failed it).
POOL_STAKE_RATIO: public(constant(uint256)) = 30
# At every finalization the scheduler receives KITTY_RATIO percent of the
# kitty, at least KITTY_MIN (or all of it if less): seized stakes flow back to
# the schedulers that complete tasks, as in PoCo.
KITTY_RATIO: public(constant(uint256)) = 10
KITTY_MIN: public(constant(uint256)) = 10**9
# Cap on contributions per task: bounds every loop (a PoCo weakness).
MAX_CONTRIBUTORS: public(constant(uint256)) = 32
# Group weights saturate here; with MAX_CONTRIBUTORS groups the total stays
# below 2**133 and fits its 144-bit field of the task slot.
GROUP_WEIGHT_CAP: constant(uint256) = 2**128 - 1
# Gas given to a result callback; a failing callback never blocks payment.
CALLBACK_GAS: public(constant(uint256)) = 200_000
# Deadlines, in multiples of the category's work clock time reference T.
CONTRIBUTION_DEADLINE_RATIO: constant(uint256) = 7
REVEAL_DEADLINE_RATIO: constant(uint256) = 2
FINAL_DEADLINE_RATIO: constant(uint256) = 10
# Balances are 112-bit fields of the account slot, the score 32 bits.
MAX_BALANCE: constant(uint256) = 2**112 - 1
MAX_SCORE: constant(uint256) = 2**32 - 1
# Bit 0 of a tag asks for (or offers) a trusted execution environment.
TAG_TEE: constant(uint256) = 1
MAX_RESULTS: constant(uint256) = 4096

# Task statuses (low byte of the task slot).
TASK_UNSET: constant(uint256) = 0
TASK_ACTIVE: constant(uint256) = 1
TASK_REVEALING: constant(uint256) = 2
TASK_COMPLETED: constant(uint256) = 3
TASK_FAILED: constant(uint256) = 4

# Contribution statuses (low byte of the contribution slot).
CONTRIBUTION_UNSET: constant(uint256) = 0
CONTRIBUTION_CONTRIBUTED: constant(uint256) = 1
CONTRIBUTION_PROVEN: constant(uint256) = 2
CONTRIBUTION_REJECTED: constant(uint256) = 3

# Marks the consensus group of a task (top bit of the group slot).
GROUP_CONSENSUS: constant(uint256) = 1 << 255

AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "WorkerpoolAuthorization(address worker,bytes32 taskid,address enclaveChallenge)"
)


# ------------------------------------------------------------------- types

# Everything later calls need to know about a deal. Only its hash is
# stored; callers pass it back as calldata (the Marketplace logs it).
struct Deal:
    app: address
    app_owner: address
    app_price: uint256
    dataset: address
    dataset_owner: address
    dataset_price: uint256
    workerpool: address
    workerpool_owner: address
    workerpool_price: uint256
    requester: address
    beneficiary: address
    callback: address
    category: uint256
    time_ref: uint256
    start_time: uint256
    trust: uint256
    tag: bytes32
    bot_first: uint256
    bot_size: uint256
    worker_stake: uint256
    scheduler_reward_ratio: uint256


# The unpacked form of a task slot.
struct Task:
    status: uint256
    contributors: uint256
    reveals: uint256
    winners: uint256
    contribution_deadline: uint256
    reveal_deadline: uint256
    total_weight: uint256


# ------------------------------------------------------------------ events

event Deposit:
    owner: indexed(address)
    amount: uint256

event Withdraw:
    owner: indexed(address)
    amount: uint256

event Lock:
    owner: indexed(address)
    amount: uint256
    ref: indexed(bytes32)

event Unlock:
    owner: indexed(address)
    amount: uint256
    ref: indexed(bytes32)

event Reward:
    owner: indexed(address)
    amount: uint256
    ref: indexed(bytes32)

event Seize:
    owner: indexed(address)
    amount: uint256
    ref: indexed(bytes32)

event KittyFill:
    amount: uint256
    ref: indexed(bytes32)

event KittyPayout:
    receiver: indexed(address)
    amount: uint256
    ref: indexed(bytes32)

event TaskInitialize:
    taskid: indexed(bytes32)
    dealid: indexed(bytes32)
    index: uint256

event TaskContribute:
    taskid: indexed(bytes32)
    worker: indexed(address)
    result_hash: bytes32
    weight: uint256

event TaskConsensus:
    taskid: indexed(bytes32)
    consensus: bytes32

event TaskReveal:
    taskid: indexed(bytes32)
    worker: indexed(address)
    result_digest: bytes32

event TaskReopen:
    taskid: indexed(bytes32)
    contribution_deadline: uint256

event TaskFinalize:
    taskid: indexed(bytes32)
    results: Bytes[MAX_RESULTS]

event TaskClaimed:
    taskid: indexed(bytes32)

event AccurateContribution:
    worker: indexed(address)
    taskid: indexed(bytes32)
    score: uint256

event FaultyContribution:
    worker: indexed(address)
    taskid: indexed(bytes32)
    score: uint256

event ResultCallback:
    taskid: indexed(bytes32)
    callback: indexed(address)
    success: bool


# ----------------------------------------------------------------- storage

# The payment token; set once at deployment.
token: public(immutable(IERC20))
# The only contract allowed to open deals; set once by the owner.
marketplace: public(address)
# Per account, packed: free balance (bits 0-111), locked balance (112-223),
# reputation score (224-255). Written only by escrow and task functions.
_accounts: HashMap[address, uint256]
# Seized stakes nobody earned (claimed tasks). Filled by claim, paid out to
# schedulers by finalizations.
kitty: public(uint256)
# Deal id -> keccak256(abi_encode(Deal)). Written once by openDeal.
deals: public(HashMap[bytes32, bytes32])
# Task id -> packed Task: status (bits 0-7), contributors (8-15), reveals
# (16-23), winners (24-31), contribution deadline (32-71), reveal deadline
# (72-111), sum of group weights (112-255).
_tasks: HashMap[bytes32, uint256]
# Task id -> worker -> packed: status (bits 0-7), weight (8-39), the top 216
# bits of the result seal (40-255).
_contributions: HashMap[bytes32, HashMap[address, uint256]]
# Task id -> worker -> result hash of its contribution.
_contribution_hashes: HashMap[bytes32, HashMap[address, bytes32]]
# Task id -> result hash -> packed: group weight (bits 0-127), supporters
# (128-135), GROUP_CONSENSUS flag (255).
_groups: HashMap[bytes32, HashMap[bytes32, uint256]]


@deploy
def __init__(token_: IERC20):
    """
    @param token_ The ERC-20 every price and stake is paid in.
    """
    ownable.__init__()
    eip712_domain_separator.__init__("decloud", "1")
    token = token_


# ------------------------------------------------------------------ escrow

@external
@nonreentrant
def deposit(amount: uint256):
    """
    @notice Moves `amount` tokens from the caller into its free balance.
    @param amount Tokens to deposit; the caller must have approved the hub.
    """
    self._deposit(msg.sender, amount)


@external
@nonreentrant
def depositFor(account: address, amount: uint256):
    """
    @notice Moves `amount` tokens from the caller into `account`'s free balance.
    @param account Beneficiary of the deposit.
    @param amount Tokens to deposit; the caller must have approved the hub.
    """
    assert account != empty(address), "escrow: deposit for the zero address"
    self._deposit(account, amount)


@external
@nonreentrant
def withdraw(amount: uint256):
    """
    @notice Sends `amount` tokens of the caller's free balance back to it.
    @param amount Tokens to withdraw.
    @custom:security Balance is debited before the transfer (checks-effects-interactions).
    """
    assert amount > 0, "escrow: zero amount"
    free: uint256 = 0
    locked: uint256 = 0
    score: uint256 = 0
    free, locked, score = self._load_account(msg.sender)
    assert free >= amount, "escrow: free balance too low"
    self._store_account(msg.sender, free - amount, locked, score)
    assert extcall token.transfer(msg.sender, amount, default_return_value=True), "escrow: token transfer failed"
    log Withdraw(owner=msg.sender, amount=amount)


@external
@view
def viewAccount(account: address) -> (uint256, uint256, uint256):
    """
    @param account Any address.
    @return (free, locked, score) of `account`.
    """
    return self._load_account(account)


@internal
def _deposit(account: address, amount: uint256):
    assert amount > 0, "escrow: zero amount"
    free: uint256 = 0
    locked: uint256 = 0
    score: uint256 = 0
    free, locked, score = self._load_account(account)
    self._store_account(account, free + amount, locked, score)
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True), "escrow: token transfer failed"
    # Every balance and the kitty are parts of what the hub holds, so capping
    # the hub's holdings keeps every 112-bit field of every account in range.
    assert staticcall token.balanceOf(self) <= MAX_BALANCE, "escrow: hub balance above 2**112"
    log Deposit(owner=account, amount=amount)


@internal
@view
def _load_account(account: address) -> (uint256, uint256, uint256):
    packed: uint256 = self._accounts[account]
    return packed & MAX_BALANCE, (packed >> 112) & MAX_BALANCE, packed >> 224


@internal
def _store_account(account: address, free: uint256, locked: uint256, score: uint256):
    # Free and locked stay within 112 bits: both are parts of the hub's
    # holdings, which deposits cap at 2**112 - 1.
    self._accounts[account] = free | (locked << 112) | (min(score, MAX_SCORE) << 224)


@internal
def _lock(account: address, amount: uint256, ref: bytes32, reason: String[64]):
    free: uint256 = 0
    locked: uint256 = 0
    score: uint256 = 0
    free, locked, score = self._load_account(account)
    assert free >= amount, reason
    self._store_account(account, free - amount, locked + amount, score)
    log Lock(owner=account, amount=amount, ref=ref)


@internal
def _credit(account: address, amount: uint256, ref: bytes32):
    """
    @dev Rewards `amount` (already held by the hub) to `account`'s free balance.
    """
    if amount == 0:
        return
    free: uint256 = 0
    locked: uint256 = 0
    score: uint256 = 0
    free, locked, score = self._load_account(account)
    self._store_account(account, free + amount, locked, score)
    log Reward(owner=account, amount=amount, ref=ref)


@internal
def _settle(account: address, unlock: uint256, seize: uint256, reward: uint256, ref: bytes32):
    """
    @dev Applies one account's share of a settlement in a single write:
         `unlock` goes from locked to free, `seize` leaves the locked balance
         (the caller credits it elsewhere), `reward` is added to free.
    """
    free: uint256 = 0
    locked: uint256 = 0
    score: uint256 = 0
    free, locked, score = self._load_account(account)
    self._store_account(account, free + unlock + reward, locked - unlock - seize, score)
    if unlock > 0:
        log Unlock(owner=account, amount=unlock, ref=ref)
    if seize > 0:
        log Seize(owner=account, amount=seize, ref=ref)
    if reward > 0:
        log Reward(owner=account, amount=reward, ref=ref)


# ------------------------------------------------------------------- deals

@external
def setMarketplace(marketplace_: address):
    """
    @notice Names, once, the Marketplace contract allowed to open deals.
    @param marketplace_ The Marketplace deployed for this hub.
    @custom:security Set once and never changed: nobody can swap the rules of
                     matching under live deals.
    """
    ownable._check_owner()
    assert self.marketplace == empty(address), "hub: marketplace already set"
    assert marketplace_ != empty(address), "hub: marketplace is zero"
    self.marketplace = marketplace_


@external
def openDeal(
    dealid: bytes32,
    deal_hash: bytes32,
    requester: address,
    payment: uint256,
    workerpool_owner: address,
    stake: uint256,
):
    """
    @notice Marketplace only: records a matched deal and locks the
            requester's payment and the workerpool owner's stake for all
            its tasks.
    @param dealid The deal id.
    @param deal_hash keccak256(abi_encode(Deal)).
    @param payment Total price of the deal's tasks.
    @param stake Total stake of the workerpool owner.
    """
    assert msg.sender == self.marketplace, "hub: caller is not the marketplace"
    assert self.deals[dealid] == empty(bytes32), "hub: deal exists"
    self.deals[dealid] = deal_hash
    self._lock(requester, payment, dealid, "escrow: requester free balance too low")
    self._lock(workerpool_owner, stake, dealid, "escrow: workerpool owner free balance too low for the stake")


@external
@view
def hashDeal(deal: Deal) -> bytes32:
    """
    @return bytes32 The value `deals` stores for `deal`.
    """
    return keccak256(abi_encode(deal))


# ------------------------------------------------------------------- tasks

@external
@view
def viewTask(taskid: bytes32) -> Task:
    """
    @return Task The unpacked state of a task (all zero if never initialized).
    """
    return self._load_task(taskid)


@external
@view
def viewContribution(taskid: bytes32, worker: address) -> (uint256, uint256, bytes32):
    """
    @return (status, weight, result hash) of `worker`'s contribution to `taskid`.
    """
    packed: uint256 = self._contributions[taskid][worker]
    return packed & 255, (packed >> 8) & MAX_SCORE, self._contribution_hashes[taskid][worker]


@external
@view
def viewGroup(taskid: bytes32, result_hash: bytes32) -> (uint256, uint256, bool):
    """
    @return (weight, supporters, is the consensus) of a result of `taskid`.
    """
    packed: uint256 = self._groups[taskid][result_hash]
    return packed & GROUP_WEIGHT_CAP, (packed >> 128) & 255, packed & GROUP_CONSENSUS != 0


@external
@view
def taskId(dealid: bytes32, index: uint256) -> bytes32:
    """
    @return bytes32 keccak256(dealid ‖ index): the id of task `index` of a deal.
    """
    return keccak256(concat(dealid, convert(index, bytes32)))


@external
def initialize(dealid: bytes32, deal: Deal, index: uint256) -> bytes32:
    """
    @notice Opens task `index` of a deal for contributions. Optional: the
            first contribution does it too.
    @return bytes32 The task id.
    """
    taskid: bytes32 = self._task_of(dealid, deal, index)
    task: Task = self._load_task(taskid)
    assert task.status == TASK_UNSET, "task: already initialized"
    task = self._open_task(taskid, dealid, deal, index)
    self._store_task(taskid, task)
    return taskid


@external
def contribute(
    dealid: bytes32,
    deal: Deal,
    index: uint256,
    result_hash: bytes32,
    result_seal: bytes32,
    enclave_challenge: address,
    enclave_sign: Bytes[65],
    authorization_sign: Bytes[65],
):
    """
    @notice Casts the caller's vote for a result of task `index` of a deal,
            locking its stake. Reaching consensus opens the reveal phase.
    @param result_hash keccak256(taskid ‖ result digest): the vote.
    @param result_seal keccak256(worker ‖ taskid ‖ result digest): proves the
           worker knew the result, so votes cannot be copied.
    @param enclave_challenge Address of the task's enclave key, zero for a
           standard task.
    @param enclave_sign EIP-191 signature by the enclave key of
           keccak256(result_hash ‖ result_seal).
    @param authorization_sign The workerpool owner's EIP-712 signature of
           WorkerpoolAuthorization(worker, taskid, enclave_challenge).
    """
    taskid: bytes32 = self._task_of(dealid, deal, index)
    task: Task = self._load_task(taskid)
    if task.status == TASK_UNSET:
        task = self._open_task(taskid, dealid, deal, index)
    assert task.status == TASK_ACTIVE, "task: not accepting contributions"
    assert block.timestamp < task.contribution_deadline, "task: contribution deadline passed"
    assert task.contributors < MAX_CONTRIBUTORS, "task: contributor cap reached"
    assert self._contributions[taskid][msg.sender] == 0, "task: worker already contributed"
    assert result_hash != empty(bytes32), "task: empty result hash"
    self._check_authorization(deal, taskid, result_hash, result_seal, enclave_challenge, enclave_sign, authorization_sign)

    free: uint256 = 0
    locked: uint256 = 0
    score: uint256 = 0
    free, locked, score = self._load_account(msg.sender)
    assert free >= deal.worker_stake, "escrow: worker free balance too low for the stake"
    self._store_account(msg.sender, free - deal.worker_stake, locked + deal.worker_stake, score)
    log Lock(owner=msg.sender, amount=deal.worker_stake, ref=taskid)
    weight: uint256 = max(score // 3, 3) - 1
    self._contributions[taskid][msg.sender] = (
        (convert(result_seal, uint256) >> 40 << 40) | (weight << 8) | CONTRIBUTION_CONTRIBUTED
    )
    self._contribution_hashes[taskid][msg.sender] = result_hash
    log TaskContribute(taskid=taskid, worker=msg.sender, result_hash=result_hash, weight=weight)

    # Sarmenta credibility: a group's weight is the product of its
    # supporters' weights; it wins when group * T > (1 + sum of groups) * (T - 1).
    group: uint256 = self._groups[taskid][result_hash]
    group_weight: uint256 = group & GROUP_WEIGHT_CAP
    supporters: uint256 = ((group >> 128) & 255) + 1
    new_weight: uint256 = min(max(group_weight, 1) * weight, GROUP_WEIGHT_CAP)
    task.total_weight = task.total_weight + new_weight - group_weight
    task.contributors += 1
    group = new_weight | (supporters << 128)
    if new_weight * deal.trust > (task.total_weight + 1) * (deal.trust - 1):
        group |= GROUP_CONSENSUS
        task.status = TASK_REVEALING
        task.winners = supporters
        task.reveal_deadline = block.timestamp + REVEAL_DEADLINE_RATIO * deal.time_ref
        log TaskConsensus(taskid=taskid, consensus=result_hash)
    self._groups[taskid][result_hash] = group
    self._store_task(taskid, task)


@external
def reveal(taskid: bytes32, result_digest: bytes32):
    """
    @notice Proves the caller's contribution: the digest must hash to its
            result hash and seal, and its result must be the consensus.
    @param result_digest The canonical digest of the worker's result.
    """
    task: Task = self._load_task(taskid)
    assert task.status == TASK_REVEALING, "task: not in the reveal phase"
    assert block.timestamp < task.reveal_deadline, "task: reveal deadline passed"
    contribution: uint256 = self._contributions[taskid][msg.sender]
    assert contribution & 255 == CONTRIBUTION_CONTRIBUTED, "task: no pending contribution from this worker"
    result_hash: bytes32 = keccak256(concat(taskid, result_digest))
    assert result_hash == self._contribution_hashes[taskid][msg.sender], "task: digest does not match the result hash"
    seal: bytes32 = keccak256(concat(convert(msg.sender, bytes20), taskid, result_digest))
    assert convert(seal, uint256) >> 40 == contribution >> 40, "task: digest does not match the result seal"
    assert self._groups[taskid][result_hash] & GROUP_CONSENSUS != 0, "consensus: result is not the consensus"
    self._contributions[taskid][msg.sender] = contribution - CONTRIBUTION_CONTRIBUTED + CONTRIBUTION_PROVEN
    task.reveals += 1
    self._store_task(taskid, task)
    log TaskReveal(taskid=taskid, worker=msg.sender, result_digest=result_digest)


@external
def reopen(dealid: bytes32, deal: Deal, index: uint256, consensus: bytes32, supporters: DynArray[address, MAX_CONTRIBUTORS]):
    """
    @notice Scheduler only: when nobody revealed the consensus before the
            reveal deadline, rejects its supporters and reopens the task for
            contributions, extending the contribution deadline (within the
            final deadline) so that new workers have time to contribute.
    @param consensus The result hash that reached consensus.
    @param supporters Every contributor of that result, sorted ascending.
    """
    assert msg.sender == deal.workerpool_owner, "task: only the scheduler may reopen"
    taskid: bytes32 = self._task_of(dealid, deal, index)
    task: Task = self._load_task(taskid)
    assert task.status == TASK_REVEALING, "task: not in the reveal phase"
    assert block.timestamp >= task.reveal_deadline, "task: reveal deadline not reached"
    assert task.reveals == 0, "task: a winner revealed, finalize instead"
    group: uint256 = self._groups[taskid][consensus]
    assert group & GROUP_CONSENSUS != 0, "consensus: result is not the consensus"
    assert len(supporters) == (group >> 128) & 255, "task: supporters list incomplete"
    previous: uint256 = 0
    for worker: address in supporters:
        assert convert(worker, uint256) > previous, "task: contributors not sorted"
        previous = convert(worker, uint256)
        contribution: uint256 = self._contributions[taskid][worker]
        assert (
            contribution & 255 == CONTRIBUTION_CONTRIBUTED
            and self._contribution_hashes[taskid][worker] == consensus
        ), "task: not a supporter of the consensus"
        self._contributions[taskid][worker] = contribution - CONTRIBUTION_CONTRIBUTED + CONTRIBUTION_REJECTED
    task.total_weight -= group & GROUP_WEIGHT_CAP
    self._groups[taskid][consensus] = 0
    final_deadline: uint256 = deal.start_time + FINAL_DEADLINE_RATIO * deal.time_ref
    task.status = TASK_ACTIVE
    task.winners = 0
    task.reveal_deadline = 0
    task.contribution_deadline = max(
        task.contribution_deadline,
        min(block.timestamp + deal.time_ref, final_deadline - REVEAL_DEADLINE_RATIO * deal.time_ref),
    )
    self._store_task(taskid, task)
    log TaskReopen(taskid=taskid, contribution_deadline=task.contribution_deadline)


@external
@nonreentrant
def finalize(
    dealid: bytes32,
    deal: Deal,
    index: uint256,
    contributors: DynArray[address, MAX_CONTRIBUTORS],
    results: Bytes[MAX_RESULTS],
    results_callback: Bytes[MAX_RESULTS],
):
    """
    @notice Scheduler only: closes a task once every winner revealed, or
            after the reveal deadline with at least one reveal. Pays the app
            and dataset owners, shares the workerpool price and the stakes
            of wrong or silent contributors among the proven workers (by
            weight) and the scheduler, updates scores, then calls the
            request's callback with bounded gas.
    @param contributors Every contributor of the task, sorted ascending.
    @param results Link to the result archive (logged).
    @param results_callback Callback data; its keccak256 must be the
           consensus digest when the deal has a callback.
    """
    assert msg.sender == deal.workerpool_owner, "task: only the scheduler may finalize"
    taskid: bytes32 = self._task_of(dealid, deal, index)
    task: Task = self._load_task(taskid)
    assert task.status == TASK_REVEALING, "task: no consensus to finalize"
    assert block.timestamp < deal.start_time + FINAL_DEADLINE_RATIO * deal.time_ref, "task: final deadline passed, claim instead"
    assert task.reveals == task.winners or (task.reveals > 0 and block.timestamp >= task.reveal_deadline), "task: winners still revealing"
    assert len(contributors) == task.contributors, "task: contributors list incomplete"
    if deal.callback != empty(address):
        callback_hash: bytes32 = keccak256(concat(taskid, keccak256(results_callback)))
        assert self._groups[taskid][callback_hash] & GROUP_CONSENSUS != 0, "callback: data does not match the consensus"

    # Wrong and silent contributors lose their stake to the reward pool.
    seized: uint256 = 0
    proven_weight: uint256 = 0
    previous: uint256 = 0
    for worker: address in contributors:
        assert convert(worker, uint256) > previous, "task: contributors not sorted"
        previous = convert(worker, uint256)
        contribution: uint256 = self._contributions[taskid][worker]
        assert contribution != 0, "task: not a contributor"
        if contribution & 255 == CONTRIBUTION_PROVEN:
            proven_weight += (contribution >> 8) & MAX_SCORE
        else:
            seized += deal.worker_stake
            self._punish(worker, deal.worker_stake, taskid)

    reward_pool: uint256 = deal.workerpool_price + seized
    workers_share: uint256 = reward_pool * (100 - deal.scheduler_reward_ratio) // 100
    distributed: uint256 = 0
    for worker: address in contributors:
        contribution: uint256 = self._contributions[taskid][worker]
        if contribution & 255 == CONTRIBUTION_PROVEN:
            reward: uint256 = workers_share * ((contribution >> 8) & MAX_SCORE) // proven_weight
            distributed += reward
            self._reward_worker(worker, deal.worker_stake, reward, task.contributors > 1, taskid)

    self._pay_task(deal, reward_pool - distributed, taskid)
    task.status = TASK_COMPLETED
    self._store_task(taskid, task)
    log TaskFinalize(taskid=taskid, results=results)
    self._call_back(deal.callback, taskid, results_callback)


@external
@nonreentrant
def contributeAndFinalize(
    dealid: bytes32,
    deal: Deal,
    index: uint256,
    result_digest: bytes32,
    results: Bytes[MAX_RESULTS],
    results_callback: Bytes[MAX_RESULTS],
    enclave_challenge: address,
    enclave_sign: Bytes[65],
    authorization_sign: Bytes[65],
):
    """
    @notice One-transaction path for trust-1 deals (the TEE path): the
            caller's result is final. Needs a fresh task, the scheduler's
            authorization and, for a TEE deal, the enclave's signature.
            The worker must hold its stake free but nothing is locked: the
            result is settled in the same transaction.
    @param result_digest The canonical digest of the result.
    @param results Link to the result archive (logged).
    @param results_callback Callback data; keccak256 of it must equal
           `result_digest` when the deal has a callback.
    """
    assert deal.trust == 1, "task: contributeAndFinalize needs trust 1"
    taskid: bytes32 = self._task_of(dealid, deal, index)
    assert self._tasks[taskid] == 0, "task: already initialized"
    assert block.timestamp < deal.start_time + CONTRIBUTION_DEADLINE_RATIO * deal.time_ref, "task: contribution deadline passed"
    result_hash: bytes32 = keccak256(concat(taskid, result_digest))
    result_seal: bytes32 = keccak256(concat(convert(msg.sender, bytes20), taskid, result_digest))
    self._check_authorization(deal, taskid, result_hash, result_seal, enclave_challenge, enclave_sign, authorization_sign)
    if deal.callback != empty(address):
        assert keccak256(results_callback) == result_digest, "callback: data does not match the result digest"

    free: uint256 = 0
    locked: uint256 = 0
    score: uint256 = 0
    free, locked, score = self._load_account(msg.sender)
    assert free >= deal.worker_stake, "escrow: worker free balance too low for the stake"
    reward: uint256 = deal.workerpool_price * (100 - deal.scheduler_reward_ratio) // 100
    self._store_account(msg.sender, free + reward, locked, score)
    if reward > 0:
        log Reward(owner=msg.sender, amount=reward, ref=taskid)

    self._pay_task(deal, deal.workerpool_price - reward, taskid)
    self._store_task(
        taskid,
        Task(
            status=TASK_COMPLETED,
            contributors=1,
            reveals=1,
            winners=1,
            contribution_deadline=deal.start_time + CONTRIBUTION_DEADLINE_RATIO * deal.time_ref,
            reveal_deadline=0,
            total_weight=0,
        ),
    )
    log TaskContribute(taskid=taskid, worker=msg.sender, result_hash=result_hash, weight=0)
    log TaskReveal(taskid=taskid, worker=msg.sender, result_digest=result_digest)
    log TaskFinalize(taskid=taskid, results=results)
    self._call_back(deal.callback, taskid, results_callback)


@external
@nonreentrant
def claim(dealid: bytes32, deal: Deal, index: uint256, contributors: DynArray[address, MAX_CONTRIBUTORS]):
    """
    @notice Anyone, after the final deadline of a task that did not complete:
            refunds the requester, seizes the workerpool owner's stake to the
            kitty, unlocks the stakes of honest contributors and seizes
            (to the kitty) those of contributors that had to reveal and did not.
    @param contributors Every contributor of the task, sorted ascending.
    """
    taskid: bytes32 = self._task_of(dealid, deal, index)
    task: Task = self._load_task(taskid)
    assert task.status < TASK_COMPLETED, "task: already completed or claimed"
    assert block.timestamp >= deal.start_time + FINAL_DEADLINE_RATIO * deal.time_ref, "task: final deadline not reached"
    assert len(contributors) == task.contributors, "task: contributors list incomplete"
    previous: uint256 = 0
    silent: uint256 = 0
    for worker: address in contributors:
        assert convert(worker, uint256) > previous, "task: contributors not sorted"
        previous = convert(worker, uint256)
        contribution: uint256 = self._contributions[taskid][worker]
        assert contribution != 0, "task: not a contributor"
        status: uint256 = contribution & 255
        if status == CONTRIBUTION_REJECTED or (
            status == CONTRIBUTION_CONTRIBUTED
            and self._groups[taskid][self._contribution_hashes[taskid][worker]] & GROUP_CONSENSUS != 0
        ):
            silent += deal.worker_stake
            self._punish(worker, deal.worker_stake, taskid)
        else:
            self._settle(worker, deal.worker_stake, 0, 0, taskid)

    pool_stake: uint256 = deal.workerpool_price * POOL_STAKE_RATIO // 100
    self._settle(deal.workerpool_owner, 0, pool_stake, 0, taskid)
    self.kitty += pool_stake + silent
    if pool_stake + silent > 0:
        log KittyFill(amount=pool_stake + silent, ref=taskid)
    self._settle(deal.requester, deal.app_price + deal.dataset_price + deal.workerpool_price, 0, 0, taskid)
    task.status = TASK_FAILED
    self._store_task(taskid, task)
    log TaskClaimed(taskid=taskid)


@internal
@view
def _task_of(dealid: bytes32, deal: Deal, index: uint256) -> bytes32:
    assert self.deals[dealid] == keccak256(abi_encode(deal)), "task: unknown deal"
    assert index >= deal.bot_first and index < deal.bot_first + deal.bot_size, "task: index outside the deal"
    return keccak256(concat(dealid, convert(index, bytes32)))


@internal
def _open_task(taskid: bytes32, dealid: bytes32, deal: Deal, index: uint256) -> Task:
    deadline: uint256 = deal.start_time + CONTRIBUTION_DEADLINE_RATIO * deal.time_ref
    assert block.timestamp < deadline, "task: contribution deadline passed"
    log TaskInitialize(taskid=taskid, dealid=dealid, index=index)
    return Task(
        status=TASK_ACTIVE,
        contributors=0,
        reveals=0,
        winners=0,
        contribution_deadline=deadline,
        reveal_deadline=0,
        total_weight=0,
    )


@internal
@view
def _load_task(taskid: bytes32) -> Task:
    packed: uint256 = self._tasks[taskid]
    return Task(
        status=packed & 255,
        contributors=(packed >> 8) & 255,
        reveals=(packed >> 16) & 255,
        winners=(packed >> 24) & 255,
        contribution_deadline=(packed >> 32) & (2**40 - 1),
        reveal_deadline=(packed >> 72) & (2**40 - 1),
        total_weight=packed >> 112,
    )


@internal
def _store_task(taskid: bytes32, task: Task):
    # Counters stay below MAX_CONTRIBUTORS, deadlines below 2**40 (year
    # 36812) and the total weight below 2**133 (see GROUP_WEIGHT_CAP).
    self._tasks[taskid] = (
        task.status
        | (task.contributors << 8)
        | (task.reveals << 16)
        | (task.winners << 24)
        | (task.contribution_deadline << 32)
        | (task.reveal_deadline << 72)
        | (task.total_weight << 112)
    )


@internal
@view
def _check_authorization(
    deal: Deal,
    taskid: bytes32,
    result_hash: bytes32,
    result_seal: bytes32,
    enclave_challenge: address,
    enclave_sign: Bytes[65],
    authorization_sign: Bytes[65],
):
    authorization: bytes32 = eip712_domain_separator._hash_typed_data_v4(
        keccak256(abi_encode(AUTHORIZATION_TYPEHASH, msg.sender, taskid, enclave_challenge))
    )
    assert signatures._is_valid(deal.workerpool_owner, authorization, authorization_sign), "task: worker not authorized by the scheduler"
    if convert(deal.tag, uint256) & TAG_TEE != 0:
        assert enclave_challenge != empty(address), "task: TEE task needs an enclave challenge"
    if enclave_challenge != empty(address):
        message: bytes32 = keccak256(concat(result_hash, result_seal))
        signed: bytes32 = keccak256(concat(b"\x19Ethereum Signed Message:\n32", message))
        assert signatures._recover(signed, enclave_sign) == enclave_challenge, "task: invalid enclave signature"


@internal
def _punish(worker: address, stake: uint256, taskid: bytes32):
    """
    @dev Seizes a contribution's stake (the caller decides where it goes) and
         cuts the worker's score to two thirds, rounded down.
    """
    free: uint256 = 0
    locked: uint256 = 0
    score: uint256 = 0
    free, locked, score = self._load_account(worker)
    self._store_account(worker, free, locked - stake, score * 2 // 3)
    if stake > 0:
        log Seize(owner=worker, amount=stake, ref=taskid)
    log FaultyContribution(worker=worker, taskid=taskid, score=score * 2 // 3)


@internal
def _reward_worker(worker: address, stake: uint256, reward: uint256, scored: bool, taskid: bytes32):
    free: uint256 = 0
    locked: uint256 = 0
    score: uint256 = 0
    free, locked, score = self._load_account(worker)
    if scored:
        score += 1
    self._store_account(worker, free + stake + reward, locked - stake, score)
    if stake > 0:
        log Unlock(owner=worker, amount=stake, ref=taskid)
    if reward > 0:
        log Reward(owner=worker, amount=reward, ref=taskid)
    log AccurateContribution(worker=worker, taskid=taskid, score=min(score, MAX_SCORE))


@internal
def _pay_task(deal: Deal, scheduler_reward: uint256, taskid: bytes32):
    """
    @dev Settles a completed task between the requester (its locked payment
         is spent), the app and dataset owners (their prices) and the
         workerpool owner (its stake back, `scheduler_reward` and its share
         of the kitty).
    """
    self._settle(deal.requester, 0, deal.app_price + deal.dataset_price + deal.workerpool_price, 0, taskid)
    self._credit(deal.app_owner, deal.app_price, taskid)
    if deal.dataset != empty(address):
        self._credit(deal.dataset_owner, deal.dataset_price, taskid)
    kitty: uint256 = self.kitty
    kitty_share: uint256 = min(kitty, max(kitty * KITTY_RATIO // 100, KITTY_MIN))
    if kitty_share > 0:
        self.kitty = kitty - kitty_share
        log KittyPayout(receiver=deal.workerpool_owner, amount=kitty_share, ref=taskid)
    self._settle(
        deal.workerpool_owner,
        deal.workerpool_price * POOL_STAKE_RATIO // 100,
        0,
        scheduler_reward + kitty_share,
        taskid,
    )


@internal
def _call_back(callback: address, taskid: bytes32, data: Bytes[MAX_RESULTS]):
    """
    @dev Calls `receiveResult(taskid, data)` with CALLBACK_GAS and ignores
         its outcome and return data, so a failing or hungry callback never
         blocks payment. The gas check stops a caller from starving the
         callback (EIP-150 passes on at most 63/64 of what is left).
    """
    if callback == empty(address):
        return
    assert msg.gas >= CALLBACK_GAS * 64 // 63 + 10_000, "callback: not enough gas left for the callback"
    success: bool = raw_call(
        callback,
        abi_encode(taskid, data, method_id=method_id("receiveResult(bytes32,bytes)")),
        gas=CALLBACK_GAS,
        revert_on_failure=False,
    )
    log ResultCallback(taskid=taskid, callback=callback, success=success)
