"""The ethers v6 vectors of tests/vectors/protocol.json, reproduced by the contracts.

The vectors were signed for a hub at 0x5FbDB2315678afecb367f032d93F642f64180aa3 on chain
31337 (the first contract anvil deploys), so the hub is deployed at exactly that address on
that chain id. The vector orders name fixed resource ids (app 0x...a9901), which the real
registries cannot mint, so the Marketplace here reads a stub registry that declares the
vector keys the owners of those ids: every check of matchOrders runs unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boa
import pytest
from eth_abi import decode
from eth_utils import keccak

from decloud.protocol import (
    AppOrder,
    DatasetOrder,
    Eip712Domain,
    Eip712Struct,
    RequestOrder,
    WorkerpoolAuthorization,
    WorkerpoolOrder,
    enclave_message,
    result_hash,
    result_seal,
    sign_enclave,
    sign_typed,
)
from tests.contracts.harness import CATEGORIES, DEAL_ABI, Deal, load, load_at, load_test_contract

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "protocol.json").read_text()
)
DOMAIN = Eip712Domain(
    chain_id=VECTORS["domain"]["chainId"],
    verifying_contract=VECTORS["domain"]["verifyingContract"],
)
KEYS = {role: bytes.fromhex(key[2:]) for role, key in VECTORS["keys"].items()}
ADDRESSES = VECTORS["addresses"]
ORDER_TYPES: dict[str, type[Eip712Struct]] = {
    "AppOrder": AppOrder,
    "DatasetOrder": DatasetOrder,
    "WorkerpoolOrder": WorkerpoolOrder,
    "RequestOrder": RequestOrder,
}
HASHERS = {
    "AppOrder": "hashAppOrder",
    "DatasetOrder": "hashDatasetOrder",
    "WorkerpoolOrder": "hashWorkerpoolOrder",
    "RequestOrder": "hashRequestOrder",
}
CONTRIBUTION = VECTORS["contribution"]


def hex_bytes(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def vector_order(name: str) -> Any:
    return ORDER_TYPES[name].from_message(VECTORS["orders"][name]["message"])


def vector_signature(name: str) -> bytes:
    return hex_bytes(VECTORS["orders"][name]["signature"])


@dataclass
class VectorChain:
    """The hub at the vector address, its marketplace, and the vector parties funded."""

    token: Any
    hub: Any
    marketplace: Any
    admin: str

    def fund(self, account: str, amount: int) -> None:
        self.token.mint(self.admin, amount, sender=self.admin)
        self.token.approve(self.hub.address, amount, sender=self.admin)
        self.hub.depositFor(account, amount, sender=self.admin)

    def match(self, orders: dict[str, Any], signatures: dict[str, bytes]) -> Deal:
        self.marketplace.matchOrders(
            orders["AppOrder"].as_tuple(),
            signatures["AppOrder"],
            orders["DatasetOrder"].as_tuple(),
            signatures["DatasetOrder"],
            orders["WorkerpoolOrder"].as_tuple(),
            signatures["WorkerpoolOrder"],
            orders["RequestOrder"].as_tuple(),
            signatures["RequestOrder"],
            sender=self.admin,
        )
        created = [e for e in self.marketplace.get_logs() if type(e).__name__ == "DealCreated"]
        return Deal(bytes(created[-1].dealid), decode([DEAL_ABI], created[-1].deal)[0])

    def match_vector_orders(self) -> Deal:
        return self.match(
            {name: vector_order(name) for name in ORDER_TYPES},
            {name: vector_signature(name) for name in ORDER_TYPES},
        )

    def authorization(self, worker: str, taskid: bytes, enclave: str) -> bytes:
        auth = WorkerpoolAuthorization(worker=worker, taskid=taskid, enclaveChallenge=enclave)
        return sign_typed(auth, DOMAIN, KEYS["workerpoolOwner"])


@pytest.fixture(scope="module")
def _vector_chain() -> Iterator[VectorChain]:
    with boa.env.anchor():
        boa.env.evm.patch.chain_id = DOMAIN.chain_id
        admin = boa.env.generate_address("vector admin")
        with boa.env.prank(admin):
            token = load("Token", "vector token", "VT", 18)
            hub = load_at(DOMAIN.verifying_contract, "Hub", token.address)
            registry = load_test_contract("StubRegistry")
            marketplace = load(
                "Marketplace", hub.address, registry.address, registry.address, registry.address
            )
            hub.setMarketplace(marketplace.address)
            for name, time_ref in CATEGORIES:
                marketplace.createCategory(name, f"category {name}", time_ref)
            orders = VECTORS["orders"]
            registry.setOwner(orders["AppOrder"]["message"]["app"], ADDRESSES["appOwner"], True)
            registry.setOwner(
                orders["DatasetOrder"]["message"]["dataset"], ADDRESSES["datasetOwner"], False
            )
            registry.setOwner(
                orders["WorkerpoolOrder"]["message"]["workerpool"],
                ADDRESSES["workerpoolOwner"],
                False,
            )
        chain = VectorChain(token, hub, marketplace, admin)
        for role in ("requester", "workerpoolOwner", "worker"):
            chain.fund(ADDRESSES[role], 10**12)
        yield chain


@pytest.fixture
def chain(_vector_chain: VectorChain) -> Iterator[VectorChain]:
    with boa.env.anchor():
        yield _vector_chain


def test_hub_sits_at_the_vector_address_and_chain(chain: VectorChain) -> None:
    _, name, version, chain_id, verifying_contract, _, _ = chain.hub.eip712Domain()
    assert (name, version, chain_id) == ("decloud", "1", 31337)
    assert verifying_contract == VECTORS["domain"]["verifyingContract"]
    assert DOMAIN.separator() == hex_bytes(VECTORS["domainSeparator"])


@pytest.mark.parametrize("name", list(ORDER_TYPES))
def test_marketplace_digest_equals_the_vector_digest(chain: VectorChain, name: str) -> None:
    digest = getattr(chain.marketplace, HASHERS[name])(vector_order(name).as_tuple())
    assert bytes(digest) == hex_bytes(VECTORS["orders"][name]["digest"])


@pytest.mark.parametrize("name", list(ORDER_TYPES))
@pytest.mark.parametrize("form", ["signature", "compactSignature"])
def test_vector_signature_verifies_on_chain(chain: VectorChain, name: str, form: str) -> None:
    vector = VECTORS["orders"][name]
    signature = hex_bytes(vector[form])
    digest = hex_bytes(vector["digest"])
    assert chain.marketplace.verifySignature(vector["signer"], digest, signature)
    assert not chain.marketplace.verifySignature(ADDRESSES["worker"], digest, signature)


def test_vector_authorization_signature_verifies_on_chain(chain: VectorChain) -> None:
    authorization = CONTRIBUTION["authorization"]
    assert chain.marketplace.verifySignature(
        authorization["signer"],
        hex_bytes(authorization["digest"]),
        hex_bytes(authorization["signature"]),
    )


@pytest.mark.parametrize("deal", VECTORS["ids"], ids=lambda d: f"consumed{d['consumedBefore']}")
def test_hub_task_ids_equal_the_vector_task_ids(chain: VectorChain, deal: dict[str, Any]) -> None:
    for task in deal["tasks"]:
        assert bytes(chain.hub.taskId(hex_bytes(deal["dealid"]), task["index"])) == hex_bytes(
            task["taskid"]
        )


def test_matching_the_vector_orders_opens_the_vector_deal(chain: VectorChain) -> None:
    """The four ethers-signed orders match as they are; the deal id and its three task ids
    are the vector's."""
    deal = chain.match_vector_orders()
    vector = VECTORS["ids"][0]
    assert deal.dealid == hex_bytes(vector["dealid"])
    assert (deal.bot_first, deal.bot_size, deal.trust, deal.category) == (0, 3, 3, 2)
    for task in vector["tasks"]:
        assert bytes(chain.hub.taskId(deal.dealid, task["index"])) == hex_bytes(task["taskid"])


