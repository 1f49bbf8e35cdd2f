"""The steps of `devnet up` once the service launcher runs: anvil, the chain's set-up and
the sample apps, the key material and the config file, then the services, the orders on the
market, then the workers.

This module imports the chain client (web3), which takes seconds: `lifecycle.up` imports it
only after it has started the launcher, so that both imports run at once.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from decloud.chain.anvil import DEFAULT_CHAIN_ID, DEFAULT_MNEMONIC, dev_private_keys, find_anvil
from decloud.chain.client import ChainClient
from decloud.devnet import config as config_file
from decloud.devnet.accounts import set_up_chain, write_key_file, write_keyfile
from decloud.devnet.cast import DEVELOPER_ROLE, PEOPLE, SCHEDULER_ROLE, roles, worker_names
from decloud.devnet.config import HOST, Plan, Ports, worker_environment
from decloud.devnet.launcher import Launcher, StartError, service_environment
from decloud.devnet.layout import Layout
from decloud.devnet.offers import publish_orders, register_apps
from decloud.devnet.processes import ProcessRecord, launch
from decloud.devnet.readiness import chain_ready, service_ready, wait_until_ready, workers_ready
from decloud.devnet.record import CHAIN_PROCESS, DevnetRecord
from decloud.devnet.samples import SAMPLE_APPS, Build, building
from decloud.market.client import MarketError

if TYPE_CHECKING:
    from decloud.devnet.lifecycle import UpOptions

SERVICES = ("market", "storage", "scheduler")
"""Started in this order, as `start` unpacks them."""


def start(options: UpOptions, layout: Layout, launcher: Launcher) -> DevnetRecord:
    """Everything up and answering; the record is saved after each process starts, so
    that `down` can stop what an interrupted `up` had started."""
    ports = _free_ports()
    progress = _Progress(layout, DevnetRecord(config=options.config, rpc_url=ports.url("chain")))
    cast = roles(options.workers)
    admin_key, *keys = dev_private_keys(1 + len(cast))
    key_of = dict(zip(cast, keys, strict=True))
    # The sample apps compile while anvil starts and the protocol deploys.
    with building(SAMPLE_APPS, layout.apps) as builds:
        anvil = progress.add(_launch_anvil(ports, layout, accounts=1 + len(key_of)))
        wait_until_ready([chain_ready(anvil)], options.timeout_s)
        plan, missing_apps = _prepare(options, layout, ports, admin_key, key_of, builds)
    progress.update(
        workerpool=plan.workerpool,
        addresses=plan.addresses,
        apps=plan.apps,
        missing_apps=missing_apps,
    )
    config_file.write(options.config, plan)
    environment = service_environment(options.config)
    market, storage, scheduler = (
        progress.add(launcher.start(name, name, layout.log(name), environment, ports.url(name)))
        for name in SERVICES
    )
    wait_until_ready([service_ready(scheduler)], options.timeout_s)
    workers = [
        progress.add(_start_worker(name, launcher, layout, environment))
        for name in worker_names(options.workers)
    ]
    # The orders go out while the workers log in to the scheduler.
    wait_until_ready([service_ready(market)], options.timeout_s)
    progress.update(orders=_publish(plan, key_of, layout))
    waits = [service_ready(storage)]
    if workers:
        waits.append(workers_ready(workers, ports.url("scheduler")))
    wait_until_ready(waits, options.timeout_s)
    return progress.record


@dataclass
class _Progress:
    """The record of an `up` in progress, saved whenever it changes."""

    layout: Layout
    record: DevnetRecord

    def add(self, process: ProcessRecord) -> ProcessRecord:
        self.update(processes=(*self.record.processes, process))
        return process

    def update(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)
        self.record.save(self.layout.record)


def _start_worker(
    name: str, launcher: Launcher, layout: Layout, environment: dict[str, str]
) -> ProcessRecord:
    layout.worker_state(name).mkdir(mode=0o700)
    worker_env = environment | worker_environment(layout, name)
    return launcher.start(name, "worker", layout.log(name), worker_env)


def _prepare(
    options: UpOptions,
    layout: Layout,
    ports: Ports,
    admin_key: str,
    key_of: dict[str, str],
    builds: list[Build],
) -> tuple[Plan, dict[str, str]]:
    """The chain set up, the sample apps that built registered and the key material
    written: what the config file will say, and the sample apps missing (name -> why)."""
    on_chain = set_up_chain(ports.url("chain"), admin_key, key_of)
    on_chain.deployment.save(layout.deployment)
    built = [build.result(options.timeout_s) for build in builds]
    developer = ChainClient(ports.url("chain"), key_of[DEVELOPER_ROLE])
    apps = register_apps(developer, on_chain.deployment, built)
    for role in (SCHEDULER_ROLE, *worker_names(options.workers)):
        write_key_file(layout.key_file(role), key_of[role])
    for role in PEOPLE:
        write_keyfile(layout.keyfile(role), key_of[role])
    plan = Plan(
        layout=layout,
        ports=ports,
        deployment=on_chain.deployment,
        workerpool=on_chain.workerpool,
        workers=options.workers,
        addresses=on_chain.addresses,
        apps=apps,
        docker_url=options.docker_url,
    )
    return plan, {sample.app.name: sample.problem for sample in built if sample.problem}


def _publish(plan: Plan, key_of: dict[str, str], layout: Layout) -> tuple[str, ...]:
    try:
        return publish_orders(
            plan.ports.url("market"),
            plan.apps,
            plan.workerpool,
            plan.workers,
            developer_key=key_of[DEVELOPER_ROLE],
            owner_key=key_of[SCHEDULER_ROLE],
        )
    except MarketError as error:
        raise StartError(
            f"the market refused the devnet's orders: {error}; see {layout.log('market')}"
        ) from error


def _free_ports() -> Ports:
    """Four distinct free loopback ports (held together while chosen, so all differ)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(4)]
    try:
        for probe in probes:
            probe.bind((HOST, 0))
        chain, market, storage, scheduler = (int(probe.getsockname()[1]) for probe in probes)
    finally:
        for probe in probes:
            probe.close()
    return Ports(chain=chain, market=market, storage=storage, scheduler=scheduler)


def _launch_anvil(ports: Ports, layout: Layout, accounts: int) -> ProcessRecord:
    command = _anvil_command(ports.chain, accounts)
    try:
        return launch(CHAIN_PROCESS, command, layout.log(CHAIN_PROCESS), url=ports.url("chain"))
    except OSError as error:
        raise StartError(f"cannot run anvil ({command[0]}): {error}") from error


def _anvil_command(port: int, accounts: int) -> list[str]:
    """Anvil with automine (a block per transaction) and the well-known dev accounts."""
    return [
        str(find_anvil()),
        "--host",
        HOST,
        "--port",
        str(port),
        "--chain-id",
        str(DEFAULT_CHAIN_ID),
        "--accounts",
        str(accounts),
        "--mnemonic",
        DEFAULT_MNEMONIC,
        "--silent",
    ]
