# pragma version ~=0.4.3
"""
@title decloud devnet payment token
@custom:contract-name Token
@license Apache-2.0
@notice A plain ERC-20 (with EIP-2612 permit) used as the hub's payment
        token on development chains. Production deployments point the hub
        at any existing ERC-20 instead; the hub relies on nothing beyond
        `transfer`, `transferFrom` and `balanceOf`.
@custom:security The deployer is the only minter; `mint` exists so that the
                 devnet and the tests can fund accounts.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: erc20.__interface__


@deploy
def __init__(name_: String[25], symbol_: String[5], decimals_: uint8):
    """
    @param name_ Token name shown by wallets.
    @param symbol_ Ticker.
    @param decimals_ Number of decimals of one unit.
    """
    ownable.__init__()
    erc20.__init__(name_, symbol_, decimals_, name_, "1")
