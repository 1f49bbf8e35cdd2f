# pragma version ~=0.4.3
"""
@title Restriction group (test contract)
@custom:contract-name MemberGroup
@license Apache-2.0
@notice A group an order can name as a restriction: matching asks it
        `isMember(account)`. Its owner adds and removes members.
"""

# The account that manages membership; set at deployment.
owner: public(immutable(address))
# Members of the group; written only by `setMember`.
members: public(HashMap[address, bool])


@deploy
def __init__(owner_: address):
    """
    @param owner_ The account that manages membership.
    """
    owner = owner_


@external
def setMember(account: address, member: bool):
    """
    @notice Adds `account` to the group or removes it.
    """
    assert msg.sender == owner, "group: caller is not the owner"
    self.members[account] = member


@external
@view
def isMember(account: address) -> bool:
    """
    @return bool Whether `account` belongs to the group.
    """
    return self.members[account]
