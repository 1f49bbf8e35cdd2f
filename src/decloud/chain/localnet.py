"""A complete decloud marketplace on a local chain, with named and funded parties.

The demo and the gas benchmark need the same cast: a deployed protocol, a requester, an
app owner, a workerpool owner (the scheduler) and workers, each with its own key, tokens
deposited in the hub, and one registered app and workerpool. `LocalMarket` sets that up on
any chain whose first key is funded (anvil's dev accounts) and offers the steps of a task
as one call each, so that a scenario reads like the protocol it plays.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from eth_account import Account

from decloud.chain.client import ChainClient, Receipt
from decloud.chain.deploy import Deployment, deploy_protocol
from decloud.chain.hub import ZERO_ADDRESS, Hub, MatchedDeal
from decloud.chain.registries import AppRegistry, AppType, Token, WorkerpoolRegistry
from decloud.protocol.orders import AppOrder, RequestOrder, WorkerpoolOrder
from decloud.protocol.tags import NO_TAG, TEE, tag_union

NANO = 10**9
"""Prices are in the token's smallest unit; the devnet token has 18 decimals like ether,
and decloud's sample prices are in nano-tokens, as RLC prices are in nRLC."""
FUNDING = 10**6 * NANO
DEPOSIT = 10**4 * NANO


@dataclass
class Party:
    """One account of the marketplace and its view of the hub."""

    name: str
    key: bytes
    hub: Hub

    @property
    def address(self) -> str:
        return self.hub.address


