# pragma version ~=0.4.3
"""
@title Reverting callback (test contract)
@custom:contract-name RevertingCallback
@license Apache-2.0
@notice A callback that refuses every result: the hub must pay the task's
        parties all the same.
"""

MAX_DATA: constant(uint256) = 4096


@external
def receiveResult(taskid: bytes32, data: Bytes[MAX_DATA]):
    """
    @notice Always reverts.
    """
    raise "callback refuses every result"
