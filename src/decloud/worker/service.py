"""A worker assembled from its settings: key, chain, scheduler, result store, runtimes,
cache and journal, each checked before the first pull."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import docker.errors
import requests.exceptions
from eth_account import Account

from decloud.chain.deploy import Deployment
from decloud.chain.registries import AppType
from decloud.runtime import DockerRuntime, Runtime, WasmRuntime, connect
from decloud.scheduler.schemas import CapabilitiesBody
from decloud.storage.client import StorageClient
from decloud.worker.agent import LoopSettings, Worker
from decloud.worker.chain import WorkerChain
from decloud.worker.client import SchedulerClient
from decloud.worker.fetch import Fetcher
from decloud.worker.journal import Journal
from decloud.worker.settings import WorkerSettings
from decloud.worker.shell import Shell, ShellSettings

WORKER_LABEL = "org.decloud.worker"
"""Marks the containers of one worker, so a restarted worker removes only its own."""


class WorkerConfigError(RuntimeError):
    """The worker cannot start with these settings."""


def read_key(path: Path) -> bytes:
    """The worker's private key in a file (hex, with or without 0x)."""
    try:
        key = bytes.fromhex(path.read_text().strip().removeprefix("0x"))
    except (OSError, ValueError) as error:
        # The error text could quote the file: say only what is wrong with it.
        raise WorkerConfigError(f"key file {path}: not readable as a hex key") from error
    if len(key) != 32:
        raise WorkerConfigError(f"key file {path}: a key has 32 bytes")
    return key


def build_worker(settings: WorkerSettings) -> Worker:
    """A worker for these settings; nothing is pulled until `Worker.run`."""
    key = read_key(settings.key_file)
    address = str(Account.from_key(key).address)
    chain = _chain(settings, key)
    stopping = threading.Event()
    runtimes = _runtimes(settings, address)
    shell = Shell(
        chain=chain,
        scheduler=SchedulerClient(
            settings.scheduler_url,
            key,
            address,
            chain.hub.domain,
            workerpool=settings.workerpool,
            timeout_s=settings.request_timeout_s,
        ),
        storage=StorageClient(
            settings.storage_url, timeout_s=settings.request_timeout_s, domain=chain.hub.domain
        ),
        fetcher=Fetcher(settings.cache, max_bytes=settings.max_download_bytes),
        runtimes=runtimes,
        work_root=settings.state_dir / "work",
        key=key,
        settings=ShellSettings(
            fuel=settings.fuel,
            app_memory_mb=settings.app_memory_mb,
            cpus=settings.app_cpus,
            chain_poll_s=settings.chain_poll_s,
            result_report_wait_s=settings.result_report_wait_s,
        ),
        stopping=stopping,
    )
    return Worker(
        shell=shell,
        scheduler=shell.scheduler,
        journal=Journal(settings.state_dir),
        capabilities=capabilities(settings, runtimes),
        settings=LoopSettings(
            slots=settings.slots,
            pull_interval_s=settings.pull_interval_s,
            drain_timeout_s=settings.drain_timeout_s,
            keep_finished_s=settings.keep_finished_s,
        ),
        stopping=stopping,
    )


def _chain(settings: WorkerSettings, key: bytes) -> WorkerChain:
    if not settings.deployment.exists():
        raise WorkerConfigError(
            f"deployment file {settings.deployment} not found: set [worker] deployment "
            "(DECLOUD_WORKER_DEPLOYMENT) to the file the deployer wrote"
        )
    deployment = Deployment.load(settings.deployment)
    chain = WorkerChain(settings.rpc_url, deployment, key)
    if chain.client.chain_id != deployment.chain_id:
        raise WorkerConfigError(
            f"the node of [worker] rpc_url serves chain {chain.client.chain_id}, but the "
            f"deployment {settings.deployment} is on chain {deployment.chain_id}"
        )
    return chain


def _runtimes(settings: WorkerSettings, address: str) -> dict[AppType, Runtime]:
    """WASM always; OCI when a container engine is configured (and answers). Containers a
    killed worker left behind are removed first."""
    runtimes: dict[AppType, Runtime] = {AppType.WASM: WasmRuntime(settings.cache / "wasm")}
    if settings.docker_url is not None:
        oci = DockerRuntime(connect(settings.docker_url), labels={WORKER_LABEL: address})
        try:
            oci.remove_leftovers()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise WorkerConfigError(
                f"the container engine at [worker] docker_url {settings.docker_url} does not "
                f"answer: {error}"
            ) from error
        runtimes[AppType.OCI] = oci
    return runtimes


def capabilities(settings: WorkerSettings, runtimes: dict[AppType, Runtime]) -> CapabilitiesBody:
    """What the worker announces: no GPU and no TEE (neither is supported yet)."""
    return CapabilitiesBody.model_validate(
        {
            "cores": settings.cores or os.cpu_count() or 1,
            "memory_mb": settings.memory_mb or _physical_memory_mb(),
            "runtimes": sorted(kind.name for kind in runtimes),
            "gpu": False,
            "tee": False,
            "slots": settings.slots,
        }
    )


def _physical_memory_mb() -> int:
    return max(1, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
