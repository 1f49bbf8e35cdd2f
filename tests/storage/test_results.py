"""Uploads only from a task's proven worker, of the revealed result; downloads checked.

Every refusal answers a problem naming the rule it enforces, and leaves nothing stored.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from decloud.chain import Anvil
from decloud.chain.localnet import LocalMarket
from decloud.protocol.digest import result_digest
from decloud.storage.archive import build_archive
from decloud.storage.cid import bytes_cid
from decloud.storage.client import CorruptResult, StorageClient, StorageError
from decloud.storage.service import build_app
from tests.storage.conftest import (
    SMALL_LIMIT,
    RevealedTask,
    ServedStore,
    replicated_task,
    serving,
    store_settings,
    trust1_task,
    write_output,
)


@pytest.fixture
def task(local: LocalMarket, tmp_path: Path) -> RevealedTask:
    return replicated_task(local, write_output(tmp_path / "output"))


def refused(error: pytest.ExceptionInfo[StorageError], status: int, rule: str) -> str:
    assert (error.value.status, error.value.rule) == (status, rule), str(error.value)
    assert f"[{rule}]" in str(error.value)
    return str(error.value)


def assert_nothing_stored(store: ServedStore, task: RevealedTask, archive: bytes) -> None:
    """The task has no result, the archive is not kept, nothing is left in staging."""
    with store.client() as client, pytest.raises(StorageError) as error:
        client.task_result(task.taskid)
    refused(error, 404, "result.not_found")
    assert bytes_cid(archive) not in {path.name for path in store.stored_files()}
    assert list((store.root / "results" / "staging").iterdir()) == []


def upload(
    store: ServedStore,
    task: RevealedTask,
    archive: bytes,
    headers: dict[str, str],
    method: str = "PUT",
) -> httpx.Response:
    """An upload as any HTTP client sends it (PUT and POST are the same operation)."""
    url = f"{store.url}/results/{task.hex}"
    return httpx.request(method, url, content=archive, headers=headers)


def archive_of(directory: Path, tmp_path: Path) -> bytes:
    build_archive(directory, tmp_path / "archive.tar")
    return (tmp_path / "archive.tar").read_bytes()


def problem(answer: httpx.Response, status: int, rule: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["rule"] == rule
    return str(body["detail"])


def test_the_proven_worker_uploads_and_anyone_downloads_the_result(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    expected = build_archive(task.output, tmp_path / "expected.tar")
    with store.client() as client:
        stored = client.upload(task.taskid, task.output, store.key("worker1"))
        assert (stored.cid, stored.size, stored.sha256) == (
            expected.cid, expected.size, expected.sha256.hex()
        )  # fmt: skip
        assert stored.result_digest == "0x" + task.digest.hex()
        assert stored.worker == store.local["worker1"].address
        assert client.task_result(task.taskid) == stored

        by_cid = client.download(stored.cid, tmp_path / "by-cid", expected_digest=task.digest)
        by_task = client.download(task.hex, tmp_path / "by-task")
    for downloaded in (by_cid, by_task):
        assert (downloaded.cid, downloaded.result_digest) == (stored.cid, task.digest)
        assert result_digest(downloaded.path) == task.digest
        assert (downloaded.path / "result.txt").read_bytes() == (
            task.output / "result.txt"
        ).read_bytes()


def test_a_download_announces_its_checksums(store: ServedStore, task: RevealedTask) -> None:
    with store.client() as client:
        stored = client.upload(task.taskid, task.output, store.key("worker1"))
    answer = httpx.get(f"{store.url}/results/{stored.cid}")
    head = httpx.head(f"{store.url}/results/{stored.cid}")
    assert answer.status_code == head.status_code == 200
    assert head.content == b""
    sha256 = hashlib.sha256(answer.content).digest()
    for headers in (answer.headers, head.headers):
        assert headers["content-type"] == "application/x-tar"
        assert headers["content-length"] == str(stored.size) == str(len(answer.content))
        assert headers["repr-digest"] == f"sha-256=:{base64.b64encode(sha256).decode()}:"
        assert headers["etag"] == f'"{stored.cid}"'
        assert headers["x-ipfs-path"] == f"/ipfs/{stored.cid}"
        assert headers["x-decloud-result-digest"] == stored.result_digest
    assert bytes_cid(answer.content) == stored.cid


def test_uploading_the_same_archive_again_changes_nothing(
    store: ServedStore, task: RevealedTask
) -> None:
    with store.client() as client:
        first = client.upload(task.taskid, task.output, store.key("worker1"))
        again = client.upload(task.taskid, task.output, store.key("worker1"))
    assert again == first


def test_the_worker_of_a_trust_1_task_uploads_its_result(
    store: ServedStore, local: LocalMarket, tmp_path: Path
) -> None:
    """contributeAndFinalize records no contribution; its TaskReveal event is the proof."""
    task = trust1_task(local, write_output(tmp_path / "output"), "worker3")
    with store.client() as client:
        stored = client.upload(task.taskid, task.output, store.key("worker3"))
    assert stored.worker == local["worker3"].address


def test_a_contributor_that_did_not_reveal_is_refused(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    with store.client() as client, pytest.raises(StorageError) as error:
        client.upload(task.taskid, task.output, store.key("worker2"))
    assert "has not revealed" in refused(error, 403, "upload.not_proven")
    assert_nothing_stored(store, task, archive_of(task.output, tmp_path))


def test_a_worker_proven_on_another_task_is_refused(
    store: ServedStore, local: LocalMarket, task: RevealedTask, tmp_path: Path
) -> None:
    trust1_task(local, write_output(tmp_path / "other"), "worker3")
    with store.client() as client, pytest.raises(StorageError) as error:
        client.upload(task.taskid, task.output, store.key("worker3"))
    assert "did not contribute" in refused(error, 403, "upload.not_contributor")
    assert_nothing_stored(store, task, archive_of(task.output, tmp_path))


def test_a_non_contributor_is_refused(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    with store.client() as client, pytest.raises(StorageError) as error:
        client.upload(task.taskid, task.output, store.key("stranger"))
    refused(error, 403, "upload.not_contributor")
    assert_nothing_stored(store, task, archive_of(task.output, tmp_path))


def test_a_request_signed_by_another_key_is_refused(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    archive = archive_of(task.output, tmp_path)
    headers = store.headers(task.hex, bytes_cid(archive), signer="worker1", key="stranger")
    detail = problem(upload(store, task, archive, headers), 401, "auth.signature")
    assert "not signed by" in detail
    assert_nothing_stored(store, task, archive)


def test_a_replayed_request_is_refused(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    archive = archive_of(task.output, tmp_path)
    headers = store.headers(task.hex, bytes_cid(archive), signer="worker1")
    assert upload(store, task, archive, headers, method="POST").status_code == 201
    problem(upload(store, task, archive, headers), 401, "auth.replay")


def test_an_expired_request_is_refused(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    archive = archive_of(task.output, tmp_path)
    headers = store.headers(task.hex, bytes_cid(archive), signer="worker1", lifetime_s=-1)
    problem(upload(store, task, archive, headers), 401, "auth.expired")
    assert_nothing_stored(store, task, archive)


def test_a_result_that_is_not_the_revealed_one_is_refused(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    other = write_output(tmp_path / "other", b"a different result\n")
    with store.client() as client, pytest.raises(StorageError) as error:
        client.upload(task.taskid, other, store.key("worker1"))
    detail = refused(error, 409, "upload.digest_mismatch")
    assert f"revealed 0x{task.digest.hex()}" in detail
    assert_nothing_stored(store, task, archive_of(other, tmp_path))


def test_an_archive_other_than_the_signed_one_is_refused(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    signed = archive_of(task.output, tmp_path)
    sent = archive_of(write_output(tmp_path / "other"), tmp_path)
    headers = store.headers(task.hex, bytes_cid(signed), signer="worker1")
    problem(upload(store, task, sent, headers), 400, "upload.cid_mismatch")
    assert_nothing_stored(store, task, sent)


def test_an_archive_that_is_not_a_plain_tree_is_refused(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    with tarfile.open(tmp_path / "link.tar", mode="w") as tar:
        link = tarfile.TarInfo("result.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with store.client() as client, pytest.raises(StorageError) as error:
        client.upload_archive(task.taskid, tmp_path / "link.tar", store.key("worker1"))
    assert "only regular files and directories" in refused(error, 422, "archive.invalid")
    assert_nothing_stored(store, task, (tmp_path / "link.tar").read_bytes())


def test_an_archive_over_the_size_limit_is_refused(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    big = write_output(tmp_path / "big")
    (big / "padding").write_bytes(bytes(SMALL_LIMIT))
    with store.client() as client, pytest.raises(StorageError) as error:
        client.upload(task.taskid, big, store.key("worker1"))
    refused(error, 413, "request.too_large")
    assert_nothing_stored(store, task, archive_of(big, tmp_path))


def test_a_task_keeps_the_first_result_accepted(
    store: ServedStore, local: LocalMarket, tmp_path: Path
) -> None:
    """Two outputs with one digest (only the deterministic file must agree) are two
    archives; the first one uploaded stays the task's result."""
    first, second = write_output(tmp_path / "first"), write_output(tmp_path / "second")
    for output in (first, second):
        (output / "result.txt").write_text("same\n")
        (output / "computed.json").write_text('{"deterministic-output-path": "result.txt"}')
        (output / "log.txt").write_text(f"written in {output.name}\n")
    task = replicated_task(local, first)
    assert result_digest(second) == task.digest
    with store.client() as client:
        stored = client.upload(task.taskid, first, store.key("worker1"))
        with pytest.raises(StorageError) as error:
            client.upload(task.taskid, second, store.key("worker1"))
        assert stored.cid in refused(error, 409, "upload.task_has_result")
        assert client.task_result(task.taskid) == stored


