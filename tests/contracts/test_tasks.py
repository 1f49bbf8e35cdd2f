"""The task lifecycle: initialize, contribute, reveal, reopen, finalize, claim and
contributeAndFinalize, with every revert and the exact money each step moves.

Harness defaults: app price 10, workerpool price 100, worker stake 30 (30 %), workerpool stake
30 (30 %), scheduler ratio 1 %, category 0 (T = 300 s). Deadlines: contribution start + 7T,
reveal consensus + 2T, final start + 10T.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boa
import pytest

from decloud.protocol import (
    TEE,
    WorkerpoolAuthorization,
    enclave_message,
    result_hash,
    result_seal,
    sign_enclave,
    sign_typed,
)
from tests.contracts.harness import ZERO, Actor, Deal, Protocol

T = 300
GOOD, BAD = b"\x01" * 32, b"\x02" * 32
UNSET, ACTIVE, REVEALING, COMPLETED, FAILED = range(5)
CONTRIBUTED, PROVEN, REJECTED = 1, 2, 3


@pytest.fixture(autouse=True)
def _hub_holds_every_balance(protocol: Protocol) -> Iterator[None]:
    """After every test: tokens held by the hub == free + locked of every actor + kitty."""
    yield
    assert protocol.hub_balance_matches()


def travel_to(deal: Deal, multiple_of_t: int, offset: int = 0) -> None:
    """Moves the clock to the deal's start + multiple_of_t * T + offset."""
    boa.env.time_travel(seconds=deal.start_time + multiple_of_t * T + offset - boa.env.timestamp)


def match(protocol: Protocol, trust: int = 3, **request: Any) -> Deal:
    return protocol.match(request_order=protocol.request_order(trust=trust, **request))


def tee_deal(protocol: Protocol, trust: int = 3) -> Deal:
    return protocol.match(
        app_order=protocol.app_order(app=protocol.tee_app),
        workerpool_order=protocol.workerpool_order(tag=TEE),
        request_order=protocol.request_order(app=protocol.tee_app, tag=TEE, trust=trust),
    )


def contribute_raw(
    protocol: Protocol,
    deal: Deal,
    worker: str,
    digest: bytes = GOOD,
    *,
    index: int = 0,
    seal: bytes | None = None,
    result: bytes | None = None,
    enclave: str = ZERO,
    enclave_sign: bytes = b"",
    authorization: bytes | None = None,
) -> None:
    """contribute with every argument under the test's control (defaults: a valid vote)."""
    taskid = protocol.task_id(deal, index)
    address = protocol[worker].address
    protocol.hub.contribute(
        deal.dealid,
        deal.fields,
        index,
        result if result is not None else result_hash(taskid, digest),
        seal if seal is not None else result_seal(address, taskid, digest),
        enclave,
        enclave_sign,
        authorization
        if authorization is not None
        else protocol.authorize(deal, index, worker, enclave),
        sender=address,
    )


def authorization_by(
    protocol: Protocol, signer: Actor, worker: str, taskid: bytes, enclave: str = ZERO
) -> bytes:
    auth = WorkerpoolAuthorization(
        worker=protocol[worker].address, taskid=taskid, enclaveChallenge=enclave
    )
    return sign_typed(auth, protocol.domain, signer.key)


def reach_consensus(
    protocol: Protocol, deal: Deal, workers: list[str], digest: bytes = GOOD
) -> None:
    for worker in workers:
        protocol.contribute(deal, 0, worker, digest)
    assert protocol.task(deal, 0).status == REVEALING


# --- initialize ---------------------------------------------------------------------------


def test_initialize_opens_the_task(protocol: Protocol) -> None:
    deal = match(protocol)
    taskid = protocol.hub.initialize(deal.dealid, deal.fields, 0)
    event = protocol.hub.get_logs()[-1]
    assert taskid == protocol.task_id(deal, 0)
    assert type(event).__name__ == "TaskInitialize" and event.index == 0
    task = protocol.task(deal, 0)
    assert (task.status, task.contributors, task.contribution_deadline) == (
        ACTIVE,
        0,
        deal.start_time + 7 * T,
    )


def test_initialize_twice_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.hub.initialize(deal.dealid, deal.fields, 0)
    with boa.reverts("task: already initialized"):
        protocol.hub.initialize(deal.dealid, deal.fields, 0)


def test_initialize_after_a_contribution_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker1", GOOD)
    with boa.reverts("task: already initialized"):
        protocol.hub.initialize(deal.dealid, deal.fields, 0)


def test_initialize_after_the_contribution_deadline_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    travel_to(deal, 7)
    with boa.reverts("task: contribution deadline passed"):
        protocol.hub.initialize(deal.dealid, deal.fields, 0)