@dataclass
class LocalMarket:
    """A deployed protocol and its parties; build it with `LocalMarket.create`."""

    rpc_url: str
    deployment: Deployment
    admin: ChainClient
    parties: dict[str, Party] = field(default_factory=dict)
    app: str = ZERO_ADDRESS
    tee_app: str = ZERO_ADDRESS
    workerpool: str = ZERO_ADDRESS
    _salt: int = 0

    @classmethod
    def create(cls, rpc_url: str, keys: list[str], names: list[str]) -> LocalMarket:
        """Deploys with `keys[0]` and gives each name the next key, funded and deposited.

        The app owner registers a WASM app and a TEE app; the workerpool owner a pool.
        """
        if len(keys) < len(names) + 1:
            raise ValueError(f"{len(names) + 1} funded keys needed, {len(keys)} given")
        admin = ChainClient(rpc_url, keys[0])
        market = cls(rpc_url, deploy_protocol(admin), admin)
        token = Token(admin, market.deployment.token)
        for name, key in zip(names, keys[1:], strict=False):
            party = market.add_party(name, bytes.fromhex(key.removeprefix("0x")))
            token.mint(party.address, FUNDING)
            party.hub.deposit(DEPOSIT)
        if "app_owner" in market.parties:
            apps = AppRegistry(
                market.parties["app_owner"].hub.client, market.deployment.app_registry
            )
            market.app = apps.create_app(
                "mandelbrot", AppType.WASM, "ipfs://mandelbrot.wasm", b"\x11" * 32
            )
            market.tee_app = apps.create_app(
                "sealed-mandelbrot",
                AppType.OCI,
                "registry.local/sealed:1",
                b"\x22" * 32,
                b"mrenclave",
            )
        if "pool_owner" in market.parties:
            pools = WorkerpoolRegistry(
                market.parties["pool_owner"].hub.client, market.deployment.workerpool_registry
            )
            market.workerpool = pools.create_workerpool("local workerpool")
        return market

    def add_party(self, name: str, key: bytes) -> Party:
        party = Party(name, key, Hub(ChainClient(self.rpc_url, key), self.deployment))
        self.parties[name] = party
        return party

    def __getitem__(self, name: str) -> Party:
        return self.parties[name]

    # --- orders --------------------------------------------------------------------------

    def next_salt(self) -> bytes:
        self._salt += 1
        return self._salt.to_bytes(32, "big")

    def orders(
        self, *, trust: int, volume: int = 1, tee: bool = False, callback: str = ZERO_ADDRESS
    ) -> tuple[AppOrder, WorkerpoolOrder, RequestOrder]:
        """Compatible app, workerpool and request orders at the sample prices."""
        salt = self.next_salt()
        tag = tag_union(TEE) if tee else NO_TAG
        app = self.tee_app if tee else self.app
        requester = self["requester"].address
        app_order = AppOrder(
            app=app,
            appprice=1 * NANO,
            volume=10**6,
            tag=tag,
            datasetrestrict=ZERO_ADDRESS,
            workerpoolrestrict=ZERO_ADDRESS,
            requesterrestrict=ZERO_ADDRESS,
            salt=salt,
        )
        workerpool_order = WorkerpoolOrder(
            workerpool=self.workerpool,
            workerpoolprice=3 * NANO,
            volume=10**6,
            tag=tag,
            category=0,
            trust=100,
            apprestrict=ZERO_ADDRESS,
            datasetrestrict=ZERO_ADDRESS,
            requesterrestrict=ZERO_ADDRESS,
            salt=salt,
        )
        request_order = RequestOrder(
            app=app,
            appmaxprice=1 * NANO,
            dataset=ZERO_ADDRESS,
            datasetmaxprice=0,
            workerpool=ZERO_ADDRESS,
            workerpoolmaxprice=3 * NANO,
            requester=requester,
            volume=volume,
            tag=tag,
            category=0,
            trust=trust,
            beneficiary=requester,
            callback=callback,
            params='{"iexec_args":"--size 64"}',
            salt=salt,
        )
        return app_order, workerpool_order, request_order

    def match(self, *, trust: int, volume: int = 1, tee: bool = False) -> MatchedDeal:
        """Each owner signs its order; the requester matches them."""
        app_order, workerpool_order, request_order = self.orders(
            trust=trust, volume=volume, tee=tee
        )
        requester = self["requester"]
        return requester.hub.match_orders(
            app_order,
            requester.hub.sign(app_order, self["app_owner"].key),
            workerpool_order,
            requester.hub.sign(workerpool_order, self["pool_owner"].key),
            request_order,
            requester.hub.sign(request_order, requester.key),
        )

    # --- tasks ---------------------------------------------------------------------------

    def authorize(
        self, deal: MatchedDeal, index: int, worker: str, enclave: str = ZERO_ADDRESS
    ) -> bytes:
        scheduler = self["pool_owner"]
        return scheduler.hub.authorize(
            self[worker].address, deal.task_id(index), scheduler.key, enclave
        )

    def contribute(self, deal: MatchedDeal, index: int, worker: str, digest: bytes) -> Receipt:
        return self[worker].hub.contribute(deal, index, digest, self.authorize(deal, index, worker))

    def reveal(self, deal: MatchedDeal, index: int, worker: str, digest: bytes) -> Receipt:
        return self[worker].hub.reveal(deal.task_id(index), digest)

    def finalize(self, deal: MatchedDeal, index: int, workers: list[str]) -> Receipt:
        contributors = [self[w].address for w in workers]
        return self["pool_owner"].hub.finalize(deal, index, contributors, b"ipfs://bafy-result")

    def contribute_and_finalize(
        self,
        deal: MatchedDeal,
        index: int,
        worker: str,
        digest: bytes,
        enclave_key: bytes | None = None,
    ) -> Receipt:
        enclave = (
            ZERO_ADDRESS if enclave_key is None else str(Account.from_key(enclave_key).address)
        )
        authorization = self.authorize(deal, index, worker, enclave)
        return self[worker].hub.contribute_and_finalize(
            deal, index, digest, authorization, b"ipfs://bafy-result", enclave_key=enclave_key
        )

    def build_reputation(self, workers: list[str], tasks: int) -> None:
        """Plays `tasks` trust-3 tasks that `workers` (at least two) complete together,
        so each gains `tasks` score points (+1 per task with several contributors)."""
        for _ in range(tasks):
            deal = self.match(trust=3)
            digest = secrets.token_bytes(32)
            for worker in workers:
                self.contribute(deal, deal.deal.bot_first, worker, digest)
            for worker in workers:
                self.reveal(deal, deal.deal.bot_first, worker, digest)
            self.finalize(deal, deal.deal.bot_first, workers)
