"""The worker's side of the scheduler's HTTP API (docs/scheduler.md, "HTTP API").

One session at a time: the client logs in with a signed request, keeps the token, and logs
in again by itself when the scheduler answers 401 (an expired session, or a scheduler that
lost it). A refusal about a replicate (404: unknown, 409: its state does not allow the
report) raises `ReplicateRefused`: the scheduler no longer expects that replicate. Network
failures raise `SchedulerUnavailable`; the caller decides when to try again.
"""

from __future__ import annotations

import base64
import threading
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from decloud.protocol.orders import Eip712Domain
from decloud.runtime.spec import CapturedLog
from decloud.scheduler.api import LOGIN, SERVICE_NAME
from decloud.scheduler.schemas import (
    CapabilitiesBody,
    LoginAnswer,
    LoginRequest,
    PingAnswer,
    SchedulerInfo,
    WorkAssignment,
)
from decloud.service.auth import sign_request
from decloud.worker.state import Cause

M = TypeVar("M", bound=BaseModel)
MAX_MESSAGE = 4000
"""The longest failure message the scheduler accepts."""


class SchedulerError(Exception):
    """The scheduler refused a request; `status` and `rule` say why."""

    def __init__(self, detail: str, *, status: int | None = None, rule: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.rule = rule


class SchedulerUnavailable(SchedulerError):
    """The scheduler could not be reached."""


class WrongScheduler(SchedulerError):
    """The scheduler runs another pool, or on another chain, than this worker joins."""


class ReplicateRefused(SchedulerError):
    """The scheduler does not know the replicate, or its state refuses the report."""


class SchedulerClient:
    """A worker's session with one scheduler."""

    def __init__(
        self,
        url: str,
        key: bytes,
        address: str,
        domain: Eip712Domain,
        *,
        workerpool: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """`domain` is the hub's, from the worker's own deployment; `workerpool`, when
        given, is the only pool the worker agrees to join."""
        self.url = url
        self.address = address
        self.workerpool = workerpool
        self.max_log_bytes = 0
        self._key = key
        self._domain = domain
        self._http = httpx.Client(base_url=url.rstrip("/") + "/v1", timeout=timeout_s)
        self._token: str | None = None
        self._capabilities: CapabilitiesBody | None = None
        self._login_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SchedulerClient(url={self.url!r}, worker={self.address})"

    def close(self) -> None:
        self._http.close()

    # --- the session ----------------------------------------------------------------------

    def info(self) -> SchedulerInfo:
        return _parsed(self._send("GET", "/info", authenticated=False), SchedulerInfo)

    def join(self, capabilities: CapabilitiesBody) -> LoginAnswer:
        """Check the scheduler runs a pool on this worker's hub, log in, register."""
        info = self.info()
        domain = self._domain
        if (info.chain_id, info.hub.lower()) != (
            domain.chain_id,
            domain.verifying_contract.lower(),
        ):
            raise WrongScheduler(
                f"the scheduler at {self.url} runs on hub {info.hub} of chain {info.chain_id}, "
                f"this worker's deployment is hub {domain.verifying_contract} of chain "
                f"{domain.chain_id}"
            )
        if self.workerpool is not None and info.workerpool.lower() != self.workerpool.lower():
            raise WrongScheduler(
                f"the scheduler at {self.url} runs workerpool {info.workerpool}, this worker "
                f"joins {self.workerpool} only"
            )
        self.workerpool, self.max_log_bytes = info.workerpool, info.max_log_bytes
        self._capabilities = capabilities
        return self._start_session()

    def login(self) -> LoginAnswer:
        if self.workerpool is None:
            raise WrongScheduler("join the scheduler first: its pool is not known yet")
        request = LoginRequest(workerpool=self.workerpool)
        auth = sign_request(
            request,
            service=SERVICE_NAME,
            action=LOGIN,
            domain=self._domain,
            private_key=self._key,
            signer=self.address,
        )
        body = {"request": request.model_dump(mode="json"), "auth": auth.model_dump(mode="json")}
        answer = _parsed(self._send("POST", "/login", authenticated=False, json=body), LoginAnswer)
        self._token = answer.token
        return answer

    def ping(self) -> PingAnswer:
        return _parsed(self._call("POST", "/workers/me/ping"), PingAnswer)

    def pull(self) -> WorkAssignment | None:
        answer = self._call("POST", "/work")
        return None if answer.status_code == 204 else _parsed(answer, WorkAssignment)

    # --- reports --------------------------------------------------------------------------

    def started(self, taskid: bytes) -> None:
        self._report(taskid, "started", None)

    def contributed(self, taskid: bytes, tx_hash: str) -> None:
        self._report(taskid, "contributed", {"tx_hash": tx_hash})

    def revealed(self, taskid: bytes, tx_hash: str) -> None:
        self._report(taskid, "revealed", {"tx_hash": tx_hash})

    def failed(self, taskid: bytes, cause: Cause, message: str) -> None:
        body = {"cause": str(cause), "message": _capped(message)}
        self._report(taskid, "failed", body)

    def result(self, taskid: bytes, link: str, callback_data: bytes) -> None:
        body = {"link": link, "callback_data": "0x" + callback_data.hex()}
        self._report(taskid, "result", body)

    def logs(self, taskid: bytes, stdout: CapturedLog, stderr: CapturedLog) -> None:
        """The head of the app's output streams (as much as the scheduler keeps), for the
        requester's `decloud task logs`."""
        cap = self.max_log_bytes
        body = {
            "stdout": base64.b64encode(stdout.data[:cap]).decode(),
            "stderr": base64.b64encode(stderr.data[:cap]).decode(),
            "stdout_total_bytes": stdout.total_bytes,
            "stderr_total_bytes": stderr.total_bytes,
        }
        self._call("PUT", f"/replicates/0x{taskid.hex()}/logs", json=body, replicate=True)

    def _report(self, taskid: bytes, step: str, body: dict[str, Any] | None) -> None:
        self._call("POST", f"/replicates/0x{taskid.hex()}/{step}", json=body, replicate=True)

    # --- transport ------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, replicate: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """An authenticated request; logs in (again) when the session is missing or gone."""
        if self._token is None:
            self._relogin(None)
        token = self._token
        answer = self._send(method, path, authenticated=True, **kwargs)
        if answer.status_code == 401:
            self._relogin(token)
            answer = self._send(method, path, authenticated=True, **kwargs)
        if answer.is_error:
            raise _refusal(answer, replicate)
        return answer

    def _relogin(self, stale: str | None) -> None:
        """Start a session unless another thread already replaced the `stale` token."""
        with self._login_lock:
            if self._token == stale:
                self._start_session()

    def _start_session(self) -> LoginAnswer:
        """Log in and register: a scheduler that lost the session may have lost the
        worker's capabilities too (a new database), and it hands out no work without them."""
        answer = self.login()
        if self._capabilities is not None:
            body = self._capabilities.model_dump(mode="json")
            registered = self._send(
                "PUT", "/workers/me/capabilities", authenticated=True, json=body
            )
            if registered.is_error:
                raise _refusal(registered, replicate=False)
        return answer

    def _send(
        self, method: str, path: str, *, authenticated: bool, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}"} if authenticated else {}
        try:
            answer = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise SchedulerUnavailable(
                f"the scheduler at {self.url} is unreachable: {error}"
            ) from error
        if not authenticated and answer.is_error:
            raise _refusal(answer, replicate=False)
        return answer


def _parsed(answer: httpx.Response, model: type[M]) -> M:
    return model.model_validate(answer.json())


def _capped(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def _refusal(answer: httpx.Response, replicate: bool) -> SchedulerError:
    """The scheduler's problem details as an exception."""
    try:
        problem = answer.json()
        detail, rule = f"{problem['detail']} [{problem['rule']}]", str(problem["rule"])
    except (ValueError, KeyError, TypeError):
        detail, rule = f"the scheduler answered {answer.status_code}: {answer.text[:200]}", None
    kind = ReplicateRefused if replicate and answer.status_code in (404, 409) else SchedulerError
    if answer.status_code >= 500:
        kind = SchedulerUnavailable
    return kind(detail, status=answer.status_code, rule=rule)
