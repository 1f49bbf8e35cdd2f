"""Worker sessions: a login proven by a signed request turns into a bearer token.

A worker signs one `ServiceRequest` (service `scheduler`, action `login`, a nonce and an
expiry: `decloud.service.auth`) naming the workerpool it logs in to, so that the signature
is worth nothing for another pool, after its expiry, or a second time. It then sends the
token on every call. Only the token's sha256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from decloud.scheduler.models import SessionRow
from decloud.service.problems import ProblemError


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, worker: str, now: float, ttl_s: float) -> tuple[str, float]:
    """A new token for the worker and its expiry; expired sessions are dropped."""
    session.execute(delete(SessionRow).where(SessionRow.expires_at < now))
    token = secrets.token_urlsafe(32)
    expires_at = now + ttl_s
    session.add(SessionRow(token_hash=_digest(token), worker=worker, expires_at=expires_at))
    return token, expires_at


def session_worker(session: Session, token: str, now: float) -> str:
    """The worker a token was given to; a 401 problem if it is unknown or expired."""
    row = session.scalars(
        select(SessionRow).where(SessionRow.token_hash == _digest(token))
    ).one_or_none()
    if row is None:
        raise ProblemError(401, "session.unknown", "unknown session token: log in again")
    if row.expires_at <= now:
        raise ProblemError(401, "session.expired", "the session expired: log in again")
    return row.worker
