"""What the chain client asks of the node: each request costs CPU on both sides, so a
transaction asks only what it needs, and requests go where the environment says."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from decloud.chain import Anvil, ChainClient, Token, compile_contract

ACCOUNT = 6
"""An anvil dev account no other chain test sends from, so that nonces never interfere."""


class Relay:
    """An HTTP relay in front of anvil that counts the JSON-RPC methods it forwards. It also
    serves as an HTTP proxy: a proxied request names the target in its path, ignored here."""

    def __init__(self, anvil: Anvil) -> None:
        self.methods: Counter[str] = Counter()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                relay.methods[json.loads(body)["method"]] += 1
                answer = httpx.post(
                    anvil.rpc_url,
                    content=body,
                    headers={"Content-Type": "application/json"},
                    trust_env=False,  # the proxy the test sets is this relay
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a test's output is not the place for an access log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def relay(anvil: Anvil) -> Iterator[Relay]:
    relay = Relay(anvil)
    yield relay
    relay.close()


def test_a_transaction_asks_the_node_four_things_and_the_chain_id_only_once(
    anvil: Anvil, relay: Relay
) -> None:
    client = ChainClient(relay.url, anvil.private_keys[ACCOUNT])
    token = Token(client, client.deploy(compile_contract("Token"), "t", "T", 18).address)
    token.mint(client.address, 1)
    relay.methods.clear()

    for _ in range(3):
        token.mint(client.address, 1)
    assert token.balance_of(client.address) == 4

    assert relay.methods["eth_chainId"] == 0  # web3 checks it on every call: from a cache
    assert relay.methods["eth_getBlockByNumber"] == 3  # the base fee
    assert relay.methods["eth_estimateGas"] == 3
    assert relay.methods["eth_sendRawTransaction"] == 3
    assert relay.methods["eth_call"] == 1
    # Polled for: normally there at once, but the node mines a moment after it answers.
    assert 3 <= relay.methods["eth_getTransactionReceipt"] <= 6


def test_the_node_is_reached_through_the_proxy_the_environment_names(
    anvil: Anvil, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, relay.url)
    client = ChainClient("http://chain.invalid:8545", anvil.private_keys[ACCOUNT])

    assert client.chain_id == anvil.chain_id
    assert relay.methods["eth_chainId"] >= 1
