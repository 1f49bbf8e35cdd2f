"""`decloud category list`, `deal show` and `task show [--watch]`: the chain's view, the
scheduler's when it answers, and a live display that ends with each failed replicate's
cause and what to do about it."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from decloud.chain import DEFAULT_CATEGORIES
from decloud.chain.hub import MatchedDeal
from decloud.chain.localnet import LocalMarket
from decloud.runtime.spec import FailureCause
from decloud.scheduler.api import create_app
from decloud.scheduler.service import build_scheduler
from decloud.scheduler.settings import SchedulerSettings
from decloud.sdk.config import ClientConfig
from decloud.sdk.connection import connect
from decloud.sdk.requester import Requester
from tests.sdk.conftest import Cli, config_with_scheduler
from tests.sdk.serving import happy_story, replicate, scripted_scheduler, serving, task_status

TASK_FIELDS = {"taskid", "state", "done", "chain", "scheduler", "scheduler_note"}


@pytest.fixture(scope="module")
def deal(local: LocalMarket) -> MatchedDeal:
    return local.match(trust=3, volume=2)


def test_categories_are_listed_with_their_deadlines(cli: Cli) -> None:
    listed = cli("category", "list", "--json")
    assert listed.exit_code == 0, listed.output
    categories = json.loads(listed.stdout)["categories"]
    assert [c["name"] for c in categories] == [c.name for c in DEFAULT_CATEGORIES]
    xs = categories[0]
    assert xs == {
        "id": 0, "name": "XS", "description": DEFAULT_CATEGORIES[0].description,
        "work_clock_time_ref": 300, "contribution_window_s": 2100, "final_deadline_s": 3000,
    }  # fmt: skip
    assert "XL" in cli("category", "list").stdout


def test_a_deal_is_read_from_the_chain_without_a_scheduler(cli: Cli, deal: MatchedDeal) -> None:
    shown = cli("deal", "show", "0x" + deal.dealid.hex(), "--json")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert set(document) == {
        "dealid", "block_number", "params", "terms", "task_price", "contribution_deadline",
        "final_deadline", "tasks", "scheduler_note",
    }  # fmt: skip
    assert document["terms"]["requester"] == deal.deal.requester
    assert document["terms"]["app_price"] == str(deal.deal.app_price)
    assert document["task_price"] == str(deal.deal.task_price)
    assert document["final_deadline"] == deal.deal.start_time + 10 * deal.deal.time_ref
    assert [t["taskid"] for t in document["tasks"]] == [
        "0x" + deal.task_id(i).hex() for i in deal.deal.task_indexes()
    ]
    assert {t["chain_status"] for t in document["tasks"]} == {"unset"}
    assert document["scheduler_note"] == "no scheduler in the config ([services] scheduler)"
    human = cli("deal", "show", "0x" + deal.dealid.hex())
    assert human.exit_code == 0 and "final deadline" in human.stdout


def test_unknown_deals_and_malformed_ids_are_named(cli: Cli) -> None:
    unknown = cli("deal", "show", "0x" + "ab" * 32)
    assert unknown.exit_code == 1 and "no deal 0xabab" in unknown.stderr
    malformed = cli("task", "show", "0x1234")
    assert malformed.exit_code == 1 and "a task id must be 32 bytes" in malformed.stderr


def test_a_task_without_scheduler_shows_the_chain(cli: Cli, deal: MatchedDeal) -> None:
    shown = cli("task", "show", "0x" + deal.task_id(0).hex(), "--json")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert set(document) == TASK_FIELDS
    assert (document["state"], document["done"], document["scheduler"]) == ("unset", False, None)
    assert set(document["chain"]) == {
        "status", "contributors", "reveals", "winners", "contribution_deadline",
        "reveal_deadline",
    }  # fmt: skip


@pytest.fixture(scope="module")
def scheduler_url(local: LocalMarket, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real scheduler of the local workerpool, following the chain from now on."""
    directory = tmp_path_factory.mktemp("scheduler")
    key_file = directory / "pool_owner.key"
    key_file.write_text(local["pool_owner"].key.hex())
    local.deployment.save(directory / "deployment.json")
    settings = SchedulerSettings(
        database_url=f"sqlite:///{directory / 'scheduler.db'}", rpc_url=local.rpc_url,
        deployment=directory / "deployment.json", workerpool=local.workerpool,
        owner_key_file=key_file, start_block=local.admin.w3.eth.block_number + 1,
        poll_interval_s=0.05,
    )  # fmt: skip
    scheduler = build_scheduler(settings)
    try:
        with serving(create_app(scheduler)) as url:
            yield url
    finally:
        scheduler.database.dispose()


