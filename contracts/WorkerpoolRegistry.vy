# pragma version ~=0.4.3
"""
@title decloud workerpool registry
@custom:contract-name WorkerpoolRegistry
@license Apache-2.0
@notice Every workerpool selling computing power on decloud is an
        ERC-721 token of this registry. The holder of the token runs the
        pool's scheduler: it signs workerpool orders and worker
        authorizations, stakes for every task it sells and receives the
        scheduler's share of the rewards. The pool's policy (how much its
        workers stake and how much of a task's price the scheduler keeps)
        lives here and is snapshotted into each deal, so changing it never
        alters live deals.
@custom:security Both ratios are bounded: a scheduler can never keep the whole
                 reward (a PoCo weakness), nor ask workers to stake more than
                 the task pays.
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



# Bounds of the pool policy, in percent.
MAX_WORKER_STAKE_RATIO: constant(uint256) = 100
MAX_SCHEDULER_REWARD_RATIO: constant(uint256) = 90
# Policy of a new pool until its owner changes it.
DEFAULT_WORKER_STAKE_RATIO: constant(uint256) = 30
DEFAULT_SCHEDULER_REWARD_RATIO: constant(uint256) = 1


struct Workerpool:
    description: String[256]
    # Stake of each contribution, in percent of the workerpool price.
    worker_stake_ratio: uint256
    # Share of the workerpool price (and seized stakes) kept by the scheduler.
    scheduler_reward_ratio: uint256


# Description and policy of every pool; the policy is written by its owner.
workerpools: public(HashMap[address, Workerpool])


event WorkerpoolCreated:
    workerpool: indexed(address)
    owner: indexed(address)
    description: String[256]


event WorkerpoolPolicyUpdate:
    workerpool: indexed(address)
    worker_stake_ratio: uint256
    scheduler_reward_ratio: uint256


@deploy
def __init__():
    ownable.__init__()
    erc721.__init__("decloud workerpools", "DCWP", "", "decloud workerpools", "1")


@external
def createWorkerpool(owner: address, description: String[256]) -> address:
    """
    @notice Registers a workerpool with the default policy and mints its
            token to `owner`.
    @param owner Account that will run the pool's scheduler.
    @param description Human-readable description, unique per owner.
    @return address The workerpool identifier.
    @custom:security The identifier derives from (registry, caller, owner,
                     description), so nobody can squat an owner's identifier.
    """
    assert owner != empty(address), "workerpool: owner is zero"
    assert len(description) > 0, "workerpool: empty description"
    workerpool: address = self._resource_id(owner, description)
    assert not erc721._exists(convert(workerpool, uint256)), "workerpool: already registered"
    self.workerpools[workerpool] = Workerpool(
        description=description,
        worker_stake_ratio=DEFAULT_WORKER_STAKE_RATIO,
        scheduler_reward_ratio=DEFAULT_SCHEDULER_REWARD_RATIO,
    )
    erc721._mint(owner, convert(workerpool, uint256))
    log WorkerpoolCreated(workerpool=workerpool, owner=owner, description=description)
    log WorkerpoolPolicyUpdate(
        workerpool=workerpool,
        worker_stake_ratio=DEFAULT_WORKER_STAKE_RATIO,
        scheduler_reward_ratio=DEFAULT_SCHEDULER_REWARD_RATIO,
    )
    return workerpool


@external
def setWorkerpoolPolicy(workerpool: address, worker_stake_ratio: uint256, scheduler_reward_ratio: uint256):
    """
    @notice Changes the policy of future deals of a pool.
    @param workerpool The pool identifier; the caller must own it.
    @param worker_stake_ratio Percent of the workerpool price a worker stakes.
    @param scheduler_reward_ratio Percent of the reward the scheduler keeps.
    """
    assert erc721._owners[convert(workerpool, uint256)] == msg.sender, "workerpool: caller is not the owner"
    assert worker_stake_ratio <= MAX_WORKER_STAKE_RATIO, "workerpool: worker stake ratio above 100"
    assert scheduler_reward_ratio <= MAX_SCHEDULER_REWARD_RATIO, "workerpool: scheduler reward ratio above 90"
    self.workerpools[workerpool].worker_stake_ratio = worker_stake_ratio
    self.workerpools[workerpool].scheduler_reward_ratio = scheduler_reward_ratio
    log WorkerpoolPolicyUpdate(
        workerpool=workerpool, worker_stake_ratio=worker_stake_ratio, scheduler_reward_ratio=scheduler_reward_ratio
    )


@external
@view
def workerpoolInfo(workerpool: address) -> (address, uint256, uint256):
    """
    @notice What the hub snapshots into a deal.
    @param workerpool The pool identifier.
    @return (owner, worker_stake_ratio, scheduler_reward_ratio); owner is
            zero if the pool is unknown.
    """
    return (
        erc721._owners[convert(workerpool, uint256)],
        self.workerpools[workerpool].worker_stake_ratio,
        self.workerpools[workerpool].scheduler_reward_ratio,
    )


@internal
@view
def _resource_id(owner: address, description: String[256]) -> address:
    return convert(
        convert(keccak256(abi_encode(self, msg.sender, owner, keccak256(description))), uint256)
        & convert(max_value(uint160), uint256),
        address,
    )