def test_unknown_archives_and_tasks_are_not_found(store: ServedStore) -> None:
    missing = bytes_cid(b"never uploaded")
    problem(httpx.get(f"{store.url}/results/{missing}"), 404, "archive.not_found")
    assert httpx.head(f"{store.url}/results/{missing}").status_code == 404
    problem(httpx.get(f"{store.url}/tasks/0x{'00' * 32}/result"), 404, "result.not_found")
    problem(httpx.get(f"{store.url}/results/not-a-cid"), 400, "cid.invalid")


def test_a_download_that_is_not_the_archive_asked_for_is_not_kept(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    with store.client() as client:
        stored = client.upload(task.taskid, task.output, store.key("worker1"))
        with pytest.raises(CorruptResult, match="expected"):
            client.download(stored.cid, tmp_path / "wrong", expected_digest=bytes(32))
        archive = next(path for path in store.stored_files() if path.name == stored.cid)
        archive.write_bytes(archive.read_bytes().replace(b"P6 1 1", b"P6 2 2"))
        with pytest.raises(CorruptResult, match=f"asked for archive {stored.cid}"):
            client.download(stored.cid, tmp_path / "tampered")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["output"]


def test_the_api_is_described_by_openapi(store: ServedStore) -> None:
    paths = httpx.get(f"{store.url}/openapi.json").json()["paths"]
    assert set(paths["/results/{taskid}"]) == {"put", "post"}
    assert set(paths["/results/{cid}"]) == {"get", "head"}
    assert set(paths) >= {"/info", "/tasks/{taskid}/result"}


def test_an_interrupted_upload_leaves_nothing_behind(
    store: ServedStore, task: RevealedTask, tmp_path: Path
) -> None:
    """A client that vanishes mid-upload: the partial archive is removed from staging."""
    archive = archive_of(task.output, tmp_path)
    headers = store.headers(task.hex, bytes_cid(archive), signer="worker1")
    host, port = store.url.removeprefix("http://").split(":")
    request = f"PUT /results/{task.hex} HTTP/1.1\r\nHost: {host}\r\n"
    request += f"Content-Length: {len(archive)}\r\n"
    request += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request.encode() + archive[: len(archive) // 2])
        time.sleep(0.3)  # the store is now writing the first half to staging
    deadline = time.monotonic() + 5
    while any((store.root / "results" / "staging").iterdir()):
        assert time.monotonic() < deadline, "the partial upload stayed in staging"
        time.sleep(0.05)
    assert_nothing_stored(store, task, archive)


def test_a_node_that_misses_the_reveal_is_reported_as_such(
    anvil: Anvil, local: LocalMarket, task: RevealedTask, tmp_path: Path
) -> None:
    """A store told to search reveals from a block after this one cannot find it, while the
    hub says the worker is proven: the answer blames the configuration, not the worker."""
    anvil.evm_mine()
    directory = tmp_path / "late"
    directory.mkdir()
    head = local.admin.w3.eth.block_number
    settings = store_settings(directory, local, SMALL_LIMIT).model_copy(
        update={"start_block": head}
    )
    with (
        serving(build_app(settings)) as url,
        StorageClient(url) as client,
        pytest.raises(StorageError) as error,
    ):
        client.upload(task.taskid, task.output, local["worker1"].key)
    assert "start_block" in refused(error, 502, "chain.reveal_missing")
