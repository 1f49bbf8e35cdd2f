"""The scheduler's HTTP API: workers log in, register, ping, pull work and report; requesters
follow their tasks and read their logs; Prometheus scrapes `/metrics`.

Handlers stay thin: each request is one write transaction (`engine.write_transaction`, so
that SQLite serializes it), the decisions are the state machine's (through `Engine`), and a report
the machine finds impossible is refused with 409 and the task's story. Chain transactions a
report calls for are handed to the scheduler's loop.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import fields
from typing import Annotated, cast

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from decloud.chain.errors import ChainError
from decloud.chain.hub import ZERO_ADDRESS
from decloud.protocol.hub import Deal
from decloud.scheduler.engine import Assignment, WriterBusy, write_transaction
from decloud.scheduler.models import (
    DealRow,
    HistoryRow,
    LogRow,
    ReplicateRow,
    TaskRow,
    WorkerRow,
)
from decloud.scheduler.schemas import (
    AppInfo,
    CapabilitiesBody,
    DatasetInfo,
    DealStatus,
    DealTerms,
    FailureReport,
    HistoryEntry,
    LoginAnswer,
    LogsUpload,
    PingAnswer,
    ReplicateAnswer,
    ReplicateBrief,
    ReplicateLogs,
    ReplicateStatus,
    Reported,
    ResultReport,
    SchedulerInfo,
    SignedLogin,
    SignedLogsRequest,
    TaskBrief,
    TaskLogs,
    TaskStatus,
    WorkAssignment,
    WorkerAnswer,
)
from decloud.scheduler.service import Scheduler
from decloud.scheduler.sessions import open_session, session_worker
from decloud.scheduler.state import (
    PENDING,
    TASK_DONE,
    Capabilities,
    Event,
    InvalidTransition,
    ReplicateFailed,
    ReplicateReported,
    ReplicateStarted,
    ResultUploaded,
    UnknownSubject,
    parse_cause,
)
from decloud.scheduler.store import task_with_deal, terms_of, unhex
from decloud.service.auth import RequestVerifier
from decloud.service.db import Database, request_session
from decloud.service.problems import ProblemError, install_problem_handlers, problem_responses

SERVICE_NAME = "scheduler"
"""The service name signed requests carry."""
LOGIN = "login"
TASK_LOGS = "task-logs"
TaskId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="Task id, 0x-hex")]
DealId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="Deal id, 0x-hex")]


def _scheduler(request: Request) -> Scheduler:
    return cast(Scheduler, request.app.state.scheduler)


def _verifier(request: Request) -> RequestVerifier:
    return cast(RequestVerifier, request.app.state.verifier)


def _write_session(request: Request) -> Iterator[Session]:
    """The request's session, one write transaction for the whole request; 503 when the
    database stays busy (the worker asks again later)."""
    try:
        with write_transaction(cast(Database, request.app.state.database)) as session:
            yield session
    except WriterBusy as error:
        raise ProblemError(503, "database.busy", f"{error}: ask again") from error


SchedulerDep = Annotated[Scheduler, Depends(_scheduler)]
VerifierDep = Annotated[RequestVerifier, Depends(_verifier)]
# scope="function": the transaction commits before the answer is sent. With FastAPI's default
# scope it would commit after, so a worker could use a login token, or start a replicate,
# that the database does not hold yet (or never will, if the commit fails).
SessionDep = Annotated[Session, Depends(request_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(_write_session, scope="function")]
_bearer = HTTPBearer(auto_error=False, description="The token of POST /v1/login")


def _current_worker(
    session: WriteSessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None:
        raise ProblemError(
            401, "session.missing", "log in first (POST /v1/login), then send the token as "
            "`Authorization: Bearer <token>`",
        )  # fmt: skip
    return session_worker(session, credentials.credentials, time.time())


WorkerDep = Annotated[str, Depends(_current_worker)]
router = APIRouter(prefix="/v1")


def create_app(scheduler: Scheduler, *, run_loop: bool = True) -> FastAPI:
    """The scheduler's ASGI app; with `run_loop`, its loop runs while it serves."""
    app = FastAPI(
        title="decloud scheduler",
        version="1",
        description="Runs one workerpool: hands replicates to workers, finalizes tasks.",
        lifespan=_looping(scheduler) if run_loop else None,
    )
    app.state.scheduler = scheduler
    app.state.database = scheduler.database
    app.state.verifier = RequestVerifier(SERVICE_NAME, scheduler.chain.hub.domain)
    install_problem_handlers(app, max_body_bytes=scheduler.settings.max_body_bytes)
    app.include_router(router)
    app.add_api_route(
        "/metrics",
        _metrics,
        methods=["GET"],
        response_class=PlainTextResponse,
        summary="Prometheus metrics",
    )
    return app


