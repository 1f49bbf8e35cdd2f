"""A throwaway local chain: the pinned anvil binary, on loopback and a free port.

Tests, the devnet and benchmarks all need a real EVM node they can start in a fraction of a
second, fast-forward in time and rewind. `Anvil` starts one as a child process, waits until
it answers JSON-RPC and stops it by its own PID. The binary comes from the repository's npm
dependencies (`package.json` pins its version) so every machine runs the same anvil.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from eth_account import Account

from decloud.chain.errors import ChainError, NodeUnavailable
from decloud.process import Child

# Anvil's own defaults, so that the keys we derive are the accounts it funds.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID = 31337
DEFAULT_ACCOUNTS = 10

# src/decloud/chain/anvil.py -> the repository root of an editable install.
_SOURCE_CHECKOUT = Path(__file__).resolve().parents[3]
_HOST = "127.0.0.1"


class AnvilError(ChainError):
    """Anvil could not be found or started."""


def find_anvil() -> Path:
    """The anvil binary: `DECLOUD_ANVIL`, else the repository's npm package, else PATH."""
    configured = os.environ.get("DECLOUD_ANVIL")
    if configured:
        return Path(configured)
    bundled = sorted(_SOURCE_CHECKOUT.glob("node_modules/@foundry-rs/anvil-*/bin/anvil"))
    if bundled:
        return bundled[0]
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise AnvilError("anvil not found: run `npm ci` in the repository root, or set DECLOUD_ANVIL")


def dev_private_keys(
    count: int = DEFAULT_ACCOUNTS, mnemonic: str = DEFAULT_MNEMONIC
) -> tuple[str, ...]:
    """The private keys anvil funds at start: BIP-44 accounts m/44'/60'/0'/0/i."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}").key.to_0x_hex()
        for index in range(count)
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        return int(probe.getsockname()[1])


class Anvil:
    """An anvil node owned by this process; use it as a context manager.

    With `block_time` unset anvil mines one block per transaction (automine), which is what
    most tests want; set it to get blocks at a steady pace like a real chain.
    """

    def __init__(
        self,
        *,
        block_time: float | None = None,
        chain_id: int = DEFAULT_CHAIN_ID,
        accounts: int = DEFAULT_ACCOUNTS,
        mnemonic: str = DEFAULT_MNEMONIC,
        binary: Path | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.block_time = block_time
        self.chain_id = chain_id
        self.private_keys = dev_private_keys(accounts, mnemonic)
        self._mnemonic = mnemonic
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._port = 0
        self._child: Child | None = None

    @property
    def rpc_url(self) -> str:
        if self._child is None:
            raise AnvilError("anvil is not running")
        return f"http://{_HOST}:{self._port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start anvil and return once it answers JSON-RPC."""
        if self._child is not None:
            raise AnvilError("anvil is already running")
        self._port = _free_port()
        self._child = Child("anvil", self._command(), AnvilError)
        try:
            self._child.wait_until_ready(self._answers, self._startup_timeout, self.rpc_url)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop anvil (terminate, then kill if it does not exit in time)."""
        child, self._child = self._child, None
        if child is not None:
            child.stop(self._stop_timeout)

    def _command(self) -> list[str]:
        command = [
            str(self._binary or find_anvil()),
            "--host",
            _HOST,
            "--port",
            str(self._port),
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(len(self.private_keys)),
            "--mnemonic",
            self._mnemonic,
            "--silent",
        ]
        if self.block_time is not None:
            command += ["--block-time", str(self.block_time)]
        return command

    def _answers(self) -> bool:
        try:
            self.rpc("eth_chainId")
        except NodeUnavailable:
            return False
        return True

    def rpc(self, method: str, *params: Any) -> Any:
        """One raw JSON-RPC call, for the anvil- and evm-specific methods web3 lacks."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        request = urllib.request.Request(
            self.rpc_url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = json.load(response)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise NodeUnavailable(f"anvil at {self.rpc_url} is unreachable: {error}") from error
        if "error" in answer:
            raise AnvilError(f"{method} failed: {answer['error']}")
        return answer["result"]

    def evm_increase_time(self, seconds: int) -> None:
        """Move the clock of the next block forward, e.g. past a task's deadline."""
        self.rpc("evm_increaseTime", seconds)

    def evm_mine(self, blocks: int = 1) -> None:
        """Mine `blocks` empty blocks."""
        for _ in range(blocks):
            self.rpc("evm_mine")

    def snapshot(self) -> str:
        """Remember the chain state; `revert(snapshot_id)` goes back to it."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        """Go back to a snapshot, dropping every block mined since (a reorg to consumers).

        A snapshot can be reverted to only once, as in anvil.
        """
        if not self.rpc("evm_revert", snapshot_id):
            raise AnvilError(f"no snapshot {snapshot_id} to revert to")
