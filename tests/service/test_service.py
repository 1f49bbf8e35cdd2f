"""Settings, migrations, problem details, signed requests and SQL cursors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Connection, text

from decloud.chain.events import BlockRef, Cursor
from decloud.protocol.orders import Eip712Domain
from decloud.service.auth import RequestAuth, RequestVerifier, sign_request
from decloud.service.cursors import SqlCursorStore
from decloud.service.db import Database
from decloud.service.migrations import Migration, MigrationError, migrate, schema_version
from decloud.service.problems import ProblemError, install_problem_handlers
from decloud.service.settings import ServiceSettings, SettingsError, load_settings

KEY = "0x" + "42" * 32
SIGNER = str(Account.from_key(KEY).address)
DOMAIN = Eip712Domain(chain_id=31337, verifying_contract=to_checksum_address("0x" + "ab" * 20))


class DemoSettings(ServiceSettings):
    database_url: str = "sqlite://"
    port: int = 9000
    batch: int = 10


def test_settings_come_from_the_file_then_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "decloud.toml"
    config.write_text("[demo]\nport = 9100\nbatch = 5\n[other]\nport = 1\n")
    loaded = load_settings(DemoSettings, "demo", config, environ={"DECLOUD_DEMO_BATCH": "7"})
    assert (loaded.port, loaded.batch, loaded.host) == (9100, 7, "127.0.0.1")
    from_variable = load_settings(DemoSettings, "demo", environ={"DECLOUD_CONFIG": str(config)})
    assert from_variable.port == 9100


def test_unknown_or_invalid_settings_are_refused_with_their_name(tmp_path: Path) -> None:
    config = tmp_path / "decloud.toml"
    config.write_text("[demo]\nprot = 9100\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(DemoSettings, "demo", config, environ={})
    with pytest.raises(SettingsError, match="batch"):
        load_settings(DemoSettings, "demo", environ={"DECLOUD_DEMO_BATCH": "many"})


def _create_things(connection: Connection) -> None:
    connection.execute(text("CREATE TABLE things (id INTEGER PRIMARY KEY)"))


def _add_colour(connection: Connection) -> None:
    connection.execute(text("ALTER TABLE things ADD COLUMN colour VARCHAR(10)"))


def test_migrations_run_once_in_order_and_refuse_a_newer_database(database: Database) -> None:
    first = [Migration(1, "things", _create_things)]
    both = [*first, Migration(2, "colour", _add_colour)]
    assert migrate(database.engine, "demo", first) == 1
    assert migrate(database.engine, "demo", both) == 2
    assert migrate(database.engine, "demo", both) == 2
    with database.engine.connect() as connection:
        assert schema_version(connection, "demo") == 2
        assert schema_version(connection, "service") == 1
    with pytest.raises(MigrationError, match="newer than this decloud"):
        migrate(database.engine, "demo", first)
    with pytest.raises(MigrationError, match="numbered"):
        migrate(database.engine, "demo", [Migration(2, "colour", _add_colour)])


def test_a_failed_migration_leaves_the_previous_version(database: Database) -> None:
    def broken(connection: Connection) -> None:
        _create_things(connection)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        migrate(database.engine, "demo", [Migration(1, "broken", broken)])
    assert migrate(database.engine, "demo", [Migration(1, "things", _create_things)]) == 1


class Echo(BaseModel):
    text: str


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    install_problem_handlers(app, max_body_bytes=100)

    @app.post("/echo")
    def echo(body: Echo) -> Echo:
        if body.text == "refuse":
            raise ProblemError(409, "demo.refused", "refused on purpose")
        if body.text == "crash":
            raise RuntimeError("postgresql://user:secret@db/x")
        return body

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_errors_are_problem_details_that_never_leak_internals(client: TestClient) -> None:
    refused = client.post("/echo", json={"text": "refuse"})
    assert (refused.status_code, refused.json()["rule"]) == (409, "demo.refused")
    assert refused.headers["content-type"] == "application/problem+json"
    invalid = client.post("/echo", json={"txt": "x"})
    assert (invalid.status_code, invalid.json()["rule"]) == (422, "request.invalid")
    assert invalid.json()["errors"][0]["location"] == "body.text"
    crashed = client.post("/echo", json={"text": "crash"})
    assert crashed.status_code == 500
    assert "secret" not in crashed.text
    assert client.get("/nowhere").json()["rule"] == "http.404"


def test_bodies_over_the_limit_are_refused_even_without_a_length(client: TestClient) -> None:
    declared = client.post("/echo", json={"text": "x" * 200})
    assert (declared.status_code, declared.json()["rule"]) == (413, "request.too_large")
    streamed = client.post(
        "/echo", content=iter([b'{"text": "', b"x" * 200, b'"}']),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert (streamed.status_code, streamed.json()["rule"]) == (413, "request.too_large")


def _auth(body: BaseModel, **changes: object) -> RequestAuth:
    auth = sign_request(
        body, service="demo", action="delete", domain=DOMAIN, private_key=KEY, signer=SIGNER
    )
    return auth.model_copy(update=changes)


def test_a_signed_request_is_served_once(database: Database) -> None:
    verifier = RequestVerifier("demo", DOMAIN)
    body = Echo(text="x")
    auth = _auth(body)
    with database.transaction() as session:
        assert verifier.signer_of(session, "delete", body, auth) == SIGNER
    with database.transaction() as session, pytest.raises(ProblemError) as replay:
        verifier.signer_of(
            session, "delete", body, auth.model_copy(update={"nonce": "0" + auth.nonce})
        )
    assert replay.value.rule == "auth.replay"


def test_a_nonce_is_spent_only_if_the_request_commits(database: Database) -> None:
    verifier = RequestVerifier("demo", DOMAIN)
    body = Echo(text="x")
    auth = _auth(body)
    with pytest.raises(RuntimeError), database.transaction() as session:
        verifier.signer_of(session, "delete", body, auth)
        raise RuntimeError("the write failed")
    with database.transaction() as session:
        assert verifier.signer_of(session, "delete", body, auth) == SIGNER


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        ("other body", "auth.signature"),
        ("other action", "auth.signature"),
        ("other service", "auth.signature"),
        ("expired", "auth.expired"),
        ("too long", "auth.lifetime"),
        ("malformed signature", "auth.signature"),
    ],
)
def test_signed_requests_are_refused_unless_they_match(
    database: Database, case: str, rule: str
) -> None:
    body = Echo(text="x")
    auth, action, service, now = _auth(body), "delete", "demo", None
    match case:
        case "other body":
            body = Echo(text="y")
        case "other action":
            action = "create"
        case "other service":
            service = "sms"
        case "expired":
            now = auth.expiry + 1.0
        case "too long":
            now = auth.expiry - 10_000.0
        case "malformed signature":
            auth = auth.model_copy(update={"signature": "0x" + "ff" * 65})
    with database.transaction() as session, pytest.raises(ProblemError) as refused:
        RequestVerifier(service, DOMAIN).signer_of(session, action, body, auth, now=now)
    assert (refused.value.status, refused.value.rule) == (401, rule)


def test_cursors_persist_with_the_transaction_that_saved_them(database: Database) -> None:
    cursor = Cursor(next_block=8, recent=(BlockRef(6, "0x06"), BlockRef(7, "0x07")))
    with database.transaction() as session:
        assert SqlCursorStore(session).load("demo.hub") is None
        SqlCursorStore(session).save("demo.hub", cursor)
    with pytest.raises(RuntimeError), database.transaction() as session:
        SqlCursorStore(session).save("demo.hub", Cursor(next_block=99))
        raise RuntimeError("the consumer failed")
    with database.transaction() as session:
        assert SqlCursorStore(session).load("demo.hub") == cursor
        SqlCursorStore(session).save("demo.hub", Cursor(next_block=9, recent=cursor.recent))
    with database.transaction() as session:
        loaded = SqlCursorStore(session).load("demo.hub")
        assert loaded is not None and loaded.next_block == 9
