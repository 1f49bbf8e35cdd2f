"""`decloud order init|sign|cancel`: templates for what a wallet owns, signatures the hub
accepts, and cancellation on-chain; nobody signs or cancels for a resource of another."""

from __future__ import annotations

import json
from pathlib import Path

from decloud.chain.localnet import NANO, LocalMarket
from decloud.market.book import ZERO_ADDRESS
from decloud.protocol.orders import (
    AppOrder,
    RequestOrder,
    WorkerpoolOrder,
    recover_signer,
)
from decloud.protocol.tags import GPU, NO_TAG, TEE
from decloud.sdk.orders import read_order_file
from tests.sdk.conftest import Cli, no_secret_in


def init(cli: Cli, tmp_path: Path, kind: str, resource: str, wallet: str, *args: str) -> Path:
    path = tmp_path / f"{kind}-{resource[:8]}-{len(list(tmp_path.iterdir()))}.json"
    made = cli("order", "init", kind, resource, "-o", str(path), *args, wallet=wallet)
    assert made.exit_code == 0, made.output
    return path


def sign(cli: Cli, path: Path, wallet: str, key: bytes) -> dict[str, str]:
    signed = cli("order", "sign", str(path), "--json", wallet=wallet)
    assert signed.exit_code == 0, signed.output
    no_secret_in(signed, key)
    document: dict[str, str] = json.loads(signed.stdout)
    return document


def test_init_writes_a_template_for_what_the_wallet_owns(
    cli: Cli, local: LocalMarket, tmp_path: Path
) -> None:
    path = tmp_path / "app-order.json"
    made = cli(
        "order", "init", "app", local.app, "--price", str(NANO), "-o", str(path), "--json",
        wallet="app_owner",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    document = json.loads(made.stdout)
    assert set(document) == {"file", "kind", "order"}
    assert json.loads(path.read_text()) == {"kind": "app", "order": document["order"]}
    order = read_order_file(path)
    assert isinstance(order, AppOrder)
    assert (order.app, order.appprice, order.volume, order.tag) == (
        local.app, NANO, 1_000_000, NO_TAG
    )  # fmt: skip
    assert order.requesterrestrict == ZERO_ADDRESS and order.salt != bytes(32)
    again = cli("order", "init", "app", local.app, "-o", str(path), wallet="app_owner")
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_templates_follow_the_resource(cli: Cli, local: LocalMarket, tmp_path: Path) -> None:
    tee = read_order_file(init(cli, tmp_path, "app", local.tee_app, "app_owner"))
    assert isinstance(tee, AppOrder) and tee.tag == TEE
    pool = read_order_file(
        init(cli, tmp_path, "workerpool", local.workerpool, "pool_owner", "--tag", "gpu")
    )
    assert isinstance(pool, WorkerpoolOrder)
    assert (pool.tag, pool.trust, pool.category, pool.volume) == (GPU, 3, 0, 1_000)


def test_nobody_makes_orders_for_what_they_do_not_own(
    cli: Cli, local: LocalMarket, tmp_path: Path
) -> None:
    refused = cli("order", "init", "app", local.app, "-o", str(tmp_path / "x"), wallet="stranger")
    assert refused.exit_code == 1
    assert f"app {local.app} belongs to {local['app_owner'].address}" in refused.stderr
    assert not (tmp_path / "x").exists()
    path = init(cli, tmp_path, "app", local.app, "app_owner")
    refused = cli("order", "sign", str(path), wallet="stranger")
    assert refused.exit_code == 1
    assert "this app order belongs to" in refused.stderr
    refused = cli("order", "cancel", str(path), wallet="stranger")
    assert refused.exit_code == 1 and "this app order belongs to" in refused.stderr


def test_signed_orders_are_matched_on_chain(cli: Cli, local: LocalMarket, tmp_path: Path) -> None:
    app_file = init(cli, tmp_path, "app", local.app, "app_owner", "--price", "1")
    pool_file = init(cli, tmp_path, "workerpool", local.workerpool, "pool_owner", "--price", "3")
    app_signed = sign(cli, app_file, "app_owner", local["app_owner"].key)
    pool_signed = sign(cli, pool_file, "pool_owner", local["pool_owner"].key)
    assert set(app_signed) == {"file", "kind", "order", "order_hash", "signer", "signature"}
    assert app_signed["signer"] == local["app_owner"].address
    assert Path(app_signed["file"]) == app_file.with_name(app_file.stem + ".signed.json")
    app_order, pool_order = (
        read_order_file(Path(app_signed["file"])),
        read_order_file(Path(pool_signed["file"])),
    )
    assert isinstance(app_order, AppOrder) and isinstance(pool_order, WorkerpoolOrder)
    requester = local["requester"]
    digest = app_order.digest(requester.hub.domain)
    assert "0x" + digest.hex() == app_signed["order_hash"]
    signature = bytes.fromhex(app_signed["signature"][2:])
    assert recover_signer(digest, signature) == local["app_owner"].address
    request = RequestOrder(
        app=local.app, appmaxprice=1, dataset=ZERO_ADDRESS, datasetmaxprice=0,
        workerpool=local.workerpool, workerpoolmaxprice=3, requester=requester.address,
        volume=1, tag=NO_TAG, category=0, trust=3, beneficiary=requester.address,
        callback=ZERO_ADDRESS, params="{}", salt=local.next_salt(),
    )  # fmt: skip
    deal = requester.hub.match_orders(
        app_order,
        signature,
        pool_order,
        bytes.fromhex(pool_signed["signature"][2:]),
        request,
        requester.hub.sign(request, requester.key),
    )
    assert (deal.deal.app_price, deal.deal.workerpool_price) == (1, 3)


def test_a_cancelled_order_is_closed_on_chain(cli: Cli, local: LocalMarket, tmp_path: Path) -> None:
    path = init(cli, tmp_path, "app", local.app, "app_owner", "--volume", "5")
    cancelled = cli("order", "cancel", str(path), "--json", wallet="app_owner")
    assert cancelled.exit_code == 0, cancelled.output
    document = json.loads(cancelled.stdout)
    assert set(document) == {"kind", "order_hash", "transaction"}
    marketplace = local.admin.contract("Marketplace", local.deployment.marketplace)
    consumed = marketplace.functions.consumed(bytes.fromhex(document["order_hash"][2:])).call()
    assert consumed == 5


def test_a_file_that_is_not_an_order_is_named(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"kind": "app", "order": {"app": "0x12"}}))
    refused = cli("order", "sign", str(path), wallet="app_owner")
    assert refused.exit_code == 1
    assert f"{path} is not a decloud order" in refused.stderr
    assert "`decloud order init` writes one" in refused.stderr