def test_the_scheduler_view_joins_the_chain_view(
    cli: Cli, local: LocalMarket, scheduler_url: str, client_config: ClientConfig, tmp_path: Path
) -> None:
    deal = local.match(trust=3)
    dealid = "0x" + deal.dealid.hex()
    deadline = time.monotonic() + 20
    while httpx.get(f"{scheduler_url}/v1/deals/{dealid}").status_code != 200:
        assert time.monotonic() < deadline, "the scheduler never saw the deal"
        time.sleep(0.05)
    env = {"DECLOUD_CONFIG": str(config_with_scheduler(client_config, scheduler_url, tmp_path))}
    shown = json.loads(cli("deal", "show", dealid, "--json", env=env).stdout)
    assert shown["scheduler_note"] is None
    assert shown["tasks"][0]["scheduler_state"] in ("pending", "active")
    task = json.loads(cli("task", "show", shown["tasks"][0]["taskid"], "--json", env=env).stdout)
    assert task["scheduler"]["dealid"] == dealid
    assert task["state"] == task["scheduler"]["state"] == shown["tasks"][0]["scheduler_state"]
    other = cli("task", "show", "0x" + secrets.token_hex(32), "--json", env=env)
    assert "does not know this task" in json.loads(other.stdout)["scheduler_note"]


def scripted(client_config: ClientConfig, tmp_path: Path, story_url: str) -> dict[str, str]:
    return {"DECLOUD_CONFIG": str(config_with_scheduler(client_config, story_url, tmp_path))}


def test_watch_follows_the_task_to_completion_and_explains_failures(
    cli: Cli, client_config: ClientConfig, tmp_path: Path
) -> None:
    taskid = secrets.token_bytes(32)
    with serving(scripted_scheduler(happy_story(taskid))) as url:
        watched = cli(
            "task", "show", "0x" + taskid.hex(), "--watch", "--interval", "0.05",
            env=scripted(client_config, tmp_path, url),
        )  # fmt: skip
    assert watched.exit_code == 0, watched.output
    assert "completed" in watched.stdout
    assert "app-exited" in watched.stdout
    assert FailureCause.APP_EXITED.advice.split(":")[0] in watched.stdout
    assert "ipfs://bafyresult" in watched.stdout


def test_the_sdk_watch_yields_each_state_until_done(
    client_config: ClientConfig, tmp_path: Path
) -> None:
    taskid = secrets.token_bytes(32)
    with serving(scripted_scheduler(happy_story(taskid))) as url:
        config = ClientConfig.load(config_with_scheduler(client_config, url, tmp_path))
        reports = list(
            Requester(connect(config)).watch_task(
                "0x" + taskid.hex(), timeout_s=10, interval_s=0.01
            )
        )
    assert [r.state for r in reports] == ["pending", "active", "active", "completed"]
    assert [r.cause for r in reports[-1].failed_replicates] == ["app-exited"]


def test_a_failed_task_exits_non_zero_and_json_gives_the_last_report(
    cli: Cli, client_config: ClientConfig, tmp_path: Path
) -> None:
    taskid = secrets.token_bytes(32)
    story = [
        task_status(taskid, "active", [replicate(0, "running")]),
        task_status(
            taskid, "failed", [replicate(0, "failed", FailureCause.OUT_OF_FUEL)],
            "claimed: no consensus before the final deadline",
        ),
    ]  # fmt: skip
    with serving(scripted_scheduler(story)) as url:
        watched = cli(
            "task", "show", "0x" + taskid.hex(), "--watch", "--interval", "0.05", "--json",
            env=scripted(client_config, tmp_path, url),
        )  # fmt: skip
    assert watched.exit_code == 1
    document = json.loads(watched.stdout)
    assert (document["state"], document["done"]) == ("failed", True)
    assert document["scheduler"]["replicates"][0]["advice"] == FailureCause.OUT_OF_FUEL.advice


def test_a_watch_that_times_out_says_so_and_exits_3(
    cli: Cli, client_config: ClientConfig, tmp_path: Path
) -> None:
    taskid = secrets.token_bytes(32)
    story = [task_status(taskid, "active", [replicate(0, "running")])]
    with serving(scripted_scheduler(story)) as url:
        started = time.monotonic()
        watched = cli(
            "task", "show", "0x" + taskid.hex(), "--watch", "--timeout", "0.3",
            "--interval", "0.05", env=scripted(client_config, tmp_path, url),
        )  # fmt: skip
    assert time.monotonic() - started < 5
    assert watched.exit_code == 3
    assert "is still active after 0.3 s" in watched.stderr
    assert "longer --timeout" in watched.stderr