def _looping(scheduler: Scheduler) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the scheduler's loop runs in a thread beside the server."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        thread = threading.Thread(target=scheduler.run, name="scheduler-loop", daemon=True)
        thread.start()
        try:
            yield
        finally:
            scheduler.stop()
            thread.join()

    return lifespan


def _metrics(scheduler: SchedulerDep) -> Response:
    return Response(scheduler.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@contextmanager
def _decided() -> Iterator[None]:
    """The machine's refusals as problems: an unknown task or replicate is 404, a report
    its state does not allow is 409 with the task's story."""
    try:
        yield
    except UnknownSubject as error:
        raise ProblemError(404, "replicate.unknown", str(error)) from error
    except InvalidTransition as error:
        raise ProblemError(409, "replicate.state", str(error)) from error


# --- the pool --------------------------------------------------------------------------------


@router.get("/info")
def info(scheduler: SchedulerDep) -> SchedulerInfo:
    """Which pool this scheduler runs, on which chain, and the workers' rules."""
    return SchedulerInfo(
        workerpool=scheduler.settings.workerpool,
        owner=scheduler.chain.owner,
        chain_id=scheduler.chain.hub.deployment.chain_id,
        hub=scheduler.chain.hub.hub.address,
        ping_interval_s=scheduler.settings.ping_interval_s,
        lost_after_s=scheduler.policy.lost_after_s,
        max_log_bytes=scheduler.settings.max_log_bytes,
    )


# --- workers ---------------------------------------------------------------------------------


@router.post("/login", responses=problem_responses(401, 403, 422, 503))
def login(
    body: SignedLogin, scheduler: SchedulerDep, verifier: VerifierDep, session: WriteSessionDep
) -> LoginAnswer:
    """Log a worker in by a signed request (nonce and expiry: a signature serves once);
    answers a session token."""
    worker = verifier.signer_of(session, LOGIN, body.request, body.auth)
    if body.request.workerpool != scheduler.settings.workerpool:
        raise ProblemError(
            403, "login.workerpool", f"this scheduler runs {scheduler.settings.workerpool}"
        )
    allowed = scheduler.settings.allowed_workers
    if allowed and worker not in allowed:
        raise ProblemError(403, "worker.unknown", f"{worker} is not a worker of this pool")
    try:
        score = scheduler.chain.score(worker)
    except ChainError as error:
        raise ProblemError(503, "chain.unavailable", "cannot read the worker's score") from error
    now = time.time()
    scheduler.engine.login(session, worker, score, now)
    token, expires_at = open_session(session, worker, now, scheduler.settings.session_ttl_s)
    return LoginAnswer(
        worker=worker,
        token=token,
        expires_at=expires_at,
        ping_interval_s=scheduler.settings.ping_interval_s,
    )


@router.put("/workers/me/capabilities", responses=problem_responses(401, 422))
def register(
    body: CapabilitiesBody, worker: WorkerDep, scheduler: SchedulerDep, session: WriteSessionDep
) -> WorkerAnswer:
    """Declare what the worker offers; it gets only work it can run."""
    capabilities = Capabilities(
        cores=body.cores,
        memory_mb=body.memory_mb,
        runtimes=frozenset(body.runtimes),
        gpu=body.gpu,
        tee=body.tee,
        slots=body.slots,
    )
    scheduler.engine.register(session, worker, capabilities, time.time())
    return _worker_answer(session, worker)


@router.get("/workers/me", responses=problem_responses(401))
def me(worker: WorkerDep, session: WriteSessionDep) -> WorkerAnswer:
    return _worker_answer(session, worker)


@router.post("/workers/me/ping", responses=problem_responses(401))
def ping(worker: WorkerDep, scheduler: SchedulerDep, session: WriteSessionDep) -> PingAnswer:
    """Stay alive; answers the replicates the scheduler still expects work on."""
    scheduler.engine.ping(session, worker, time.time())
    rows = session.execute(
        select(ReplicateRow, TaskRow)
        .join(TaskRow, TaskRow.taskid == ReplicateRow.taskid)
        .where(
            ReplicateRow.worker == worker,
            or_(
                ReplicateRow.state.in_(PENDING),
                and_(ReplicateRow.state == "revealed", TaskRow.state.not_in(TASK_DONE)),
            ),
        )
    ).all()
    return PingAnswer(
        replicates=[
            ReplicateBrief(
                taskid=replicate.taskid,
                state=replicate.state,  # type: ignore[arg-type]  # a declared state
                upload_requested=_upload_requested(replicate, task),
            )
            for replicate, task in rows
        ],
        ping_interval_s=scheduler.settings.ping_interval_s,
    )


def _worker_answer(session: Session, worker: str) -> WorkerAnswer:
    row = session.get(WorkerRow, worker)
    if row is None:
        raise ProblemError(404, "worker.unknown", f"no worker {worker}: log in")
    capabilities = None
    if row.runtimes is not None and row.cores is not None and row.memory_mb is not None:
        capabilities = CapabilitiesBody(
            cores=row.cores,
            memory_mb=row.memory_mb,
            runtimes=row.runtimes,  # type: ignore[arg-type]  # validated when registered
            gpu=row.gpu,
            tee=row.tee,
            slots=row.slots,
        )
    return WorkerAnswer(
        address=worker,
        score=row.score,
        capabilities=capabilities,
        last_ping=row.last_ping,
        lost=row.lost,
    )


def _upload_requested(replicate: ReplicateRow, task: TaskRow) -> bool:
    return replicate.state == "revealed" and task.results is None


# --- work ------------------------------------------------------------------------------------


@router.post(
    "/work",
    response_model=WorkAssignment,
    responses={
        204: {"description": "No replicate for this worker now: pull again later"},
        **problem_responses(401, 409),
    },
)
def pull(
    worker: WorkerDep, scheduler: SchedulerDep, session: WriteSessionDep
) -> WorkAssignment | Response:
    """Ask for a replicate: its task, the deal's terms, the app and dataset, the params and
    the authorization to contribute; 204 when there is none for this worker now."""
    if _worker_answer(session, worker).capabilities is None:
        raise ProblemError(
            409, "worker.capabilities", "register the worker's capabilities first: "
            "PUT /v1/workers/me/capabilities",
        )  # fmt: skip
    with _decided():
        assignment = scheduler.engine.pull(
            session, worker, time.time(), scheduler.chain.clock.now()
        )
    if assignment is None:
        scheduler.metrics.pulls.labels("none").inc()
        return Response(status_code=204)
    scheduler.metrics.pulls.labels("assigned").inc()
    return _work(assignment)


def _work(assignment: Assignment) -> WorkAssignment:
    deal_row, task, replicate = assignment.deal, assignment.task, assignment.replicate
    deal = Deal.decode(deal_row.deal)
    assert replicate.authorization is not None, "signed in the transaction that assigned it"
    dataset = None
    if deal.dataset != ZERO_ADDRESS:
        dataset = DatasetInfo(
            address=deal.dataset,
            multiaddr=deal_row.dataset_multiaddr,
            checksum=deal_row.dataset_checksum,
        )
    return WorkAssignment(
        taskid=task.taskid,
        dealid=deal_row.dealid,
        index=task.task_index,
        deal=_deal_terms(deal),
        params=deal_row.params,
        app=AppInfo(
            address=deal.app,
            type=deal_row.app_type,  # type: ignore[arg-type]  # an AppType name
            multiaddr=deal_row.app_multiaddr,
            checksum=deal_row.app_checksum,
            mrenclave=deal_row.app_mrenclave,
        ),
        dataset=dataset,
        authorization=replicate.authorization,
        enclave_challenge=ZERO_ADDRESS,
        contribution_deadline=task.contribution_deadline,
        final_deadline=terms_of(deal_row).final_deadline,
    )


def _deal_terms(deal: Deal) -> DealTerms:
    """The deal in the API's JSON form: uints as decimal strings, bytes as 0x-hex."""
    values: dict[str, str] = {}
    for item in fields(deal):
        value = getattr(deal, item.name)
        values[item.name] = "0x" + value.hex() if isinstance(value, bytes) else str(value)
    return DealTerms.model_validate(values)


# --- reports ---------------------------------------------------------------------------------


def _report(
    session: Session, scheduler: Scheduler, worker: str, taskid: str, event: Event, kind: str
) -> ReplicateAnswer:
    with _decided():
        actions = scheduler.engine.on_task(session, event, unhex(taskid))
    scheduler.metrics.reports.labels(kind).inc()
    scheduler.submit(actions)
    if kind in ("contributed", "revealed"):
        # The worker saw its transaction mined: the watcher follows the chain now rather
        # than at its next poll (a consensus, or a reveal the report could not count yet).
        scheduler.wake()
    return _replicate_answer(session, worker, taskid)


def _replicate_answer(session: Session, worker: str, taskid: str) -> ReplicateAnswer:
    replicate = session.get(ReplicateRow, (taskid.lower(), worker))
    task = session.get(TaskRow, taskid.lower())
    if replicate is None or task is None:
        raise ProblemError(404, "replicate.unknown", f"{worker} has no replicate of {taskid}")
    return ReplicateAnswer(
        taskid=replicate.taskid,
        state=replicate.state,  # type: ignore[arg-type]  # a declared state
        authorization=replicate.authorization,
        upload_requested=_upload_requested(replicate, task),
        cause=replicate.cause,
        message=replicate.message,
    )


_REPORTS = problem_responses(401, 404, 409, 422)


@router.get("/replicates/{taskid}", responses=problem_responses(401, 404))
def replicate(taskid: TaskId, worker: WorkerDep, session: WriteSessionDep) -> ReplicateAnswer:
    """The worker's replicate of a task, with its authorization: what a restarted worker
    needs to resume."""
    return _replicate_answer(session, worker, taskid)


@router.post("/replicates/{taskid}/started", responses=_REPORTS)
def started(
    taskid: TaskId, worker: WorkerDep, scheduler: SchedulerDep, session: WriteSessionDep
) -> ReplicateAnswer:
    """The worker began downloading and running the app."""
    event = ReplicateStarted(now=time.time(), taskid=unhex(taskid), worker=worker)
    return _report(session, scheduler, worker, taskid, event, "started")


@router.post("/replicates/{taskid}/contributed", responses=_REPORTS)
def contributed(
    taskid: TaskId,
    body: Reported,
    worker: WorkerDep,
    scheduler: SchedulerDep,
    session: WriteSessionDep,
) -> ReplicateAnswer:
    """The worker sent its contribution; the scheduler counts it once it is on-chain."""
    now = time.time()
    event = ReplicateReported(
        now=now, taskid=unhex(taskid), worker=worker, step="contributed", tx_hash=body.tx_hash
    )
    scheduler.watcher.contribution_mined(session, body.tx_hash, unhex(taskid), worker, now)
    return _report(session, scheduler, worker, taskid, event, "contributed")


@router.post("/replicates/{taskid}/revealed", responses=_REPORTS)
def revealed(
    taskid: TaskId,
    body: Reported,
    worker: WorkerDep,
    scheduler: SchedulerDep,
    session: WriteSessionDep,
) -> ReplicateAnswer:
    """The worker sent its reveal; the scheduler counts it once it is on-chain."""
    now = time.time()
    event = ReplicateReported(
        now=now, taskid=unhex(taskid), worker=worker, step="revealed", tx_hash=body.tx_hash
    )
    mined = scheduler.watcher.reveal_mined(session, body.tx_hash, unhex(taskid), worker, now)
    scheduler.submit(mined)
    return _report(session, scheduler, worker, taskid, event, "revealed")


@router.post("/replicates/{taskid}/failed", responses=_REPORTS)
def failed(
    taskid: TaskId,
    body: FailureReport,
    worker: WorkerDep,
    scheduler: SchedulerDep,
    session: WriteSessionDep,
) -> ReplicateAnswer:
    """The worker gives the replicate up, with a typed cause; another worker may get it."""
    event = ReplicateFailed(
        now=time.time(), taskid=unhex(taskid), worker=worker, cause=body.cause, message=body.message
    )
    return _report(session, scheduler, worker, taskid, event, "failed")


@router.post("/replicates/{taskid}/result", responses=_REPORTS)
def result(
    taskid: TaskId,
    body: ResultReport,
    worker: WorkerDep,
    scheduler: SchedulerDep,
    session: WriteSessionDep,
) -> ReplicateAnswer:
    """A winner stored the result: its link goes on-chain when the task is finalized."""
    event = ResultUploaded(
        now=time.time(),
        taskid=unhex(taskid),
        worker=worker,
        link=body.link,
        callback_data=unhex(body.callback_data),
    )
    return _report(session, scheduler, worker, taskid, event, "result")


@router.put(
    "/replicates/{taskid}/logs", status_code=204, responses=problem_responses(401, 404, 422)
)
def upload_logs(
    taskid: TaskId,
    body: LogsUpload,
    worker: WorkerDep,
    scheduler: SchedulerDep,
    session: WriteSessionDep,
) -> Response:
    """Keep the head of the app's stdout and stderr for the requester (size-capped)."""
    _replicate_answer(session, worker, taskid)
    cap = scheduler.settings.max_log_bytes
    stdout, stderr = _decoded(body.stdout, "stdout")[:cap], _decoded(body.stderr, "stderr")[:cap]
    row = session.get(LogRow, (taskid.lower(), worker)) or LogRow(
        taskid=taskid.lower(), worker=worker
    )
    row.stdout, row.stderr = stdout, stderr
    row.stdout_total = max(body.stdout_total_bytes, len(stdout))
    row.stderr_total = max(body.stderr_total_bytes, len(stderr))
    row.at = time.time()
    session.add(row)
    return Response(status_code=204)


def _decoded(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise ProblemError(422, "logs.encoding", f"{what} is not valid base64") from error


# --- requesters ------------------------------------------------------------------------------


@router.get("/tasks/{taskid}", responses=problem_responses(404, 422))
def task_status(taskid: TaskId, session: SessionDep) -> TaskStatus:
    """A task and its replicates: states, causes and what to do about them, and its story."""
    found = task_with_deal(session, taskid.lower())
    if found is None:
        raise ProblemError(404, "task.unknown", f"this scheduler has no task {taskid}")
    task, deal = found
    replicates = session.scalars(
        select(ReplicateRow)
        .where(ReplicateRow.taskid == task.taskid)
        .order_by(ReplicateRow.assigned_at)
    )
    history = session.scalars(
        select(HistoryRow).where(HistoryRow.taskid == task.taskid).order_by(HistoryRow.seq)
    )
    return TaskStatus(
        taskid=task.taskid,
        dealid=task.dealid,
        index=task.task_index,
        state=task.state,  # type: ignore[arg-type]  # a declared state
        reason=task.reason,
        consensus=task.consensus,
        contribution_deadline=task.contribution_deadline,
        reveal_deadline=task.reveal_deadline,
        final_deadline=terms_of(deal).final_deadline,
        results=task.results,
        replicates=[_replicate_status(r) for r in replicates],
        history=[HistoryEntry(at=h.at, event=h.description, changes=h.changes) for h in history],
    )


def _replicate_status(row: ReplicateRow) -> ReplicateStatus:
    return ReplicateStatus(
        worker=row.worker,
        state=row.state,  # type: ignore[arg-type]  # a declared state
        cause=row.cause,
        message=row.message,
        advice=None if row.cause is None else parse_cause(row.cause).advice,
        assigned_at=row.assigned_at,
        result_hash=row.result_hash,
        results=row.results,
    )


@router.get("/deals/{dealid}", responses=problem_responses(404, 422))
def deal_status(dealid: DealId, session: SessionDep) -> DealStatus:
    """A deal's tasks and their states."""
    deal = session.get(DealRow, dealid.lower())
    if deal is None:
        raise ProblemError(404, "deal.unknown", f"this scheduler has no deal {dealid}")
    tasks = session.scalars(
        select(TaskRow).where(TaskRow.dealid == deal.dealid).order_by(TaskRow.task_index)
    )
    return DealStatus(
        dealid=deal.dealid,
        requester=deal.requester,
        trust=deal.trust,
        app=Deal.decode(deal.deal).app,
        tasks=[
            TaskBrief(taskid=t.taskid, index=t.task_index, state=t.state)  # type: ignore[arg-type]
            for t in tasks
        ],
    )


@router.post("/tasks/{taskid}/logs", responses=problem_responses(401, 403, 404, 422))
def task_logs(
    taskid: TaskId, body: SignedLogsRequest, verifier: VerifierDep, session: WriteSessionDep
) -> TaskLogs:
    """The app's stdout and stderr of every replicate, for the deal's requester only (a
    signed request: service `scheduler`, action `task-logs`)."""
    if body.request.taskid != taskid.lower():
        raise ProblemError(422, "logs.task", "the signed request names another task")
    signer = verifier.signer_of(session, TASK_LOGS, body.request, body.auth)
    found = task_with_deal(session, taskid.lower())
    if found is None:
        raise ProblemError(404, "task.unknown", f"this scheduler has no task {taskid}")
    if signer != found[1].requester:
        raise ProblemError(403, "logs.not_requester", "only the deal's requester reads its logs")
    rows = session.scalars(select(LogRow).where(LogRow.taskid == taskid.lower()))
    return TaskLogs(
        taskid=taskid.lower(),
        replicates=[
            ReplicateLogs(
                worker=row.worker,
                stdout=base64.b64encode(row.stdout).decode(),
                stderr=base64.b64encode(row.stderr).decode(),
                stdout_total_bytes=row.stdout_total,
                stderr_total_bytes=row.stderr_total,
            )
            for row in rows
        ],
    )
