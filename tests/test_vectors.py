"""decloud's protocol model reproduces every independent test vector (DESIGN.md section 5).

protocol.json was computed by ethers v6 and result_digest.json by coreutils, without decloud.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from decloud.protocol import (
    AppOrder,
    DatasetOrder,
    Eip712Domain,
    Eip712Struct,
    RequestOrder,
    WorkerpoolAuthorization,
    WorkerpoolOrder,
    authorization_digest,
    callback_digest,
    deal_id,
    directory_digest,
    directory_listing,
    enclave_digest,
    enclave_message,
    file_digest,
    recover_signer,
    result_digest,
    result_hash,
    result_seal,
    sign_enclave,
    sign_typed,
    task_id,
    to_compact,
    typed_data,
)

VECTORS = Path(__file__).parent / "vectors"
PROTOCOL: dict[str, Any] = json.loads((VECTORS / "protocol.json").read_text())
RESULT_DIGEST: dict[str, Any] = json.loads((VECTORS / "result_digest.json").read_text())

ORDER_TYPES: dict[str, type[Eip712Struct]] = {
    "AppOrder": AppOrder,
    "DatasetOrder": DatasetOrder,
    "WorkerpoolOrder": WorkerpoolOrder,
    "RequestOrder": RequestOrder,
}
SIGNING_ROLE = {
    "AppOrder": "appOwner",
    "DatasetOrder": "datasetOwner",
    "WorkerpoolOrder": "workerpoolOwner",
    "RequestOrder": "requester",
}
DIRECTORY_CASES = [case for case in RESULT_DIGEST["cases"] if case["kind"] == "directory"]
FILE_CASES = [case for case in RESULT_DIGEST["cases"] if case["kind"] == "file"]


def hex_bytes(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def domain() -> Eip712Domain:
    vector = PROTOCOL["domain"]
    return Eip712Domain(
        chain_id=vector["chainId"],
        verifying_contract=vector["verifyingContract"],
        name=vector["name"],
        version=vector["version"],
    )


def vector_order(name: str) -> Eip712Struct:
    return ORDER_TYPES[name].from_message(PROTOCOL["orders"][name]["message"])


def authorization() -> WorkerpoolAuthorization:
    return WorkerpoolAuthorization.from_message(
        PROTOCOL["contribution"]["authorization"]["message"]
    )


def write_files(root: Path, files_base64: dict[str, str]) -> None:
    for relative, content in files_base64.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(content))


def test_vector_addresses_belong_to_vector_keys() -> None:
    for role, key in PROTOCOL["keys"].items():
        assert Account.from_key(key).address == PROTOCOL["addresses"][role]


def test_domain_separator() -> None:
    assert domain().separator() == hex_bytes(PROTOCOL["domainSeparator"])


def test_default_domain_is_decloud_version_1() -> None:
    assert Eip712Domain(31337, PROTOCOL["domain"]["verifyingContract"]) == domain()


@pytest.mark.parametrize("name", ORDER_TYPES)
def test_order_type_string_and_type_hash(name: str) -> None:
    vector = PROTOCOL["orders"][name]
    order_type = ORDER_TYPES[name]
    assert vector["typeString"] == order_type.TYPE_STRING
    assert order_type.type_hash() == hex_bytes(vector["typeHash"])


@pytest.mark.parametrize("name", [*ORDER_TYPES, "WorkerpoolAuthorization"])
def test_typed_data_declares_the_vector_types(name: str) -> None:
    struct = authorization() if name == "WorkerpoolAuthorization" else vector_order(name)
    document = typed_data(struct, domain())
    assert document["primaryType"] == name
    assert document["types"][name] == PROTOCOL["types"][name]
    assert document["domain"] == PROTOCOL["domain"]


@pytest.mark.parametrize("name", ORDER_TYPES)
def test_order_struct_hash_and_digest(name: str) -> None:
    vector = PROTOCOL["orders"][name]
    order = vector_order(name)
    assert order.struct_hash() == hex_bytes(vector["structHash"])
    assert order.digest(domain()) == hex_bytes(vector["digest"])


@pytest.mark.parametrize("name", ORDER_TYPES)
def test_order_message_round_trips_with_checksummed_addresses(name: str) -> None:
    vector_message = PROTOCOL["orders"][name]["message"]
    expected = {
        field: to_checksum_address(value) if len(value) == 42 else value
        for field, value in vector_message.items()
    }
    assert vector_order(name).to_message() == expected


@pytest.mark.parametrize("name", ORDER_TYPES)
def test_signing_an_order_through_eth_account_gives_the_vector_signatures(name: str) -> None:
    vector = PROTOCOL["orders"][name]
    key = PROTOCOL["keys"][SIGNING_ROLE[name]]
    signature = sign_typed(vector_order(name), domain(), key)
    assert signature == hex_bytes(vector["signature"])
    assert to_compact(signature) == hex_bytes(vector["compactSignature"])


@pytest.mark.parametrize("name", ORDER_TYPES)
@pytest.mark.parametrize("form", ["signature", "compactSignature"])
def test_order_signer_recovers_from_both_signature_forms(name: str, form: str) -> None:
    vector = PROTOCOL["orders"][name]
    signer = recover_signer(hex_bytes(vector["digest"]), hex_bytes(vector[form]))
    assert signer == vector["signer"] == PROTOCOL["addresses"][SIGNING_ROLE[name]]


@pytest.mark.parametrize(
    "case", PROTOCOL["ids"], ids=lambda case: f"consumed{case['consumedBefore']}"
)
def test_deal_and_task_ids(case: dict[str, Any]) -> None:
    dealid = deal_id(hex_bytes(case["requestDigest"]), case["consumedBefore"])
    assert dealid == hex_bytes(case["dealid"])
    for task in case["tasks"]:
        assert task_id(dealid, task["index"]) == hex_bytes(task["taskid"])


def test_ids_start_from_the_request_order_vector_digest() -> None:
    request_digest = vector_order("RequestOrder").digest(domain())
    assert all(hex_bytes(case["requestDigest"]) == request_digest for case in PROTOCOL["ids"])


def test_result_hash_and_seal() -> None:
    contribution = PROTOCOL["contribution"]
    taskid = hex_bytes(contribution["taskid"])
    digest = hex_bytes(contribution["resultDigest"])
    assert result_hash(taskid, digest) == hex_bytes(contribution["resultHash"])
    assert result_seal(contribution["worker"], taskid, digest) == hex_bytes(
        contribution["resultSeal"]
    )


def test_enclave_message_digest_and_signature() -> None:
    contribution = PROTOCOL["contribution"]
    enclave = contribution["enclave"]
    message = enclave_message(
        hex_bytes(contribution["resultHash"]), hex_bytes(contribution["resultSeal"])
    )
    assert message == hex_bytes(enclave["signedMessage"])
    assert enclave_digest(message) == hex_bytes(enclave["eip191Digest"])
    signature = sign_enclave(message, PROTOCOL["keys"]["enclave"])
    assert signature == hex_bytes(enclave["signature"])
    assert recover_signer(enclave_digest(message), signature) == enclave["challenge"]
    assert enclave["challenge"] == PROTOCOL["addresses"]["enclave"]


def test_workerpool_authorization_digest_and_signature() -> None:
    vector = PROTOCOL["contribution"]["authorization"]
    digest = authorization_digest(authorization(), domain())
    assert digest == hex_bytes(vector["digest"])
    signature = sign_typed(authorization(), domain(), PROTOCOL["keys"]["workerpoolOwner"])
    assert signature == hex_bytes(vector["signature"])
    assert recover_signer(digest, signature) == vector["signer"]
    assert recover_signer(digest, to_compact(signature)) == vector["signer"]


def test_callback_digest() -> None:
    vector = PROTOCOL["callbackDigest"]
    assert callback_digest(hex_bytes(vector["data"])) == hex_bytes(vector["digest"])


@pytest.mark.parametrize("case", DIRECTORY_CASES, ids=lambda case: case["name"])
def test_directory_listing_and_digest(case: dict[str, Any], tmp_path: Path) -> None:
    write_files(tmp_path, case["files_base64"])
    assert directory_listing(tmp_path) == case["listing"]
    assert directory_digest(tmp_path) == hex_bytes(case["digest"])


@pytest.mark.parametrize("case", DIRECTORY_CASES, ids=lambda case: case["name"])
def test_result_digest_of_a_whole_output(case: dict[str, Any], tmp_path: Path) -> None:
    write_files(tmp_path, case["files_base64"])
    assert result_digest(tmp_path) == hex_bytes(case["digest"])


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda case: case["name"])
def test_result_digest_of_a_deterministic_file(case: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "result.bin").write_bytes(base64.b64decode(case["content_base64"]))
    (tmp_path / "noise.log").write_text("differs between workers\n")
    (tmp_path / "computed.json").write_text('{"deterministic-output-path": "result.bin"}')
    assert file_digest(tmp_path / "result.bin") == hex_bytes(case["digest"])
    assert result_digest(tmp_path) == hex_bytes(case["digest"])
