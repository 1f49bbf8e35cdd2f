"""Deals made up for tests that need no chain: rows as the chain watcher would store them."""

from __future__ import annotations

from decloud.protocol.hub import Deal
from decloud.scheduler.models import DealRow
from decloud.scheduler.state import DealMatched
from decloud.scheduler.store import hex32, terms_of
from tests.scheduler.scenario import START, T

ZERO = "0x0000000000000000000000000000000000000000"
POOL = "0x00000000000000000000000000000000000000F0"
REQUESTER = "0x00000000000000000000000000000000000000E0"


def made_up_deal(dealid: bytes, trust: int, size: int) -> Deal:
    return Deal(
        app="0x00000000000000000000000000000000000000A0", app_owner=ZERO, app_price=1,
        dataset=ZERO, dataset_owner=ZERO, dataset_price=0, workerpool=POOL,
        workerpool_owner=ZERO, workerpool_price=3, requester=REQUESTER, beneficiary=REQUESTER,
        callback=ZERO, category=0, time_ref=T, start_time=START, trust=trust, tag=bytes(32),
        bot_first=0, bot_size=size, worker_stake=1, scheduler_reward_ratio=1,
    )  # fmt: skip


def deal_row(dealid: bytes, trust: int = 3, size: int = 1) -> DealRow:
    deal = made_up_deal(dealid, trust, size)
    return DealRow(
        dealid=hex32(dealid), workerpool=POOL, requester=REQUESTER, deal=deal.encode(),
        params="{}", app_type="WASM", app_multiaddr="ipfs://app.wasm",
        app_checksum=hex32(b"\x11" * 32), app_mrenclave="", dataset_multiaddr="",
        dataset_checksum=hex32(bytes(32)), tee=False, gpu=False, trust=trust, time_ref=T,
        start_time=START, block_number=1,
    )  # fmt: skip


def matched(row: DealRow, now: float, size: int) -> DealMatched:
    return DealMatched(now=now, terms=terms_of(row), first_index=0, size=size)
