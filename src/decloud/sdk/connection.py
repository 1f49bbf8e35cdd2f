"""One configured decloud network, seen by one wallet.

Every role object (`Requester`, `AppDeveloper`, ...) acts through a `Connection`: the chain
client that signs as the wallet, and the typed contract facades of the configured
deployment. A connection without a wallet reads only; anything that signs asks for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from decloud.chain.client import ChainClient, Receipt
from decloud.chain.hub import Hub
from decloud.chain.registries import AppRegistry, DatasetRegistry, Token, WorkerpoolRegistry
from decloud.sdk.config import ClientConfig
from decloud.sdk.errors import ConfigError, WalletRequired, chain_errors
from decloud.sdk.wallet import Wallet

_STALE = "run `decloud devnet up` again (it rewrites the config), or fix the config's tables"


@dataclass(frozen=True)
class Transaction:
    """A mined transaction, as a person checks it on an explorer."""

    tx_hash: str
    block_number: int
    gas_used: int

    @classmethod
    def of(cls, receipt: Receipt) -> Transaction:
        return cls(receipt.tx_hash, receipt.block_number, receipt.gas_used)

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "gas_used": self.gas_used,
        }


class Connection:
    """The contracts of the configured deployment, called as the wallet (if any)."""

    def __init__(
        self, config: ClientConfig, wallet: Wallet | None = None, *, address: str | None = None
    ) -> None:
        """`address` names the account read-only checks act for (say, whether it owns an
        app) without unlocking its wallet; an unlocked `wallet` signs as its own address."""
        self.config = config
        self.wallet = wallet
        self._address = wallet.address if wallet is not None else address
        # Read-only calls still name a sender: a throwaway key that never signs anything.
        key = wallet.private_key if wallet is not None else bytes(Account.create().key)
        self.client = ChainClient(config.chain.rpc_url, key)

    @property
    def address(self) -> str:
        """The account the connection acts for."""
        if self._address is None:
            return self.require_wallet().address
        return self._address

    def require_wallet(self) -> Wallet:
        if self.wallet is None:
            raise WalletRequired(
                "this operation signs, and no wallet was given",
                "pass --wallet NAME (see `decloud wallet list`)",
            )
        return self.wallet

    def check(self) -> None:
        """Fail early, and clearly, when the config does not describe the chain it points
        at: another chain, or a chain restarted without the contracts."""
        with chain_errors():
            chain_id = self.client.chain_id
            hub_code = self.client.w3.eth.get_code(to_checksum_address(self.config.contracts.hub))
        if chain_id != self.config.chain.chain_id:
            raise ConfigError(
                f"the node at {self.config.chain.rpc_url} serves chain {chain_id}, the config "
                f"{self.config.source} is for chain {self.config.chain.chain_id}",
                _STALE,
            )
        if not hub_code:
            raise ConfigError(
                f"no hub contract at {self.config.contracts.hub} on the chain at "
                f"{self.config.chain.rpc_url}: the chain was reset or the config is stale",
                _STALE,
            )

    @cached_property
    def hub(self) -> Hub:
        return Hub(self.client, self.config.contracts)

    @cached_property
    def apps(self) -> AppRegistry:
        return AppRegistry(self.client, self.config.contracts.app_registry)

    @cached_property
    def datasets(self) -> DatasetRegistry:
        return DatasetRegistry(self.client, self.config.contracts.dataset_registry)

    @cached_property
    def workerpools(self) -> WorkerpoolRegistry:
        return WorkerpoolRegistry(self.client, self.config.contracts.workerpool_registry)

    @cached_property
    def token(self) -> Token:
        return Token(self.client, self.config.contracts.token)


def connect(
    config: ClientConfig, wallet: Wallet | None = None, *, address: str | None = None
) -> Connection:
    """A checked connection to the configured network, as `wallet` (None: read-only, for
    `address` if given)."""
    connection = Connection(config, wallet, address=address)
    connection.check()
    return connection
