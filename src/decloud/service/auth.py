"""Signed requests: writes to a service authorized by an Ethereum key, without sessions.

Some writes are allowed only to one account: unpublishing its orders, pushing its secrets.
The client signs an EIP-712 `ServiceRequest` in the hub's domain (so a signature is valid
for one chain and one deployment only) that names the service and the action, binds the
request body by its hash, and carries a nonce and an expiry:

- the service and action names stop a signature for one write from authorizing another;
- the body hash stops it from authorizing other arguments;
- the expiry bounds how long a captured request is worth anything, and how long the service
  must remember nonces; the nonce, remembered until then, stops it from being replayed.

Wallets show the struct as it is (`eth_signTypedData_v4`). Only keys (EOAs) sign requests:
contract wallets would need an on-chain ERC-1271 call for every write.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from eth_utils.crypto import keccak
from pydantic import BaseModel, Field
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from decloud.protocol.orders import (
    Address,
    Bytes32,
    Eip712Domain,
    Eip712Struct,
    SignatureError,
    String,
    Uint256,
    recover_signer,
    sign_typed,
)
from decloud.service.problems import ProblemError
from decloud.service.tables import UsedNonceRow
from decloud.service.types import AddressStr, SignatureStr, Uint256Str

DEFAULT_LIFETIME_S = 300
MAX_LIFETIME_S = 3_600
"""A request may not be valid longer than this: it bounds how long nonces are kept."""


@dataclass(frozen=True)
class ServiceRequest(Eip712Struct):
    """What the signer approves: one `action` of one `service`, with the body whose keccak
    is `payload`, once (`nonce`), until `expiry` (unix seconds)."""

    signer: Address
    service: String
    action: String
    payload: Bytes32
    nonce: Uint256
    expiry: Uint256


class RequestAuth(BaseModel):
    """The signature part of a signed request."""

    signer: AddressStr
    nonce: Uint256Str = Field(description="Any number the signer never used before expiry")
    expiry: int = Field(ge=0, lt=2**63, description="Unix time after which it is refused")
    signature: SignatureStr


def payload_hash(body: BaseModel) -> bytes:
    """keccak256 of the body's canonical JSON (sorted keys, no spaces), as both the client
    and the service compute it from the same pydantic model."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return keccak(text=canonical)


def sign_request(
    body: BaseModel,
    *,
    service: str,
    action: str,
    domain: Eip712Domain,
    private_key: str | bytes,
    signer: str,
    lifetime_s: int = DEFAULT_LIFETIME_S,
) -> RequestAuth:
    """Client side: authorize `action` on `service` with `body`, for `lifetime_s` seconds."""
    nonce = secrets.randbits(128)
    expiry = int(time.time()) + lifetime_s
    request = ServiceRequest(
        signer=signer,
        service=service,
        action=action,
        payload=payload_hash(body),
        nonce=nonce,
        expiry=expiry,
    )
    signature = sign_typed(request, domain, private_key)
    return RequestAuth(
        signer=signer, nonce=str(nonce), expiry=expiry, signature="0x" + signature.hex()
    )


class RequestVerifier:
    """Service side: checks signed requests for `service` and consumes their nonces."""

    def __init__(
        self, service: str, domain: Eip712Domain, max_lifetime_s: int = MAX_LIFETIME_S
    ) -> None:
        self.service = service
        self.domain = domain
        self.max_lifetime_s = max_lifetime_s

    def signer_of(
        self,
        session: Session,
        action: str,
        body: BaseModel,
        auth: RequestAuth,
        now: float | None = None,
    ) -> str:
        """The address that signed this request; raises a 401 problem unless the signature,
        expiry and nonce are all good. The nonce is recorded in `session`: it is spent only
        if the caller's transaction commits."""
        now = time.time() if now is None else now
        self._check_expiry(auth, now)
        request = ServiceRequest(
            signer=auth.signer,
            service=self.service,
            action=action,
            payload=payload_hash(body),
            nonce=int(auth.nonce),
            expiry=auth.expiry,
        )
        self._check_signature(request, auth.signature)
        self._spend_nonce(session, auth, now)
        return auth.signer

    def _check_expiry(self, auth: RequestAuth, now: float) -> None:
        if auth.expiry <= now:
            raise ProblemError(401, "auth.expired", "the signed request has expired: sign it again")
        if auth.expiry > now + self.max_lifetime_s:
            raise ProblemError(
                401,
                "auth.lifetime",
                f"the signed request expires more than {self.max_lifetime_s} s from now; "
                "sign it with a shorter expiry",
            )

    def _check_signature(self, request: ServiceRequest, signature: str) -> None:
        try:
            signer = recover_signer(
                request.digest(self.domain), bytes.fromhex(signature.removeprefix("0x"))
            )
        except (SignatureError, ValueError) as error:
            raise ProblemError(401, "auth.signature", f"bad request signature: {error}") from error
        if signer != request.signer:
            raise ProblemError(
                401,
                "auth.signature",
                f"the request is not signed by {request.signer} (for service "
                f"{self.service!r}, action {request.action!r}, chain {self.domain.chain_id})",
            )

    def _spend_nonce(self, session: Session, auth: RequestAuth, now: float) -> None:
        """Record the nonce, in its canonical decimal form ("01" and "1" sign the same)."""
        session.execute(delete(UsedNonceRow).where(UsedNonceRow.expiry < int(now)))
        key = (auth.signer, str(int(auth.nonce)))
        replayed = ProblemError(
            401, "auth.replay", "this signed request was already used: sign a new one"
        )
        if session.get(UsedNonceRow, key) is not None:
            raise replayed
        session.add(UsedNonceRow(signer=key[0], nonce=key[1], expiry=auth.expiry))
        try:
            session.flush()
        except IntegrityError as error:  # the same request, served concurrently
            raise replayed from error
