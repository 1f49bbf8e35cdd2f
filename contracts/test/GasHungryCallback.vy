# pragma version ~=0.4.3
"""
@title Gas-hungry callback (test contract)
@custom:contract-name GasHungryCallback
@license Apache-2.0
@notice A callback that burns all the gas it is given: the hub must bound
        the gas of the call and pay the task's parties all the same.
"""

MAX_DATA: constant(uint256) = 4096

# Written on every loop turn so that each turn costs a storage write.
counter: public(uint256)


@external
def receiveResult(taskid: bytes32, data: Bytes[MAX_DATA]):
    """
    @notice Loops until it runs out of gas.
    """
    for i: uint256 in range(10**9):
        self.counter = i + 1
