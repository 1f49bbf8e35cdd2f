"""The chain client against a real anvil: deploy, transact, nonces, reverts, registries."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from decloud.chain import (
    DEFAULT_CATEGORIES,
    Anvil,
    AnvilError,
    App,
    AppRegistry,
    AppType,
    ChainClient,
    ChainEvent,
    ContractRevert,
    Dataset,
    DatasetRegistry,
    Deployment,
    EscrowError,
    EventStream,
    HubError,
    JsonCursorStore,
    MatchError,
    NodeUnavailable,
    RegistryError,
    Token,
    TokenError,
    TransactionFailed,
    Workerpool,
    WorkerpoolRegistry,
    compile_contract,
    revert_error,
)

pytestmark = pytest.mark.anvil

CHECKSUM = bytes.fromhex("11" * 32)


def test_dev_keys_are_the_accounts_anvil_funds(anvil: Anvil, client: ChainClient) -> None:
    node_accounts = [Web3.to_checksum_address(a) for a in anvil.rpc("eth_accounts")]

    assert [Account.from_key(key).address for key in anvil.private_keys] == node_accounts
    assert client.chain_id == 31337
    assert client.w3.eth.get_balance(client.address) > 0


def test_anvil_with_a_block_time_mines_on_its_own_and_stops() -> None:
    with Anvil(block_time=0.1) as node:
        url = node.rpc_url
        client = ChainClient(url, node.private_keys[0])
        first = client.w3.eth.block_number
        deadline = time.monotonic() + 5
        while client.w3.eth.block_number < first + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.w3.eth.block_number >= first + 2

    with pytest.raises(NodeUnavailable):
        _ = ChainClient(url, node.private_keys[0]).chain_id


def test_mint_and_transfer_move_tokens(client: ChainClient, token: Token) -> None:
    someone = Web3.to_checksum_address("0x" + "42" * 20)

    minted = token.mint(client.address, 1_000)
    sent = token.transfer(someone, 300)

    assert token.balance_of(client.address) == 700
    assert token.balance_of(someone) == 300
    transfer = sent.event("Transfer")
    assert transfer.args == {"sender": client.address, "receiver": someone, "value": 300}
    assert sent.block_number > minted.block_number
    assert 0 < sent.gas_used < 100_000
    approval = token.approve(someone, 5).event("Approval")
    assert approval.args == {"owner": client.address, "spender": someone, "value": 5}


def test_concurrent_sends_from_one_account_all_land(client: ChainClient, token: Token) -> None:
    token.mint(client.address, 10_000)
    recipients = [Web3.to_checksum_address(f"0x{index:040x}") for index in range(1, 9)]

    def pay_five_times(recipient: str) -> list[int]:
        return [token.transfer(recipient, 10).block_number for _ in range(5)]

    with ThreadPoolExecutor(max_workers=len(recipients)) as pool:
        blocks = [block for mined in pool.map(pay_five_times, recipients) for block in mined]

    assert len(blocks) == 40 and all(block > 0 for block in blocks)
    assert all(token.balance_of(recipient) == 50 for recipient in recipients)
    assert token.balance_of(client.address) == 10_000 - 400


def test_nonce_manager_resyncs_when_another_sender_used_the_account(
    anvil: Anvil, client_for: Callable[[int], ChainClient]
) -> None:
    first, second = client_for(3), client_for(3)
    token = Token(first, first.deploy(compile_contract("Token"), "t", "T", 18).address)
    token.mint(first.address, 100)

    Token(second, token.address).transfer(second.address, 1)  # uses the nonce `first` expects

    assert token.transfer(first.address, 1).block_number > 0


def test_revert_on_estimate_raises_the_area_exception_with_its_reason(
    app_registry: AppRegistry,
) -> None:
    app_registry.create_app("echo", AppType.WASM, "ipfs://echo", CHECKSUM)

    with pytest.raises(RegistryError) as raised:
        app_registry.create_app("echo", AppType.WASM, "ipfs://echo", CHECKSUM)

    assert raised.value.reason == "app: already registered"
    assert raised.value.area == "app"
    assert raised.value.call == "createApp"
    assert "app: already registered" in str(raised.value)


def test_revert_of_a_mined_transaction_is_explained_by_replaying_it(
    client: ChainClient, app_registry: AppRegistry
) -> None:
    app_registry.create_app("echo", AppType.OCI, "docker.io/echo", CHECKSUM)
    duplicate = app_registry.contract.functions.createApp(
        client.address, "echo", 0, "docker.io/echo", CHECKSUM, b""
    )

    with pytest.raises(RegistryError, match="app: already registered"):
        client.transact(duplicate, gas=500_000)  # no estimate: the revert happens on-chain


def test_token_errors_are_token_errors(client: ChainClient, token: Token) -> None:
    with pytest.raises(TokenError, match="erc20: transfer amount exceeds balance"):
        token.transfer(Web3.to_checksum_address("0x" + "42" * 20), 1)


def test_reverts_in_view_calls_are_translated(app_registry: AppRegistry) -> None:
    with pytest.raises(RegistryError, match="erc721: invalid token ID"):
        app_registry.owner_of("0x" + "00" * 19 + "01")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("escrow: free balance too low", EscrowError),
        ("match: category mismatch", MatchError),
        ("workerpool: caller is not the owner", RegistryError),
        ("hub: marketplace already set", HubError),
        ("", ContractRevert),
    ],
)
def test_revert_reason_prefix_picks_the_exception(
    reason: str, expected: type[ContractRevert]
) -> None:
    error = revert_error(reason)

    assert type(error) is expected
    assert error.reason == reason


def test_registries_record_and_transfer_resources(
    client: ChainClient,
    client_for: Callable[[int], ChainClient],
    app_registry: AppRegistry,
    dataset_registry: DatasetRegistry,
    workerpool_registry: WorkerpoolRegistry,
) -> None:
    buyer = client_for(1).address
    app = app_registry.create_app("tee", AppType.OCI, "docker.io/tee", CHECKSUM, b"\x01")
    dataset = dataset_registry.create_dataset("weather", "ipfs://weather", CHECKSUM)
    pool = workerpool_registry.create_workerpool("fast pool")

    assert app_registry.app(app) == App(app, "tee", AppType.OCI, "docker.io/tee", CHECKSUM, b"\x01")
    assert app_registry.app(buyer) is None
    assert dataset_registry.dataset(dataset) == Dataset(
        dataset, "weather", "ipfs://weather", CHECKSUM
    )
    assert workerpool_registry.workerpool(pool) == Workerpool(pool, "fast pool", 30, 1)

    workerpool_registry.set_workerpool_policy(pool, 50, 10)
    assert workerpool_registry.workerpool(pool) == Workerpool(pool, "fast pool", 50, 10)

    app_registry.transfer(app, buyer)
    assert app_registry.owner_of(app) == buyer
    assert dataset_registry.owner_of(dataset) == client.address


def test_only_the_owner_sets_a_workerpool_policy(
    client_for: Callable[[int], ChainClient], workerpool_registry: WorkerpoolRegistry
) -> None:
    pool = workerpool_registry.create_workerpool("my pool")
    stranger = WorkerpoolRegistry(client_for(2), workerpool_registry.address)

    with pytest.raises(RegistryError, match="workerpool: caller is not the owner"):
        stranger.set_workerpool_policy(pool, 50, 10)


def test_unreachable_node_raises_node_unavailable(anvil: Anvil) -> None:
    closed = ChainClient("http://127.0.0.1:9", anvil.private_keys[0])

    with pytest.raises(NodeUnavailable):
        _ = closed.chain_id


def test_transaction_stuck_behind_a_dropped_one_times_out_then_the_nonce_resyncs(
    anvil: Anvil,
) -> None:
    sender = ChainClient(anvil.rpc_url, anvil.private_keys[4], receipt_timeout=0.3)
    token = Token(sender, sender.deploy(compile_contract("Token"), "t", "T", 18).address)
    snapshot = anvil.snapshot()
    token.mint(sender.address, 1)
    anvil.revert(snapshot)  # the mint is dropped, but the client's nonce counted it

    with pytest.raises(TransactionFailed, match="not mined within"):
        token.mint(sender.address, 10)  # queued by the node behind the missing nonce

    token.mint(sender.address, 100)  # fills the gap, which releases the queued mint
    assert token.balance_of(sender.address) == 110


def test_anvil_helpers_move_time_and_blocks(anvil: Anvil, client: ChainClient) -> None:
    before = client.w3.eth.get_block("latest")
    snapshot = anvil.snapshot()

    anvil.evm_increase_time(3_600)
    anvil.evm_mine(3)

    after = client.w3.eth.get_block("latest")
    assert after["number"] == before["number"] + 3
    assert after["timestamp"] >= before["timestamp"] + 3_600
    anvil.revert(snapshot)
    assert client.w3.eth.block_number == before["number"]


def test_anvil_that_cannot_start_says_why() -> None:
    with pytest.raises(AnvilError, match="exited with status"), Anvil(binary=Path("/bin/false")):
        pass


def test_deploy_protocol_creates_the_default_categories(
    client: ChainClient, deployment: Deployment, tmp_path: Path
) -> None:
    saved = tmp_path / "deployment.json"
    deployment.save(saved)
    assert Deployment.load(saved) == deployment
    assert deployment.chain_id == 31337

    marketplace = client.contract("Marketplace", deployment.marketplace)
    stream = EventStream(marketplace, JsonCursorStore(tmp_path / "cursors.json"), name="market")
    created = [
        event
        for event in stream.poll()
        if isinstance(event, ChainEvent) and event.name == "CategoryCreated"
    ]

    assert [(event.args["category"], event.args["name"]) for event in created] == [
        (index, category.name) for index, category in enumerate(DEFAULT_CATEGORIES)
    ]


def test_a_deployment_records_a_block_no_later_than_its_first_contract(
    client: ChainClient, deployment: Deployment
) -> None:
    token_creation = client.w3.eth.get_transaction_receipt(
        client.w3.eth.get_block(deployment.deployed_at + 1)["transactions"][0]
    )

    assert token_creation["contractAddress"] == deployment.token
    assert Deployment.from_json({**deployment.to_json(), "deployed_at": 0}).deployed_at == 0
    older_file = {key: value for key, value in deployment.to_json().items() if key != "deployed_at"}
    assert Deployment.from_json(older_file).deployed_at == 0, "a file from before still loads"
