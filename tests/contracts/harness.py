"""A decloud deployment inside titanoboa's in-process EVM, with named, funded actors.

Contract unit tests, the differential property test and the gas probes share it: it deploys
the token, the three registries, the Hub and the Marketplace exactly as `decloud.chain.deploy`
does on a real chain, and signs orders and authorizations with real keys through
`decloud.protocol`, the way wallets and schedulers do.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boa
from eth_abi import decode
from eth_account import Account
from eth_utils import keccak

from decloud.protocol import (
    NO_TAG,
    AppOrder,
    DatasetOrder,
    Eip712Domain,
    RequestOrder,
    WorkerpoolAuthorization,
    WorkerpoolOrder,
    enclave_message,
    result_hash,
    result_seal,
    sign_enclave,
    sign_typed,
)

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
ZERO = "0x0000000000000000000000000000000000000000"
CATEGORIES = (("XS", 300), ("S", 1200), ("M", 3600), ("L", 10800), ("XL", 36000))
DEAL_ABI = (
    "(address,address,uint256,address,address,uint256,address,address,uint256,address,address,"
    "address,uint256,uint256,uint256,uint256,bytes32,uint256,uint256,uint256,uint256)"
)
DEAL_FIELDS = [
    "app",
    "app_owner",
    "app_price",
    "dataset",
    "dataset_owner",
    "dataset_price",
    "workerpool",
    "workerpool_owner",
    "workerpool_price",
    "requester",
    "beneficiary",
    "callback",
    "category",
    "time_ref",
    "start_time",
    "trust",
    "tag",
    "bot_first",
    "bot_size",
    "worker_stake",
    "scheduler_reward_ratio",
]
INITIAL_TOKENS = 10**24
INITIAL_DEPOSIT = 10**21


@dataclass(frozen=True)
class Actor:
    """An externally owned account with a private key (tests sign with it)."""

    name: str
    key: bytes

    @property
    def address(self) -> str:
        return str(Account.from_key(self.key).address)


def _key_for(name: str) -> bytes:
    """A deterministic test key per name, so failures are reproducible."""
    return keccak(b"decloud-test-actor:" + name.encode())


@dataclass
class Deal:
    """A matched deal as the Hub hashes it (the tuple) plus its id."""

    dealid: bytes
    fields: tuple[Any, ...]

    def __getattr__(self, name: str) -> Any:
        if name in DEAL_FIELDS:
            return self.fields[DEAL_FIELDS.index(name)]
        raise AttributeError(name)


@dataclass
class Protocol:
    """Deployed contracts and the parties of a marketplace."""

    token: Any
    apps: Any
    datasets: Any
    workerpools: Any
    hub: Any
    marketplace: Any
    admin: str
    actors: dict[str, Actor] = field(default_factory=dict)
    app: str = ZERO
    tee_app: str = ZERO
    dataset: str = ZERO
    workerpool: str = ZERO

    @property
    def domain(self) -> Eip712Domain:
        return Eip712Domain(
            chain_id=boa.env.evm.patch.chain_id, verifying_contract=str(self.hub.address)
        )

    def __getitem__(self, name: str) -> Actor:
        return self.actors[name]

    # --- accounts -----------------------------------------------------------------

    def add_actor(self, name: str, deposit: int = INITIAL_DEPOSIT) -> Actor:
        who = Actor(name, _key_for(name))
        self.actors[name] = who
        self.token.mint(who.address, INITIAL_TOKENS, sender=self.admin)
        self.token.approve(self.hub.address, 2**256 - 1, sender=who.address)
        if deposit:
            self.hub.deposit(deposit, sender=who.address)
        return who

    def account(self, who: str | Actor) -> tuple[int, int, int]:
        address = who.address if isinstance(who, Actor) else who
        return tuple(self.hub.viewAccount(address))  # type: ignore[return-value]

    # --- orders -------------------------------------------------------------------

    def app_order(self, **overrides: Any) -> AppOrder:
        base = AppOrder(
            app=self.app,
            appprice=10,
            volume=1000,
            tag=NO_TAG,
            datasetrestrict=ZERO,
            workerpoolrestrict=ZERO,
            requesterrestrict=ZERO,
            salt=_salt(),
        )
        return replace(base, **overrides)

    def dataset_order(self, **overrides: Any) -> DatasetOrder:
        base = DatasetOrder(
            dataset=self.dataset,
            datasetprice=5,
            volume=1000,
            tag=NO_TAG,
            apprestrict=ZERO,
            workerpoolrestrict=ZERO,
            requesterrestrict=ZERO,
            salt=_salt(),
        )
        return replace(base, **overrides)

    def workerpool_order(self, **overrides: Any) -> WorkerpoolOrder:
        base = WorkerpoolOrder(
            workerpool=self.workerpool,
            workerpoolprice=100,
            volume=1000,
            tag=NO_TAG,
            category=0,
            trust=100,
            apprestrict=ZERO,
            datasetrestrict=ZERO,
            requesterrestrict=ZERO,
            salt=_salt(),
        )
        return replace(base, **overrides)

    def request_order(self, **overrides: Any) -> RequestOrder:
        requester = self.actors["requester"].address
        base = RequestOrder(
            app=self.app,
            appmaxprice=10,
            dataset=ZERO,
            datasetmaxprice=0,
            workerpool=ZERO,
            workerpoolmaxprice=100,
            requester=requester,
            volume=1,
            tag=NO_TAG,
            category=0,
            trust=3,
            beneficiary=requester,
            callback=ZERO,
            params='{"iexec_args":"--size 64"}',
            salt=_salt(),
        )
        return replace(base, **overrides)

    def sign(self, order: Any, signer: str) -> bytes:
        return sign_typed(order, self.domain, self.actors[signer].key)

    def match(
        self,
        app_order: AppOrder | None = None,
        dataset_order: DatasetOrder | None = None,
        workerpool_order: WorkerpoolOrder | None = None,
        request_order: RequestOrder | None = None,
        signatures: dict[str, bytes] | None = None,
        sender: str | None = None,
    ) -> Deal:
        """Signs (unless signatures are given) and matches four orders; returns the deal."""
        app_order = app_order or self.app_order()
        request_order = request_order or self.request_order()
        dataset_order = dataset_order or empty_dataset_order()
        workerpool_order = workerpool_order or self.workerpool_order()
        sigs = {
            "app": self.sign(app_order, "app_owner"),
            "dataset": self.sign(dataset_order, "dataset_owner")
            if dataset_order.dataset != ZERO
            else b"",
            "workerpool": self.sign(workerpool_order, "pool_owner"),
            "request": self.sign(request_order, "requester"),
        }
        sigs.update(signatures or {})
        self.marketplace.matchOrders(
            app_order.as_tuple(),
            sigs["app"],
            dataset_order.as_tuple(),
            sigs["dataset"],
            workerpool_order.as_tuple(),
            sigs["workerpool"],
            request_order.as_tuple(),
            sigs["request"],
            sender=sender or self.actors["requester"].address,
        )
        created = [e for e in self.marketplace.get_logs() if type(e).__name__ == "DealCreated"]
        event = created[-1]
        return Deal(bytes(event.dealid), decode([DEAL_ABI], event.deal)[0])

    # --- tasks --------------------------------------------------------------------

    def authorize(self, deal: Deal, index: int, worker: str, enclave: str = ZERO) -> bytes:
        taskid = self.task_id(deal, index)
        auth = WorkerpoolAuthorization(
            worker=self.actors[worker].address, taskid=taskid, enclaveChallenge=enclave
        )
        return sign_typed(auth, self.domain, self.actors["pool_owner"].key)

    def task_id(self, deal: Deal, index: int) -> bytes:
        return bytes(self.hub.taskId(deal.dealid, index))

    def contribute(
        self, deal: Deal, index: int, worker: str, digest: bytes, enclave: Actor | None = None
    ) -> None:
        taskid = self.task_id(deal, index)
        address = self.actors[worker].address
        hash_, seal = result_hash(taskid, digest), result_seal(address, taskid, digest)
        enclave_address, enclave_sign = ZERO, b""
        if enclave is not None:
            enclave_address = enclave.address
            enclave_sign = sign_enclave(enclave_message(hash_, seal), enclave.key)
        self.hub.contribute(
            deal.dealid,
            deal.fields,
            index,
            hash_,
            seal,
            enclave_address,
            enclave_sign,
            self.authorize(deal, index, worker, enclave_address),
            sender=address,
        )

    def reveal(self, deal: Deal, index: int, worker: str, digest: bytes) -> None:
        self.hub.reveal(self.task_id(deal, index), digest, sender=self.actors[worker].address)

    def contributors(self, deal: Deal, index: int, workers: list[str]) -> list[str]:
        return sorted((self.actors[w].address for w in workers), key=lambda a: int(a, 16))

    def finalize(
        self,
        deal: Deal,
        index: int,
        workers: list[str],
        results: bytes = b"ipfs://result",
        callback_data: bytes = b"",
    ) -> None:
        self.hub.finalize(
            deal.dealid,
            deal.fields,
            index,
            self.contributors(deal, index, workers),
            results,
            callback_data,
            sender=self.actors["pool_owner"].address,
        )

    def contribute_and_finalize(
        self,
        deal: Deal,
        index: int,
        worker: str,
        digest: bytes,
        enclave: Actor | None = None,
        callback_data: bytes = b"",
    ) -> None:
        taskid = self.task_id(deal, index)
        address = self.actors[worker].address
        enclave_address, enclave_sign = ZERO, b""
        if enclave is not None:
            hash_, seal = result_hash(taskid, digest), result_seal(address, taskid, digest)
            enclave_address = enclave.address
            enclave_sign = sign_enclave(enclave_message(hash_, seal), enclave.key)
        self.hub.contributeAndFinalize(
            deal.dealid,
            deal.fields,
            index,
            digest,
            b"ipfs://result",
            callback_data,
            enclave_address,
            enclave_sign,
            self.authorize(deal, index, worker, enclave_address),
            sender=address,
        )

    def hub_balance_matches(self) -> bool:
        """The conservation invariant over every known account."""
        total = sum(self.account(a)[0] + self.account(a)[1] for a in self.actors.values())
        return self.token.balanceOf(self.hub.address) == total + self.hub.kitty()

    # --- helpers added for the contract unit tests ----------------------------------

    def ensure_actor(self, name: str, deposit: int = INITIAL_DEPOSIT) -> Actor:
        """The actor `name`, funded now unless its key already holds tokens on this chain
        (an actor created in a rolled-back test exists in `actors` but not on chain)."""
        who = self.actors.get(name)
        if who is not None and self.token.balanceOf(who.address) > 0:
            return who
        return self.add_actor(name, deposit)

    def hub_balance_matches_with(self, *accounts: str) -> bool:
        """The conservation invariant over every actor plus other accounts (contract wallets)."""
        addresses = {str(a.address) for a in self.actors.values()} | {str(a) for a in accounts}
        total = sum(sum(self.account(address)[:2]) for address in addresses)
        return self.token.balanceOf(self.hub.address) == total + self.hub.kitty()

    def balances(self) -> dict[str, tuple[int, int]]:
        """(free, locked) of every actor, to compare before and after a call."""
        return {name: self.account(who)[:2] for name, who in self.actors.items()}

    def changes(self, before: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """Per actor, the (free, locked) change since `before`; actors that did not move are
        left out, so a test states every movement exactly."""
        moved = {}
        for name, (free, locked) in self.balances().items():
            old_free, old_locked = before.get(name, (0, 0))
            if (free - old_free, locked - old_locked) != (0, 0):
                moved[name] = (free - old_free, locked - old_locked)
        return moved

    def reopen(self, deal: Deal, index: int, digest: bytes, workers: list[str]) -> None:
        """The scheduler reopens a task whose consensus on `digest` nobody revealed."""
        consensus = result_hash(self.task_id(deal, index), digest)
        self.hub.reopen(
            deal.dealid,
            deal.fields,
            index,
            consensus,
            self.contributors(deal, index, workers),
            sender=self.actors["pool_owner"].address,
        )

    def claim(self, deal: Deal, index: int, workers: list[str], sender: str | None = None) -> None:
        """Anyone claims a failed task after its final deadline."""
        self.hub.claim(
            deal.dealid,
            deal.fields,
            index,
            self.contributors(deal, index, workers),
            sender=sender or self.actors["requester"].address,
        )

    def task(self, deal: Deal, index: int) -> Any:
        """The unpacked task (status, contributors, reveals, winners, deadlines, weight)."""
        return self.hub.viewTask(self.task_id(deal, index))


def empty_dataset_order() -> DatasetOrder:
    return DatasetOrder(
        dataset=ZERO,
        datasetprice=0,
        volume=0,
        tag=NO_TAG,
        apprestrict=ZERO,
        workerpoolrestrict=ZERO,
        requesterrestrict=ZERO,
        salt=bytes(32),
    )


_salt_counter = [0]


def _salt() -> bytes:
    _salt_counter[0] += 1
    return _salt_counter[0].to_bytes(32, "big")


@functools.cache
def _deployer(name: str) -> Any:
    """Compile a contract once per test session: boa.load re-analyses the sources (seconds)
    on every call, and every test module deploys the whole protocol."""
    path = CONTRACTS / f"{name}.vy"
    return boa.loads_partial(path.read_text(), name=path.stem, filename=str(path))


def load(name: str, *args: Any) -> Any:
    return _deployer(name).deploy(*args)


def load_at(address: str, name: str, *args: Any) -> Any:
    """Deploys a contract at a fixed address, e.g. a hub at the verifyingContract of
    signatures computed elsewhere."""
    return _deployer(name).deploy(*args, override_address=address)


def load_test_contract(name: str, *args: Any) -> Any:
    """Deploys a test-only contract of contracts/test (callbacks, wallets, groups, stubs)."""
    return load(f"test/{name}", *args)


def deploy(
    actors: tuple[str, ...] = (
        "requester",
        "app_owner",
        "dataset_owner",
        "pool_owner",
        "worker1",
        "worker2",
        "worker3",
        "worker4",
    ),
) -> Protocol:
    """Deploys the whole protocol and registers one app, one TEE app, one dataset, one pool."""
    admin = boa.env.generate_address("admin")
    with boa.env.prank(admin):
        token = load("Token", "decloud test token", "DCT", 18)
        apps = load("AppRegistry")
        datasets = load("DatasetRegistry")
        workerpools = load("WorkerpoolRegistry")
        hub = load("Hub", token.address)
        marketplace = load(
            "Marketplace", hub.address, apps.address, datasets.address, workerpools.address
        )
        hub.setMarketplace(marketplace.address)
        for name, time_ref in CATEGORIES:
            marketplace.createCategory(name, f"category {name}", time_ref)
    protocol = Protocol(token, apps, datasets, workerpools, hub, marketplace, admin)
    for name in actors:
        protocol.add_actor(name)
    app_owner = protocol["app_owner"].address
    protocol.app = apps.createApp(
        app_owner, "mandelbrot", 1, "ipfs://app", b"\x01" * 32, b"", sender=app_owner
    )
    protocol.tee_app = apps.createApp(
        app_owner, "sealed", 0, "registry/sealed:1", b"\x02" * 32, b"mrenclave", sender=app_owner
    )
    dataset_owner = protocol["dataset_owner"].address
    protocol.dataset = datasets.createDataset(
        dataset_owner, "pixels", "ipfs://data", b"\x03" * 32, sender=dataset_owner
    )
    pool_owner = protocol["pool_owner"].address
    protocol.workerpool = workerpools.createWorkerpool(pool_owner, "pool", sender=pool_owner)
    return protocol
