# pragma version ~=0.4.3
"""
@title Stub registry (test contract)
@custom:contract-name StubRegistry
@license Apache-2.0
@notice Answers the Marketplace's three registry queries (`appInfo`,
        `datasetOwner`, `workerpoolInfo`) from owners set by the tests, so
        that orders naming fixed resource ids (the ethers test vectors) can
        be matched on-chain.
"""

# Policy every workerpool of the stub reports (the registry's defaults).
WORKER_STAKE_RATIO: constant(uint256) = 30
SCHEDULER_REWARD_RATIO: constant(uint256) = 1

# Resource id -> owner; written only by `setOwner`.
owners: public(HashMap[address, address])
# App id -> whether it can run in an enclave; written only by `setOwner`.
tee: public(HashMap[address, bool])


@external
def setOwner(resource: address, owner: address, tee_: bool):
    """
    @notice Declares `owner` the owner of `resource` (an app, dataset or workerpool id).
    @param tee_ Whether `resource`, as an app, can run in an enclave.
    """
    self.owners[resource] = owner
    self.tee[resource] = tee_


@external
@view
def appInfo(app: address) -> (address, bool):
    """
    @return (owner, tee) as the AppRegistry answers.
    """
    return self.owners[app], self.tee[app]


@external
@view
def datasetOwner(dataset: address) -> address:
    """
    @return address The declared owner, zero if none.
    """
    return self.owners[dataset]


@external
@view
def workerpoolInfo(workerpool: address) -> (address, uint256, uint256):
    """
    @return (owner, worker stake ratio, scheduler reward ratio), the registry's defaults.
    """
    return self.owners[workerpool], WORKER_STAKE_RATIO, SCHEDULER_REWARD_RATIO