def test_a_request_filled_by_two_deals_gets_the_vector_deal_ids(chain: VectorChain) -> None:
    orders = {name: vector_order(name) for name in ORDER_TYPES}
    signatures = {name: vector_signature(name) for name in ORDER_TYPES}
    small_pool = replace(orders["WorkerpoolOrder"], volume=2)
    first = chain.match(
        {**orders, "WorkerpoolOrder": small_pool},
        {**signatures, "WorkerpoolOrder": sign_typed(small_pool, DOMAIN, KEYS["workerpoolOwner"])},
    )
    second = chain.match(orders, signatures)
    assert first.dealid == hex_bytes(VECTORS["ids"][0]["dealid"])
    assert second.dealid == hex_bytes(VECTORS["ids"][1]["dealid"])
    assert (second.bot_first, second.bot_size) == (2, 1)
    assert bytes(chain.hub.taskId(second.dealid, 2)) == hex_bytes(
        VECTORS["ids"][1]["tasks"][0]["taskid"]
    )


def test_vector_contribution_passes_the_hub_checks(chain: VectorChain) -> None:
    """The vector worker contributes with the vector result hash and seal, the vector enclave
    signature and the vector authorization; a second worker reaches the trust-3 consensus and
    the vector worker reveals the vector digest."""
    deal = chain.match_vector_orders()
    taskid = hex_bytes(CONTRIBUTION["taskid"])
    enclave = CONTRIBUTION["enclave"]
    worker = CONTRIBUTION["worker"]
    chain.hub.contribute(
        deal.dealid,
        deal.fields,
        0,
        hex_bytes(CONTRIBUTION["resultHash"]),
        hex_bytes(CONTRIBUTION["resultSeal"]),
        enclave["challenge"],
        hex_bytes(enclave["signature"]),
        hex_bytes(CONTRIBUTION["authorization"]["signature"]),
        sender=worker,
    )
    assert tuple(chain.hub.viewContribution(taskid, worker)) == (
        1,
        2,
        hex_bytes(CONTRIBUTION["resultHash"]),
    )

    digest = hex_bytes(CONTRIBUTION["resultDigest"])
    second = boa.env.generate_address("second worker")
    chain.fund(second, 10**12)
    hash_, seal = result_hash(taskid, digest), result_seal(second, taskid, digest)
    chain.hub.contribute(
        deal.dealid,
        deal.fields,
        0,
        hash_,
        seal,
        enclave["challenge"],
        sign_enclave(enclave_message(hash_, seal), KEYS["enclave"]),
        chain.authorization(second, taskid, enclave["challenge"]),
        sender=second,
    )
    assert chain.hub.viewTask(taskid).status == 2
    chain.hub.reveal(taskid, digest, sender=worker)
    assert chain.hub.viewContribution(taskid, worker)[0] == 2


