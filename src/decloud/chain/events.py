"""Contract events, decoded, in block order, from a persisted and reorg-safe cursor.

The market and the scheduler keep their databases in step with the chain by following the
hub's events. They must survive restarts (the cursor is persisted) and reorganizations: a
block already delivered can be replaced by another one. The cursor therefore remembers the
hash of the last block it processed and of a few earlier ones; each poll first checks them
against the chain, and when they differ it rewinds to the newest block both chains share
and yields a `Reorg` so the consumer can undo what it learnt from the dropped blocks.

Delivery is at least once: the cursor is saved only after the consumer has taken every
event of a block range, so a consumer stopped halfway sees those events again.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractEvent
from web3.exceptions import BlockNotFound
from web3.types import BlockData, LogReceipt

from decloud.chain.errors import ChainError, reaching_node


@dataclass(frozen=True)
class ChainEvent:
    """One decoded event log."""

    name: str
    args: Mapping[str, Any]
    address: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Reorg:
    """The chain replaced blocks already delivered: undo every event of block `from_block`
    and later; the events of the new chain follow."""

    from_block: int


@dataclass(frozen=True)
class BlockRef:
    """A block as it was when it was processed."""

    number: int
    hash: str


@dataclass(frozen=True)
class Cursor:
    """Where a stream stands: the next block to read and the last processed blocks.

    `recent` holds consecutive blocks, oldest first, ending with block `next_block - 1`
    (empty before the first poll).
    """

    next_block: int
    recent: tuple[BlockRef, ...] = ()

    def advanced_to(self, processed: Sequence[BlockRef], window: int) -> Cursor:
        """The cursor after processing blocks up to `processed[-1]`, remembering the last
        `window` of them."""
        return Cursor(
            next_block=processed[-1].number + 1, recent=(*self.recent, *processed)[-window:]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "next_block": self.next_block,
            "recent": [[block.number, block.hash] for block in self.recent],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cursor:
        return cls(
            next_block=int(data["next_block"]),
            recent=tuple(BlockRef(int(number), str(hash_)) for number, hash_ in data["recent"]),
        )


class ReorgTooDeep(ChainError):
    """None of the blocks the cursor remembers is on the chain any more."""


class CursorStore(Protocol):
    """Where streams persist their cursors, by stream name."""

    def load(self, stream: str) -> Cursor | None: ...

    def save(self, stream: str, cursor: Cursor) -> None: ...


class JsonCursorStore:
    """Cursors of any number of streams in one JSON file, replaced atomically on save."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self, stream: str) -> Cursor | None:
        with self._lock:
            saved = self._read().get(stream)
        return None if saved is None else Cursor.from_json(saved)

    def save(self, stream: str, cursor: Cursor) -> None:
        with self._lock:
            cursors = self._read()
            cursors[stream] = cursor.to_json()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, delete=False, suffix=".tmp"
            ) as tmp:
                json.dump(cursors, tmp)
            os.replace(tmp.name, self.path)

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        loaded: dict[str, Any] = json.loads(self.path.read_text())
        return loaded


class EventDecoder:
    """Turns raw logs of known contracts into `ChainEvent`s, by address and topic."""

    def __init__(self, contracts: Sequence[Contract] = ()) -> None:
        self._events: dict[tuple[str, str], ContractEvent] = {}
        for contract in contracts:
            self.add(contract)

    def add(self, contract: Contract) -> None:
        for event in contract.all_events():
            self._events[(contract.address, event.topic)] = event

    def decode(self, log: LogReceipt) -> ChainEvent | None:
        """The decoded event, or None for a log of an unknown contract or event."""
        if not log["topics"]:
            return None
        event = self._events.get((log["address"], log["topics"][0].to_0x_hex()))
        if event is None:
            return None
        decoded = event.process_log(log)
        return ChainEvent(
            name=decoded["event"],
            args=dict(decoded["args"]),
            address=decoded["address"],
            block_number=decoded["blockNumber"],
            block_hash=decoded["blockHash"].to_0x_hex(),
            tx_hash=decoded["transactionHash"].to_0x_hex(),
            log_index=decoded["logIndex"],
        )


