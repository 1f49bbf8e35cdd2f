# pragma version ~=0.4.3
"""
@title Token that can refuse transfers (test contract)
@custom:contract-name FalseToken
@license Apache-2.0
@notice A minimal ERC-20 whose `transfer` and `transferFrom` return False
        instead of reverting while `failing` is set, as some tokens do: the
        hub must notice and revert.
"""

# Balances; anyone may mint (a test token).
balanceOf: public(HashMap[address, uint256])
# While set, transfers move nothing and return False.
failing: public(bool)


@external
def mint(owner: address, amount: uint256):
    """
    @notice Creates `amount` tokens for `owner`.
    """
    self.balanceOf[owner] += amount


@external
def setFailing(failing_: bool):
    """
    @notice Makes every later transfer return False (or work again).
    """
    self.failing = failing_


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @return bool False, moving nothing, while `failing` is set.
    """
    if self.failing:
        return False
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves tokens without checking any allowance (a test token).
    @return bool False, moving nothing, while `failing` is set.
    """
    if self.failing:
        return False
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    return True