def test_vector_callback_digest_is_accepted_on_chain(chain: VectorChain) -> None:
    """A trust-1 request with a callback, finalized in one transaction with the vector data:
    the hub checks keccak256(data) against the result digest and forwards the data."""
    receiver = load_test_contract("ResultReceiver")
    data = hex_bytes(VECTORS["callbackDigest"]["data"])
    digest = hex_bytes(VECTORS["callbackDigest"]["digest"])
    assert keccak(data) == digest
    request = replace(
        vector_order("RequestOrder"), trust=1, volume=1, callback=str(receiver.address)
    )
    orders = {**{name: vector_order(name) for name in ORDER_TYPES}, "RequestOrder": request}
    signatures = {
        **{name: vector_signature(name) for name in ORDER_TYPES},
        "RequestOrder": sign_typed(request, DOMAIN, KEYS["requester"]),
    }
    deal = chain.match(orders, signatures)
    worker, enclave = CONTRIBUTION["worker"], CONTRIBUTION["enclave"]["challenge"]
    taskid = bytes(chain.hub.taskId(deal.dealid, 0))
    message = enclave_message(result_hash(taskid, digest), result_seal(worker, taskid, digest))
    chain.hub.contributeAndFinalize(
        deal.dealid,
        deal.fields,
        0,
        digest,
        b"ipfs://result",
        data,
        enclave,
        sign_enclave(message, KEYS["enclave"]),
        chain.authorization(worker, taskid, enclave),
        sender=worker,
    )
    assert (bytes(receiver.last_taskid()), receiver.last_data()) == (taskid, data)
