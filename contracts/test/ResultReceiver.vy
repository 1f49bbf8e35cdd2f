# pragma version ~=0.4.3
"""
@title Result receiver (test contract)
@custom:contract-name ResultReceiver
@license Apache-2.0
@notice An oracle consumer for the tests: stores the last result the hub
        delivered through `receiveResult`, who delivered it and how many
        results it received.
"""

# Largest callback data the hub forwards (the Hub's MAX_RESULTS).
MAX_DATA: constant(uint256) = 4096

# The last delivery; written only by receiveResult.
last_taskid: public(bytes32)
last_data: public(Bytes[MAX_DATA])
last_caller: public(address)
calls: public(uint256)


@external
def receiveResult(taskid: bytes32, data: Bytes[MAX_DATA]):
    """
    @notice Records a result.
    @param taskid The task the result belongs to.
    @param data The callback data; its keccak256 is the consensus digest.
    """
    self.last_taskid = taskid
    self.last_data = data
    self.last_caller = msg.sender
    self.calls += 1
