"""How the market reads the chain: digests, JSON-RPC batches, and reads cached per block."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from decloud.chain.errors import NodeUnavailable
from decloud.chain.localnet import LocalMarket
from decloud.market.book import ORDER_TYPES, AnyOrder
from decloud.market.chain import MarketChain
from decloud.market.hashing import order_digest
from decloud.market.models import OrderKind
from decloud.market.rpc import JsonRpc, RpcError
from decloud.protocol.orders import Eip712Domain

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "protocol.json").read_text())
_VALUES = {
    "address": st.binary(min_size=20, max_size=20).map(lambda b: str(to_checksum_address(b))),
    "uint256": st.integers(min_value=0, max_value=2**256 - 1),
    "bytes32": st.binary(min_size=32, max_size=32),
    "string": st.text(st.characters(codec="utf-8"), max_size=300),
}


def test_order_digests_are_the_vectors_of_an_independent_implementation() -> None:
    vector = VECTORS["domain"]
    domain = Eip712Domain(
        vector["chainId"], vector["verifyingContract"], vector["name"], vector["version"]
    )
    for order_type in ORDER_TYPES.values():
        vector = VECTORS["orders"][order_type.__name__]
        order = order_type.from_message(vector["message"])
        assert "0x" + order_digest(order, domain.separator()).hex() == vector["digest"]


@st.composite
def any_order(draw: st.DrawFn) -> AnyOrder:
    order_type = draw(st.sampled_from(list(ORDER_TYPES.values())))
    values: dict[str, Any] = {name: draw(_VALUES[abi]) for name, abi in order_type.FIELDS}
    return order_type(**values)


@settings(max_examples=200, deadline=None)
@given(order=any_order(), chain_id=st.integers(min_value=0, max_value=2**64))
def test_order_digests_are_those_of_the_protocol(order: AnyOrder, chain_id: int) -> None:
    domain = Eip712Domain(chain_id, str(to_checksum_address("0x" + "ab" * 20)))
    assert order_digest(order, domain.separator()) == order.digest(domain)


class _Node(BaseHTTPRequestHandler):
    """Answers each JSON-RPC call with its method's canned result, then closes the
    connection without saying so, as a node does with an idle kept-alive connection."""

    protocol_version = "HTTP/1.1"
    results: ClassVar[dict[str, Any]] = {}

    def do_POST(self) -> None:
        calls = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answers = [self._answer(call) for call in calls]
        body = json.dumps(answers).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _answer(self, call: dict[str, Any]) -> dict[str, Any]:
        result = self.results.get(call["method"])
        if result is None:
            return {
                "jsonrpc": "2.0",
                "id": call["id"],
                "error": {"code": -32601, "message": "no such method"},
            }
        return {"jsonrpc": "2.0", "id": call["id"], "result": result}  # fmt: skip

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def node() -> Iterator[str]:
    _Node.results = {"eth_blockNumber": "0x2a", "eth_chainId": "0x7a69"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Node)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_batch_answers_each_call_in_order_even_after_the_node_dropped_the_connection(
    node: str,
) -> None:
    rpc = JsonRpc(node)
    assert rpc.batch([("eth_chainId", []), ("eth_blockNumber", [])]) == ["0x7a69", "0x2a"]
    assert rpc.call("eth_blockNumber", []) == "0x2a"


def test_a_refused_call_and_an_unreachable_node_are_chain_errors(node: str) -> None:
    with pytest.raises(RpcError, match=r"eth_getCode.*no such method"):
        JsonRpc(node).batch([("eth_blockNumber", []), ("eth_getCode", [])])
    with pytest.raises(NodeUnavailable):
        JsonRpc("http://127.0.0.1:9", timeout=1).call("eth_blockNumber", [])
    with pytest.raises(ValueError, match="http"):
        JsonRpc("ws://127.0.0.1:8546")


def test_views_of_one_block_share_their_reads_and_a_new_block_reads_again(
    local: LocalMarket, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = MarketChain(local.rpc_url, local.deployment)
    sent: list[int] = []
    send = chain.rpc.batch

    def counted(calls: list[Any]) -> list[Any]:
        sent.append(len(calls))
        return send(calls)

    monkeypatch.setattr(chain.rpc, "batch", counted)
    pool_owner = local["pool_owner"]
    first = chain.view()
    first.prefetch([chain.reads.owner(OrderKind.WORKERPOOL, local.workerpool),
                    chain.reads.free_balance(pool_owner.address)])  # fmt: skip
    assert chain.view().owner_of(OrderKind.WORKERPOOL, local.workerpool) == pool_owner.address
    assert chain.view().free_balance(pool_owner.address) == first.free_balance(pool_owner.address)
    assert sent == [1, 2, 1, 1]  # a head, the two reads; then heads only

    pool_owner.hub.deposit(1)
    later = chain.view()
    assert later.number > first.number
    assert later.free_balance(pool_owner.address) == first.free_balance(pool_owner.address) + 1
    assert sent[-2:] == [1, 1]  # its head, then the balance read again