def test_first_contribution_initializes_the_task(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker1", GOOD)
    names = [type(e).__name__ for e in protocol.hub.get_logs()]
    assert names == ["TaskInitialize", "Lock", "TaskContribute"]
    assert protocol.task(deal, 0).contribution_deadline == deal.start_time + 7 * T


# --- unknown deals and indexes, for every task entry point --------------------------------


def call_with(
    protocol: Protocol, entry: str, deal: Deal, dealid: bytes, fields: tuple[Any, ...], index: int
) -> None:
    pool, worker = protocol["pool_owner"].address, protocol["worker1"].address
    if entry == "initialize":
        protocol.hub.initialize(dealid, fields, index)
    elif entry == "contribute":
        taskid = protocol.hub.taskId(dealid, index)
        protocol.hub.contribute(
            dealid,
            fields,
            index,
            result_hash(taskid, GOOD),
            result_seal(worker, taskid, GOOD),
            ZERO,
            b"",
            authorization_by(protocol, protocol["pool_owner"], "worker1", taskid),
            sender=worker,
        )
    elif entry == "reopen":
        protocol.hub.reopen(dealid, fields, index, GOOD, [], sender=pool)
    elif entry == "finalize":
        protocol.hub.finalize(dealid, fields, index, [], b"", b"", sender=pool)
    elif entry == "claim":
        travel_to(deal, 10)
        protocol.hub.claim(dealid, fields, index, [])
    else:
        taskid = protocol.hub.taskId(dealid, index)
        protocol.hub.contributeAndFinalize(
            dealid,
            fields,
            index,
            GOOD,
            b"",
            b"",
            ZERO,
            b"",
            authorization_by(protocol, protocol["pool_owner"], "worker1", taskid),
            sender=worker,
        )


ENTRY_POINTS = ["initialize", "contribute", "reopen", "finalize", "claim", "contributeAndFinalize"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_unknown_deal_is_refused(protocol: Protocol, entry: str) -> None:
    deal = match(protocol, trust=1)
    tampered = list(deal.fields)
    tampered[8] = 1  # a cheaper workerpool price than the one matched
    with boa.reverts("task: unknown deal"):
        call_with(protocol, entry, deal, deal.dealid, tuple(tampered), 0)
    with boa.reverts("task: unknown deal"):
        call_with(protocol, entry, deal, b"\x42" * 32, deal.fields, 0)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_index_outside_the_deal_is_refused(protocol: Protocol, entry: str) -> None:
    request = protocol.request_order(trust=1, volume=4)
    first = protocol.match(
        workerpool_order=protocol.workerpool_order(volume=2), request_order=request
    )
    second = protocol.match(request_order=request)
    assert (second.bot_first, second.bot_size) == (2, 2)
    for deal, index in ((first, 2), (second, 1), (second, 4)):
        with boa.reverts("task: index outside the deal"):
            call_with(protocol, entry, deal, deal.dealid, deal.fields, index)


# --- contribute ---------------------------------------------------------------------------


def test_contribution_locks_the_stake_and_records_the_vote(protocol: Protocol) -> None:
    deal = match(protocol)
    taskid = protocol.task_id(deal, 0)
    before = protocol.balances()
    protocol.contribute(deal, 0, "worker1", GOOD)
    contribute = protocol.hub.get_logs()[-1]
    assert protocol.changes(before) == {"worker1": (-30, 30)}
    assert protocol.hub_balance_matches()
    hash_ = result_hash(taskid, GOOD)
    assert tuple(protocol.hub.viewContribution(taskid, protocol["worker1"].address)) == (
        CONTRIBUTED,
        2,
        hash_,
    )
    assert tuple(protocol.hub.viewGroup(taskid, hash_)) == (2, 1, False)
    assert (contribute.weight, bytes(contribute.result_hash)) == (2, hash_)
    task = protocol.task(deal, 0)
    assert (task.status, task.contributors, task.total_weight) == (ACTIVE, 1, 2)


def test_contribution_after_consensus_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    with boa.reverts("task: not accepting contributions"):
        protocol.contribute(deal, 0, "worker3", GOOD)


def test_contribution_after_the_deadline_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker1", GOOD)
    travel_to(deal, 7, -1)
    protocol.contribute(deal, 0, "worker2", BAD)
    travel_to(deal, 7)
    with boa.reverts("task: contribution deadline passed"):
        protocol.contribute(deal, 0, "worker3", GOOD)


def test_first_contribution_after_the_deadline_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    travel_to(deal, 7)
    with boa.reverts("task: contribution deadline passed"):
        protocol.contribute(deal, 0, "worker1", GOOD)


def test_contributors_are_capped_at_32(protocol: Protocol) -> None:
    deal = match(protocol, trust=100)
    assert protocol.hub.MAX_CONTRIBUTORS() == 32
    for i in range(33):
        protocol.ensure_actor(f"crowd{i}")
    for i in range(32):
        protocol.contribute(deal, 0, f"crowd{i}", i.to_bytes(32, "big"))
    assert protocol.task(deal, 0).contributors == 32
    with boa.reverts("task: contributor cap reached"):
        protocol.contribute(deal, 0, "crowd32", GOOD)


def test_second_contribution_of_a_worker_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker1", GOOD)
    with boa.reverts("task: worker already contributed"):
        protocol.contribute(deal, 0, "worker1", BAD)


def test_empty_result_hash_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    with boa.reverts("task: empty result hash"):
        contribute_raw(protocol, deal, "worker1", result=bytes(32))


def test_worker_needs_the_scheduler_s_authorization(protocol: Protocol) -> None:
    deal = match(protocol)
    taskid = protocol.task_id(deal, 0)
    other_task = protocol.hub.taskId(deal.dealid, 1)
    forged = {
        "signed by a stranger": authorization_by(protocol, protocol["worker2"], "worker1", taskid),
        "for another worker": authorization_by(protocol, protocol["pool_owner"], "worker2", taskid),
        "for another task": authorization_by(
            protocol, protocol["pool_owner"], "worker1", other_task
        ),
        "for an enclave": authorization_by(
            protocol, protocol["pool_owner"], "worker1", taskid, protocol["worker4"].address
        ),
        "missing": b"",
    }
    for name, authorization in forged.items():
        with boa.reverts("task: worker not authorized by the scheduler"):
            contribute_raw(protocol, deal, "worker1", authorization=authorization)
        assert protocol.task(deal, 0).status == UNSET, name


def test_tee_task_needs_an_enclave_challenge(protocol: Protocol) -> None:
    deal = tee_deal(protocol)
    with boa.reverts("task: TEE task needs an enclave challenge"):
        contribute_raw(protocol, deal, "worker1")


def test_enclave_must_sign_the_contribution(protocol: Protocol) -> None:
    deal = tee_deal(protocol)
    enclave, impostor = protocol.ensure_actor("enclave", 0), protocol["worker4"]
    taskid = protocol.task_id(deal, 0)
    worker = protocol["worker1"].address
    message = enclave_message(result_hash(taskid, GOOD), result_seal(worker, taskid, GOOD))
    other_message = enclave_message(result_hash(taskid, BAD), result_seal(worker, taskid, BAD))
    for enclave_sign in (
        sign_enclave(message, impostor.key),
        sign_enclave(other_message, enclave.key),
        b"",
        bytes(65),
    ):
        with boa.reverts("task: invalid enclave signature"):
            contribute_raw(
                protocol, deal, "worker1", enclave=enclave.address, enclave_sign=enclave_sign
            )
    protocol.contribute(deal, 0, "worker1", GOOD, enclave=enclave)
    assert protocol.task(deal, 0).contributors == 1


def test_enclave_signature_is_checked_on_standard_tasks_too(protocol: Protocol) -> None:
    deal = match(protocol)
    with boa.reverts("task: invalid enclave signature"):
        contribute_raw(
            protocol, deal, "worker1", enclave=protocol["worker4"].address, enclave_sign=b""
        )


def test_worker_without_the_stake_cannot_contribute(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.ensure_actor("poor", deposit=29)
    with boa.reverts("escrow: worker free balance too low for the stake"):
        protocol.contribute(deal, 0, "poor", GOOD)
    protocol.hub.deposit(1, sender=protocol["poor"].address)
    protocol.contribute(deal, 0, "poor", GOOD)
    assert protocol.account(protocol["poor"])[:2] == (0, 30)


# --- reveal -------------------------------------------------------------------------------


def test_reveal_proves_the_contribution(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    protocol.reveal(deal, 0, "worker1", GOOD)
    event = protocol.hub.get_logs()[-1]
    assert type(event).__name__ == "TaskReveal" and bytes(event.result_digest) == GOOD
    taskid = protocol.task_id(deal, 0)
    assert protocol.hub.viewContribution(taskid, protocol["worker1"].address)[0] == PROVEN
    task = protocol.task(deal, 0)
    assert (task.status, task.reveals, task.winners) == (REVEALING, 1, 2)


def test_reveal_before_consensus_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker1", GOOD)
    with boa.reverts("task: not in the reveal phase"):
        protocol.reveal(deal, 0, "worker1", GOOD)


def test_reveal_after_the_reveal_deadline_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    assert protocol.task(deal, 0).reveal_deadline == boa.env.timestamp + 2 * T
    boa.env.time_travel(seconds=2 * T - 1)
    protocol.reveal(deal, 0, "worker1", GOOD)
    boa.env.time_travel(seconds=1)
    with boa.reverts("task: reveal deadline passed"):
        protocol.reveal(deal, 0, "worker2", GOOD)


def test_reveal_by_a_stranger_or_twice_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    with boa.reverts("task: no pending contribution from this worker"):
        protocol.reveal(deal, 0, "worker3", GOOD)
    protocol.reveal(deal, 0, "worker1", GOOD)
    with boa.reverts("task: no pending contribution from this worker"):
        protocol.reveal(deal, 0, "worker1", GOOD)


def test_reveal_with_a_wrong_digest_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    with boa.reverts("task: digest does not match the result hash"):
        protocol.reveal(deal, 0, "worker1", BAD)


def test_copied_vote_cannot_be_revealed(protocol: Protocol) -> None:
    """worker2 copies worker1's vote and seal without knowing the digest: its seal names
    worker1, so even once it learns the digest it cannot prove the contribution."""
    deal = match(protocol)
    taskid = protocol.task_id(deal, 0)
    protocol.contribute(deal, 0, "worker1", GOOD)
    copied_seal = result_seal(protocol["worker1"].address, taskid, GOOD)
    contribute_raw(protocol, deal, "worker2", seal=copied_seal)
    protocol.reveal(deal, 0, "worker1", GOOD)
    with boa.reverts("task: digest does not match the result seal"):
        protocol.reveal(deal, 0, "worker2", GOOD)


def test_reveal_of_a_result_that_lost_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker3", BAD)
    reach_consensus(protocol, deal, ["worker1", "worker2", "worker4"])
    with boa.reverts("consensus: result is not the consensus"):
        protocol.reveal(deal, 0, "worker3", BAD)


# --- finalize -----------------------------------------------------------------------------


def test_finalize_pays_everyone(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    protocol.reveal(deal, 0, "worker1", GOOD)
    protocol.reveal(deal, 0, "worker2", GOOD)
    before = protocol.balances()
    protocol.finalize(deal, 0, ["worker1", "worker2"])
    names = [type(e).__name__ for e in protocol.hub.get_logs()]
    # Reward pool 100; workers' share 100 * 99 // 100 = 99, 49 each by equal weight; the
    # scheduler keeps 100 - 98 = 2 and gets its stake of 30 back.
    assert protocol.changes(before) == {
        "requester": (0, -110),
        "app_owner": (10, 0),
        "pool_owner": (32, -30),
        "worker1": (79, -30),
        "worker2": (79, -30),
    }
    assert protocol.hub_balance_matches()
    assert protocol.task(deal, 0).status == COMPLETED
    assert protocol.account(protocol["worker1"])[2] == 1
    assert names.count("AccurateContribution") == 2 and names[-1] == "TaskFinalize"


def test_finalize_pays_the_dataset_owner(protocol: Protocol) -> None:
    deal = protocol.match(
        dataset_order=protocol.dataset_order(),
        request_order=protocol.request_order(trust=1, dataset=protocol.dataset, datasetmaxprice=5),
    )
    protocol.contribute(deal, 0, "worker1", GOOD)
    protocol.reveal(deal, 0, "worker1", GOOD)
    before = protocol.balances()
    protocol.finalize(deal, 0, ["worker1"])
    assert protocol.changes(before) == {
        "requester": (0, -115),
        "app_owner": (10, 0),
        "dataset_owner": (5, 0),
        "pool_owner": (31, -30),
        "worker1": (129, -30),
    }
    assert protocol.account(protocol["worker1"])[2] == 0, "a lone contributor earns no score"
    assert protocol.hub_balance_matches()


def test_only_the_scheduler_finalizes(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    with boa.reverts("task: only the scheduler may finalize"):
        protocol.hub.finalize(
            deal.dealid,
            deal.fields,
            0,
            protocol.contributors(deal, 0, ["worker1", "worker2"]),
            b"",
            b"",
            sender=protocol["requester"].address,
        )


def test_finalize_without_consensus_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker1", GOOD)
    with boa.reverts("task: no consensus to finalize"):
        protocol.finalize(deal, 0, ["worker1"])


def test_finalize_twice_is_refused(protocol: Protocol) -> None:
    deal = match(protocol, trust=1)
    protocol.contribute(deal, 0, "worker1", GOOD)
    protocol.reveal(deal, 0, "worker1", GOOD)
    protocol.finalize(deal, 0, ["worker1"])
    with boa.reverts("task: no consensus to finalize"):
        protocol.finalize(deal, 0, ["worker1"])
    with boa.reverts("task: not accepting contributions"):
        protocol.contribute(deal, 0, "worker2", GOOD)


def test_finalize_waits_for_every_winner_until_the_reveal_deadline(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    protocol.reveal(deal, 0, "worker1", GOOD)
    with boa.reverts("task: winners still revealing"):
        protocol.finalize(deal, 0, ["worker1", "worker2"])


def test_finalize_needs_a_reveal_even_after_the_reveal_deadline(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    boa.env.time_travel(seconds=2 * T)
    with boa.reverts("task: winners still revealing"):
        protocol.finalize(deal, 0, ["worker1", "worker2"])


def test_silent_winner_loses_its_stake_at_finalize(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    protocol.reveal(deal, 0, "worker1", GOOD)
    boa.env.time_travel(seconds=2 * T)
    before = protocol.balances()
    protocol.finalize(deal, 0, ["worker1", "worker2"])
    # Reward pool 100 + 30 seized = 130; workers' share 130 * 99 // 100 = 128, all to worker1.
    assert protocol.changes(before) == {
        "requester": (0, -110),
        "app_owner": (10, 0),
        "pool_owner": (2 + 30, -30),
        "worker1": (128 + 30, -30),
        "worker2": (0, -30),
    }
    assert protocol.hub_balance_matches()
    assert protocol.account(protocol["worker1"])[2] == 1
    assert protocol.account(protocol["worker2"])[2] == 0


def test_finalize_after_the_final_deadline_is_refused(protocol: Protocol) -> None:
    deal = match(protocol, trust=1)
    protocol.contribute(deal, 0, "worker1", GOOD)
    protocol.reveal(deal, 0, "worker1", GOOD)
    travel_to(deal, 10)
    with boa.reverts("task: final deadline passed, claim instead"):
        protocol.finalize(deal, 0, ["worker1"])


def test_finalize_needs_every_contributor_sorted(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker3", BAD)
    reach_consensus(protocol, deal, ["worker1", "worker2", "worker4"])
    for worker in ("worker1", "worker2", "worker4"):
        protocol.reveal(deal, 0, worker, GOOD)
    everyone = protocol.contributors(deal, 0, ["worker1", "worker2", "worker3", "worker4"])
    pool = protocol["pool_owner"].address

    def finalize(contributors: list[str]) -> None:
        protocol.hub.finalize(deal.dealid, deal.fields, 0, contributors, b"", b"", sender=pool)

    with boa.reverts("task: contributors list incomplete"):
        finalize(everyone[:3])
    with boa.reverts("task: contributors not sorted"):
        finalize([everyone[1], everyone[0], *everyone[2:]])
    with boa.reverts("task: contributors not sorted"):
        finalize([everyone[0], everyone[0], *everyone[2:]])
    stranger = protocol["requester"].address
    others = sorted([*everyone[:3], stranger], key=lambda a: int(a, 16))
    with boa.reverts("task: not a contributor"):
        finalize(others)
    finalize(everyone)


# --- reopen -------------------------------------------------------------------------------


def silent_consensus(protocol: Protocol) -> Deal:
    """worker3 votes BAD, then worker1 and worker2 reach consensus on GOOD and stay silent
    until the reveal deadline."""
    deal = match(protocol, trust=3)
    protocol.contribute(deal, 0, "worker3", BAD)
    reach_consensus(protocol, deal, ["worker1", "worker2", "worker4"])
    boa.env.time_travel(seconds=2 * T)
    return deal


def test_reopen_rejects_the_silent_supporters(protocol: Protocol) -> None:
    deal = silent_consensus(protocol)
    taskid = protocol.task_id(deal, 0)
    protocol.reopen(deal, 0, GOOD, ["worker1", "worker2", "worker4"])
    event = protocol.hub.get_logs()[-1]
    task = protocol.task(deal, 0)
    assert (task.status, task.contributors, task.winners, task.reveals) == (ACTIVE, 4, 0, 0)
    assert task.total_weight == 2, "only worker3's group is left"
    assert type(event).__name__ == "TaskReopen"
    assert event.contribution_deadline == task.contribution_deadline == deal.start_time + 7 * T
    for worker in ("worker1", "worker2", "worker4"):
        assert protocol.hub.viewContribution(taskid, protocol[worker].address)[0] == REJECTED
    assert tuple(protocol.hub.viewGroup(taskid, result_hash(taskid, GOOD))) == (0, 0, False)


def test_only_the_scheduler_reopens(protocol: Protocol) -> None:
    deal = silent_consensus(protocol)
    with boa.reverts("task: only the scheduler may reopen"):
        protocol.hub.reopen(
            deal.dealid,
            deal.fields,
            0,
            result_hash(protocol.task_id(deal, 0), GOOD),
            [],
            sender=protocol["requester"].address,
        )


def test_reopen_without_consensus_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker1", GOOD)
    with boa.reverts("task: not in the reveal phase"):
        protocol.reopen(deal, 0, GOOD, ["worker1"])


def test_reopen_before_the_reveal_deadline_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    boa.env.time_travel(seconds=2 * T - 1)
    with boa.reverts("task: reveal deadline not reached"):
        protocol.reopen(deal, 0, GOOD, ["worker1", "worker2"])


def test_reopen_after_a_reveal_is_refused(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    protocol.reveal(deal, 0, "worker1", GOOD)
    boa.env.time_travel(seconds=2 * T)
    with boa.reverts("task: a winner revealed, finalize instead"):
        protocol.reopen(deal, 0, GOOD, ["worker1", "worker2"])


def test_reopen_checks_the_consensus_and_its_supporters(protocol: Protocol) -> None:
    deal = silent_consensus(protocol)
    supporters = protocol.contributors(deal, 0, ["worker1", "worker2", "worker4"])
    consensus = result_hash(protocol.task_id(deal, 0), GOOD)
    pool = protocol["pool_owner"].address

    def reopen(result: bytes, workers: list[str]) -> None:
        protocol.hub.reopen(deal.dealid, deal.fields, 0, result, workers, sender=pool)

    with boa.reverts("consensus: result is not the consensus"):
        protocol.reopen(deal, 0, BAD, ["worker3"])
    with boa.reverts("task: supporters list incomplete"):
        reopen(consensus, supporters[:2])
    with boa.reverts("task: contributors not sorted"):
        reopen(consensus, supporters[::-1])
    with boa.reverts("task: not a supporter of the consensus"):
        protocol.reopen(deal, 0, GOOD, ["worker1", "worker2", "worker3"])
    reopen(consensus, supporters)


def test_reopened_task_completes_with_new_contributors(protocol: Protocol) -> None:
    deal = silent_consensus(protocol)
    protocol.reopen(deal, 0, GOOD, ["worker1", "worker2", "worker4"])
    for name in ("worker5", "worker6", "worker7"):
        protocol.ensure_actor(name)
    # worker3's BAD group (weight 2) still counts: three new GOOD votes are needed.
    protocol.contribute(deal, 0, "worker5", GOOD)
    protocol.contribute(deal, 0, "worker6", GOOD)
    assert protocol.task(deal, 0).status == ACTIVE
    protocol.contribute(deal, 0, "worker7", GOOD)
    assert protocol.task(deal, 0).status == REVEALING
    with boa.reverts("task: no pending contribution from this worker"):
        protocol.reveal(deal, 0, "worker1", GOOD)
    for name in ("worker5", "worker6", "worker7"):
        protocol.reveal(deal, 0, name, GOOD)
    before = protocol.balances()
    everyone = ["worker1", "worker2", "worker3", "worker4", "worker5", "worker6", "worker7"]
    protocol.finalize(deal, 0, everyone)
    # Seized: 4 stakes of 30 (three rejected, one wrong) -> pool 100 + 120 = 220; workers'
    # share 220 * 99 // 100 = 217, 72 each (weight 2 of 6); the scheduler keeps 220 - 216.
    assert protocol.changes(before) == {
        "requester": (0, -110),
        "app_owner": (10, 0),
        "pool_owner": (4 + 30, -30),
        "worker1": (0, -30),
        "worker2": (0, -30),
        "worker3": (0, -30),
        "worker4": (0, -30),
        "worker5": (72 + 30, -30),
        "worker6": (72 + 30, -30),
        "worker7": (72 + 30, -30),
    }
    assert protocol.hub_balance_matches()


def test_reopen_extends_the_contribution_deadline(protocol: Protocol) -> None:
    deal = match(protocol)
    travel_to(deal, 6)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    travel_to(deal, 8)
    protocol.reopen(deal, 0, GOOD, ["worker1", "worker2"])
    assert protocol.task(deal, 0).contribution_deadline == deal.start_time + 8 * T
    travel_to(deal, 8, -1)
    protocol.contribute(deal, 0, "worker3", GOOD)
    travel_to(deal, 8)
    with boa.reverts("task: contribution deadline passed"):
        protocol.contribute(deal, 0, "worker4", GOOD)


def test_reopen_refuses_workers_rejected_by_an_earlier_reopen(protocol: Protocol) -> None:
    """After a second silent consensus on the same result, the scheduler names the workers
    rejected the first time instead of the new silent supporters. The hub must refuse:
    today it accepts, corrupts their contribution status (3 + 2 = 5) and leaves the new
    silent supporters unrejected, so at claim all of them get their stakes back."""
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    boa.env.time_travel(seconds=2 * T)
    protocol.reopen(deal, 0, GOOD, ["worker1", "worker2"])
    reach_consensus(protocol, deal, ["worker3", "worker4"])
    boa.env.time_travel(seconds=2 * T)
    with boa.reverts("task: not a supporter of the consensus"):
        protocol.reopen(deal, 0, GOOD, ["worker1", "worker2"])


# --- claim --------------------------------------------------------------------------------


def test_claim_refunds_the_requester_after_the_final_deadline(protocol: Protocol) -> None:
    deal = match(protocol)
    travel_to(deal, 10, -1)
    with boa.reverts("task: final deadline not reached"):
        protocol.claim(deal, 0, [])
    travel_to(deal, 10)
    before = protocol.balances()
    protocol.claim(deal, 0, [], sender=protocol["worker4"].address)
    events = [type(e).__name__ for e in protocol.hub.get_logs()]
    assert protocol.changes(before) == {"requester": (110, -110), "pool_owner": (0, -30)}
    assert protocol.hub.kitty() == 30
    assert protocol.hub_balance_matches()
    assert protocol.task(deal, 0).status == FAILED
    assert events == ["Seize", "KittyFill", "Unlock", "TaskClaimed"]
    with boa.reverts("task: already completed or claimed"):
        protocol.claim(deal, 0, [])


def test_claim_of_a_completed_task_is_refused(protocol: Protocol) -> None:
    deal = match(protocol, trust=1)
    protocol.contribute(deal, 0, "worker1", GOOD)
    protocol.reveal(deal, 0, "worker1", GOOD)
    protocol.finalize(deal, 0, ["worker1"])
    travel_to(deal, 10)
    with boa.reverts("task: already completed or claimed"):
        protocol.claim(deal, 0, ["worker1"])


def test_claim_seizes_silent_winners_and_frees_the_others(protocol: Protocol) -> None:
    deal = silent_consensus(protocol)
    travel_to(deal, 10)
    before = protocol.balances()
    protocol.claim(deal, 0, ["worker1", "worker2", "worker3", "worker4"])
    assert protocol.changes(before) == {
        "requester": (110, -110),
        "pool_owner": (0, -30),
        "worker1": (0, -30),
        "worker2": (0, -30),
        "worker3": (30, -30),
        "worker4": (0, -30),
    }
    assert protocol.hub.kitty() == 30 + 3 * 30
    assert protocol.hub_balance_matches()
    assert protocol.account(protocol["worker3"])[2] == 0


def test_claim_after_reopen_seizes_the_rejected(protocol: Protocol) -> None:
    deal = silent_consensus(protocol)
    protocol.reopen(deal, 0, GOOD, ["worker1", "worker2", "worker4"])
    travel_to(deal, 10)
    before = protocol.balances()
    protocol.claim(deal, 0, ["worker1", "worker2", "worker3", "worker4"])
    assert protocol.changes(before) == {
        "requester": (110, -110),
        "pool_owner": (0, -30),
        "worker1": (0, -30),
        "worker2": (0, -30),
        "worker3": (30, -30),
        "worker4": (0, -30),
    }
    assert protocol.hub.kitty() == 120
    assert protocol.hub_balance_matches()


def test_claim_frees_revealed_winners(protocol: Protocol) -> None:
    deal = match(protocol)
    reach_consensus(protocol, deal, ["worker1", "worker2"])
    protocol.reveal(deal, 0, "worker1", GOOD)
    travel_to(deal, 10)
    before = protocol.balances()
    protocol.claim(deal, 0, ["worker1", "worker2"])
    assert protocol.changes(before) == {
        "requester": (110, -110),
        "pool_owner": (0, -30),
        "worker1": (30, -30),
        "worker2": (0, -30),
    }
    assert protocol.hub.kitty() == 60
    assert protocol.hub_balance_matches()


def test_claim_needs_every_contributor_sorted(protocol: Protocol) -> None:
    deal = match(protocol)
    protocol.contribute(deal, 0, "worker1", GOOD)
    protocol.contribute(deal, 0, "worker2", BAD)
    travel_to(deal, 10)
    both = protocol.contributors(deal, 0, ["worker1", "worker2"])
    with boa.reverts("task: contributors list incomplete"):
        protocol.hub.claim(deal.dealid, deal.fields, 0, both[:1])
    with boa.reverts("task: contributors not sorted"):
        protocol.hub.claim(deal.dealid, deal.fields, 0, both[::-1])
    stranger = protocol["requester"].address
    with boa.reverts("task: not a contributor"):
        protocol.hub.claim(
            deal.dealid, deal.fields, 0, sorted([both[0], stranger], key=lambda a: int(a, 16))
        )
    protocol.hub.claim(deal.dealid, deal.fields, 0, both)
    assert protocol.hub_balance_matches()


# --- contributeAndFinalize ----------------------------------------------------------------


def test_contribute_and_finalize_settles_in_one_transaction(protocol: Protocol) -> None:
    deal = match(protocol, trust=1)
    before = protocol.balances()
    protocol.contribute_and_finalize(deal, 0, "worker1", GOOD)
    names = [type(e).__name__ for e in protocol.hub.get_logs()]
    # The worker earns 100 * 99 // 100 = 99 and locks nothing; the scheduler keeps 1.
    assert protocol.changes(before) == {
        "requester": (0, -110),
        "app_owner": (10, 0),
        "pool_owner": (1 + 30, -30),
        "worker1": (99, 0),
    }
    assert protocol.hub_balance_matches()
    task = protocol.task(deal, 0)
    assert (task.status, task.contributors, task.reveals, task.winners) == (COMPLETED, 1, 1, 1)
    assert names[-3:] == ["TaskContribute", "TaskReveal", "TaskFinalize"]
    with boa.reverts("task: not accepting contributions"):
        protocol.contribute(deal, 0, "worker2", GOOD)
    with boa.reverts("task: already initialized"):
        protocol.contribute_and_finalize(deal, 0, "worker2", GOOD)
    travel_to(deal, 10)
    with boa.reverts("task: already completed or claimed"):
        protocol.claim(deal, 0, [])


def test_contribute_and_finalize_on_a_tee_task(protocol: Protocol) -> None:
    deal = tee_deal(protocol, trust=1)
    enclave = protocol.ensure_actor("enclave", 0)
    with boa.reverts("task: TEE task needs an enclave challenge"):
        protocol.contribute_and_finalize(deal, 0, "worker1", GOOD)
    protocol.contribute_and_finalize(deal, 0, "worker1", GOOD, enclave=enclave)
    assert protocol.task(deal, 0).status == COMPLETED


def test_contribute_and_finalize_rejects_a_bad_enclave_signature(protocol: Protocol) -> None:
    deal = tee_deal(protocol, trust=1)
    enclave = protocol.ensure_actor("enclave", 0)
    taskid = protocol.task_id(deal, 0)
    worker = protocol["worker1"].address
    message = enclave_message(result_hash(taskid, GOOD), result_seal(worker, taskid, GOOD))
    with boa.reverts("task: invalid enclave signature"):
        protocol.hub.contributeAndFinalize(
            deal.dealid,
            deal.fields,
            0,
            GOOD,
            b"",
            b"",
            enclave.address,
            sign_enclave(message, protocol["worker4"].key),
            protocol.authorize(deal, 0, "worker1", enclave.address),
            sender=worker,
        )


def test_contribute_and_finalize_needs_trust_1(protocol: Protocol) -> None:
    deal = match(protocol, trust=2)
    with boa.reverts("task: contributeAndFinalize needs trust 1"):
        protocol.contribute_and_finalize(deal, 0, "worker1", GOOD)


def test_contribute_and_finalize_needs_a_fresh_task(protocol: Protocol) -> None:
    deal = match(protocol, trust=1)
    protocol.hub.initialize(deal.dealid, deal.fields, 0)
    with boa.reverts("task: already initialized"):
        protocol.contribute_and_finalize(deal, 0, "worker1", GOOD)


def test_contribute_and_finalize_after_the_deadline_is_refused(protocol: Protocol) -> None:
    deal = match(protocol, trust=1)
    travel_to(deal, 7)
    with boa.reverts("task: contribution deadline passed"):
        protocol.contribute_and_finalize(deal, 0, "worker1", GOOD)


def test_contribute_and_finalize_needs_the_authorization(protocol: Protocol) -> None:
    deal = match(protocol, trust=1)
    taskid = protocol.task_id(deal, 0)
    with boa.reverts("task: worker not authorized by the scheduler"):
        protocol.hub.contributeAndFinalize(
            deal.dealid,
            deal.fields,
            0,
            GOOD,
            b"",
            b"",
            ZERO,
            b"",
            authorization_by(protocol, protocol["worker2"], "worker1", taskid),
            sender=protocol["worker1"].address,
        )


def test_contribute_and_finalize_needs_the_stake(protocol: Protocol) -> None:
    deal = match(protocol, trust=1)
    protocol.ensure_actor("poor", deposit=29)
    with boa.reverts("escrow: worker free balance too low for the stake"):
        protocol.contribute_and_finalize(deal, 0, "poor", GOOD)


# --- kitty --------------------------------------------------------------------------------


def test_finalizations_pay_the_kitty_back_to_schedulers(protocol: Protocol) -> None:
    """Seized stakes do not stay in the hub for good: each finalization gives the scheduler
    10 % of the kitty, at least KITTY_MIN, or all of it when less is left."""
    claimed = match(protocol)
    travel_to(claimed, 10)
    protocol.claim(claimed, 0, [])
    assert protocol.hub.kitty() == 30
    deal = match(protocol, trust=1)
    protocol.contribute(deal, 0, "worker1", GOOD)
    protocol.reveal(deal, 0, "worker1", GOOD)
    before = protocol.balances()
    protocol.finalize(deal, 0, ["worker1"])
    assert "KittyPayout" in [type(e).__name__ for e in protocol.hub.get_logs()]
    workers_share = 100 * 99 // 100
    assert protocol.changes(before) == {
        "requester": (0, -110),
        "app_owner": (10, 0),
        "pool_owner": (30 + 100 - workers_share + 30, -30),
        "worker1": (30 + workers_share, -30),
    }
    assert protocol.hub.kitty() == 0
    assert protocol.hub_balance_matches()


def test_a_large_kitty_pays_out_a_tenth_per_finalization(protocol: Protocol) -> None:
    kitty_min = protocol.hub.KITTY_MIN()
    price = 200 * kitty_min
    claimed = protocol.match(
        workerpool_order=protocol.workerpool_order(workerpoolprice=price),
        request_order=protocol.request_order(workerpoolmaxprice=price),
    )
    travel_to(claimed, 10)
    protocol.claim(claimed, 0, [])
    kitty = price * 30 // 100
    assert protocol.hub.kitty() == kitty
    deal = match(protocol, trust=1)
    protocol.contribute_and_finalize(deal, 0, "worker1", GOOD)
    assert protocol.hub.kitty() == kitty - kitty // 10
    assert protocol.hub_balance_matches()
