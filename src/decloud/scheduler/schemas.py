"""Requests and answers of the scheduler's HTTP API, shared by the service, workers and the
SDK.

Amounts and other uint256 values travel as decimal strings, bytes as 0x-hex, times as unix
seconds: wall-clock floats, or block-time integers for deadlines.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from decloud.runtime.spec import FailureCause
from decloud.scheduler.state import ReplicateState, TaskState, WorkerCause
from decloud.service.auth import RequestAuth
from decloud.service.types import AddressStr, Bytes32Str, SignatureStr, Uint256Str

MAX_RESULTS_BYTES = 4096
"""The hub logs at most this much of a result link (or callback data)."""
HexStr = str


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- login and workers -----------------------------------------------------------------


class LoginRequest(_Message):
    workerpool: AddressStr = Field(description="The pool the worker logs in to")


class SignedLogin(_Message):
    """A login, signed by the worker's key (service `scheduler`, action `login`)."""

    request: LoginRequest
    auth: RequestAuth


class LoginAnswer(BaseModel):
    worker: AddressStr
    token: str = Field(description="Send as `Authorization: Bearer <token>`")
    expires_at: float
    ping_interval_s: float = Field(description="Ping at least this often to stay alive")


class CapabilitiesBody(_Message):
    cores: int = Field(ge=1, le=4096)
    memory_mb: int = Field(ge=1, le=2**31 - 1)
    runtimes: list[Literal["WASM", "OCI"]] = Field(min_length=1, max_length=2)
    gpu: bool = False
    tee: bool = False
    slots: int = Field(default=1, ge=1, le=256, description="Replicates run at once")


class WorkerAnswer(BaseModel):
    address: AddressStr
    score: int
    capabilities: CapabilitiesBody | None
    last_ping: float
    lost: bool


class ReplicateBrief(BaseModel):
    """One of the worker's replicates, and what the scheduler expects of it."""

    taskid: Bytes32Str
    state: ReplicateState
    upload_requested: bool = Field(
        description="Revealed, and no result link yet: upload the result and report its link"
    )


class PingAnswer(BaseModel):
    replicates: list[ReplicateBrief] = Field(
        description="The worker's replicates that still need it (not finished, or revealed "
        "and awaiting the result link); a replicate missing here was cancelled or lost"
    )
    ping_interval_s: float


# --- work ------------------------------------------------------------------------------


class DealTerms(BaseModel):
    """The deal exactly as the hub hashes it: pass it back with every task call."""

    app: AddressStr
    app_owner: AddressStr
    app_price: Uint256Str
    dataset: AddressStr
    dataset_owner: AddressStr
    dataset_price: Uint256Str
    workerpool: AddressStr
    workerpool_owner: AddressStr
    workerpool_price: Uint256Str
    requester: AddressStr
    beneficiary: AddressStr
    callback: AddressStr
    category: Uint256Str
    time_ref: Uint256Str
    start_time: Uint256Str
    trust: Uint256Str
    tag: Bytes32Str
    bot_first: Uint256Str
    bot_size: Uint256Str
    worker_stake: Uint256Str
    scheduler_reward_ratio: Uint256Str


class AppInfo(BaseModel):
    """The app as its registry describes it."""

    address: AddressStr
    type: Literal["WASM", "OCI"]
    multiaddr: str
    checksum: Bytes32Str
    mrenclave: HexStr


class DatasetInfo(BaseModel):
    address: AddressStr
    multiaddr: str
    checksum: Bytes32Str


class WorkAssignment(BaseModel):
    """A replicate handed to the worker: run the app, contribute with `authorization`."""

    taskid: Bytes32Str
    dealid: Bytes32Str
    index: int
    deal: DealTerms
    params: str
    app: AppInfo
    dataset: DatasetInfo | None
    authorization: SignatureStr = Field(
        description="The workerpool owner's signature of WorkerpoolAuthorization(worker, "
        "taskid, enclaveChallenge)"
    )
    enclave_challenge: AddressStr
    contribution_deadline: int
    final_deadline: int


class Reported(_Message):
    tx_hash: Bytes32Str = Field(description="The transaction that contributed or revealed")


class FailureReport(_Message):
    cause: FailureCause | WorkerCause
    message: str = Field(max_length=4000, description="What happened, for the requester")


class ResultReport(_Message):
    link: str = Field(min_length=1, max_length=MAX_RESULTS_BYTES, description="Result link (CID)")
    callback_data: HexStr = Field(
        default="0x", pattern=r"^0x([0-9a-fA-F]{2}){0,4096}$", description="For a callback"
    )


class LogsUpload(_Message):
    """The head of the app's output streams, base64; the totals count every byte written."""

    stdout: str = Field(description="base64")
    stderr: str = Field(description="base64")
    stdout_total_bytes: int = Field(ge=0)
    stderr_total_bytes: int = Field(ge=0)


class ReplicateAnswer(BaseModel):
    """The worker's replicate as the scheduler sees it: lets a restarted worker resume."""

    taskid: Bytes32Str
    state: ReplicateState
    authorization: SignatureStr | None
    upload_requested: bool
    cause: str | None
    message: str


# --- requesters ----------------------------------------------------------------------------


class ReplicateStatus(BaseModel):
    worker: AddressStr
    state: ReplicateState
    cause: str | None = Field(description="Why it ended without a result, when it did")
    message: str = Field(description="What happened, as the worker or the scheduler said")
    advice: str | None = Field(description="What to do about the cause")
    assigned_at: float
    result_hash: Bytes32Str | None
    results: str | None


class HistoryEntry(BaseModel):
    at: float
    event: str
    changes: list[str]


class TaskStatus(BaseModel):
    taskid: Bytes32Str
    dealid: Bytes32Str
    index: int
    state: TaskState
    reason: str = Field(description="Why it waits, gave up or failed")
    consensus: Bytes32Str | None
    contribution_deadline: int
    reveal_deadline: int | None
    final_deadline: int
    results: str | None
    replicates: list[ReplicateStatus]
    history: list[HistoryEntry]


class TaskBrief(BaseModel):
    taskid: Bytes32Str
    index: int
    state: TaskState


class DealStatus(BaseModel):
    dealid: Bytes32Str
    requester: AddressStr
    trust: int
    app: AddressStr
    tasks: list[TaskBrief]


class LogsRequest(_Message):
    taskid: Bytes32Str


class SignedLogsRequest(_Message):
    """Signed by the deal's requester (service `scheduler`, action `task-logs`)."""

    request: LogsRequest
    auth: RequestAuth


class ReplicateLogs(BaseModel):
    worker: AddressStr
    stdout: str = Field(description="base64")
    stderr: str = Field(description="base64")
    stdout_total_bytes: int
    stderr_total_bytes: int


class TaskLogs(BaseModel):
    taskid: Bytes32Str
    replicates: list[ReplicateLogs]


class SchedulerInfo(BaseModel):
    workerpool: AddressStr
    owner: AddressStr
    chain_id: int
    hub: AddressStr
    ping_interval_s: float
    lost_after_s: float
    max_log_bytes: int