class EventStream:
    """The events of one contract, polled from a cursor persisted under `name`.

    `confirmations` keeps the stream that many blocks behind the head, where reorgs are
    unlikely (0 on anvil, where there are none unless a test makes one); reorgs deeper
    than that are still detected and reported, down to `window` blocks.
    """

    def __init__(
        self,
        contract: Contract,
        store: CursorStore,
        *,
        name: str,
        start_block: int = 0,
        confirmations: int = 0,
        window: int = 64,
        max_blocks_per_query: int = 2_000,
    ) -> None:
        self.name = name
        self._w3: Web3 = contract.w3
        self._address = contract.address
        self._decoder = EventDecoder([contract])
        self._store = store
        self._start_block = start_block
        self._confirmations = confirmations
        self._window = window
        self._max_blocks = max_blocks_per_query

    def poll(self) -> Iterator[ChainEvent | Reorg]:
        """Everything that happened since the last poll, oldest first, then stop."""
        with reaching_node():
            try:
                yield from self._poll()
            except BlockNotFound:
                return  # the chain got shorter while we read it: the next poll rewinds

    def _poll(self) -> Iterator[ChainEvent | Reorg]:
        cursor = self._store.load(self.name) or Cursor(next_block=self._start_block)
        head = self._w3.eth.block_number
        rewound = self._rewound_if_reorganized(cursor, head)
        if rewound is not None:
            yield Reorg(from_block=rewound.next_block)
            cursor = rewound
            self._store.save(self.name, cursor)
        safe_head = head - self._confirmations
        while cursor.next_block <= safe_head:
            last = min(safe_head, cursor.next_block + self._max_blocks - 1)
            remembered = self._blocks(
                list(range(max(cursor.next_block, last - self._window + 1), last + 1))
            )
            logs = self._w3.eth.get_logs(
                {"address": self._address, "fromBlock": cursor.next_block, "toBlock": last}
            )
            if self._blocks([last]) != remembered[-1:]:
                return  # the logs may mix two chains: the next poll rewinds and reads again
            yield from self._decoded(logs)
            cursor = cursor.advanced_to(remembered, self._window)
            self._store.save(self.name, cursor)

    def _rewound_if_reorganized(self, cursor: Cursor, head: int) -> Cursor | None:
        """The cursor rewound to the newest remembered block still on the chain, or None
        when the last processed block is still there (hence every block before it)."""
        if not cursor.recent:
            return None
        last = cursor.recent[-1]
        if last.number <= head and self._blocks([last.number]) == [last]:
            return None
        candidates = [block for block in cursor.recent if block.number <= head]
        on_chain = self._blocks([block.number for block in candidates])
        for index in reversed(range(len(candidates))):
            if on_chain[index] == candidates[index]:
                return Cursor(
                    next_block=candidates[index].number + 1, recent=cursor.recent[: index + 1]
                )
        raise ReorgTooDeep(
            f"stream {self.name!r}: the chain changed below block {cursor.recent[0].number}, "
            "the oldest block it remembers; follow it again from an earlier block with an "
            "empty cursor, or use a larger window"
        )

    def _decoded(self, logs: Sequence[LogReceipt]) -> list[ChainEvent]:
        ordered = sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"]))
        return [event for log in ordered if (event := self._decoder.decode(log)) is not None]

    def _blocks(self, numbers: Sequence[int]) -> list[BlockRef]:
        """The blocks of the chain as it is now, in one request; raises BlockNotFound if
        the chain is shorter."""
        if not numbers:
            return []
        with self._w3.batch_requests() as batch:
            for number in numbers:
                batch.add(self._w3.eth.get_block(number))
            # Each batched get_block answers with formatted block data.
            blocks = cast(list[BlockData], batch.execute())
        return [BlockRef(block["number"], HexBytes(block["hash"]).to_0x_hex()) for block in blocks]
