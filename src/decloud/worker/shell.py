"""The worker's I/O: carries out one instruction of a replicate's machine and answers with
the event that says what happened.

Each instruction is safe to carry out again after a restart: `Contribute` and `Reveal` look
at the chain before sending anything, `Fetch` and `Run` start from fresh directories, the
result store answers an upload it already holds like the first time. A failure that may pass
(a node, scheduler or store out of reach, a transaction not mined in time) raises
`TryAgain`; the driver waits and carries the instruction out again. What a requester must
hear about arrives as a typed failure event instead.

Work directory of a replicate: `WORK/<taskid>/in` (the app's read-only inputs) and
`WORK/<taskid>/out` (its output, kept until the result is uploaded).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from decloud.chain.errors import ChainError, ContractRevert, EscrowError
from decloud.chain.registries import AppType
from decloud.protocol.digest import read_computed
from decloud.protocol.hub import CONTRIBUTION_PROVEN, CONTRIBUTION_UNSET, TASK_REVEALING
from decloud.protocol.ids import result_hash
from decloud.runtime import (
    DockerRuntime,
    Limits,
    RunOutcome,
    RunSpec,
    Runtime,
    TaskContext,
    WasmRuntime,
)
from decloud.runtime.environment import app_environment
from decloud.runtime.spec import MIB, FailureCause
from decloud.scheduler.schemas import WorkAssignment
from decloud.scheduler.state import WorkerCause
from decloud.storage.cid import RESULT_LINK_PREFIX
from decloud.storage.client import StorageClient, StorageError
from decloud.worker.chain import WorkerChain
from decloud.worker.client import (
    ReplicateRefused,
    SchedulerClient,
    SchedulerError,
    SchedulerUnavailable,
)
from decloud.worker.fetch import Fetcher, FetchError, input_file_name, is_url, parse_params
from decloud.worker.state import (
    ChainChecked,
    CheckChain,
    CleanUp,
    Computed,
    Contribute,
    Contributed,
    ContributionFailed,
    Event,
    Fetch,
    Fetched,
    FetchFailed,
    Instruction,
    Report,
    ReportFailure,
    Reveal,
    Revealed,
    RevealFailed,
    Run,
    RunFailed,
    TaskSeen,
    Upload,
    Uploaded,
    UploadFailed,
    WatchTask,
    Withdrawn,
)

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
REPORT_SENDERS = 4
"""Reports sent at once (of different replicates)."""
FAILURE_REPORT_WAITS_S = (1.0, 2.0, 4.0)
"""Waits between the attempts to report a failure."""


class TryAgain(Exception):
    """The instruction could not be carried out now; it can be later."""


@dataclass(frozen=True)
class ShellSettings:
    """How the shell runs apps and waits."""

    fuel: int
    app_memory_mb: int
    cpus: float
    chain_poll_s: float
    result_report_wait_s: float


class Shell:
    """Carries out instructions for every replicate of one worker (thread-safe)."""

    def __init__(
        self,
        *,
        chain: WorkerChain,
        scheduler: SchedulerClient,
        storage: StorageClient,
        fetcher: Fetcher,
        runtimes: Mapping[AppType, Runtime],
        work_root: Path,
        key: bytes,
        settings: ShellSettings,
        stopping: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chain = chain
        self.scheduler = scheduler
        self.storage = storage
        self.fetcher = fetcher
        self.runtimes = runtimes
        self.work_root = work_root
        self.settings = settings
        self._key = key
        self._stopping = stopping
        self._clock = clock
        self._reports = ThreadPoolExecutor(
            max_workers=REPORT_SENDERS, thread_name_prefix="worker-reports"
        )
        self._last_report: dict[bytes, Future[Any]] = {}
        self._reports_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Shell(worker={self.chain.address}, work={self.work_root})"

    def close(self) -> None:
        """Send the reports still queued, then release the connections and the WASM
        sandbox server."""
        self._reports.shutdown(wait=True)
        self.scheduler.close()
        self.storage.close()
        self.fetcher.close()
        for runtime in self.runtimes.values():
            if isinstance(runtime, WasmRuntime):
                runtime.close()

    def execute(self, assignment: WorkAssignment, instruction: Instruction) -> Event | None:
        """Carry out `instruction` (not a report: see `report`); the event it ends with, if
        any. Raises TryAgain."""
        try:
            return self._execute(assignment, instruction)
        except (ChainError, SchedulerUnavailable) as error:
            # Reverts are answered inside each step; what is left is a node out of reach, or
            # a transaction it refused or did not mine in time. The steps look at the chain
            # before sending again, so trying again cannot vote twice.
            raise TryAgain(str(error)) from error

    def _execute(self, assignment: WorkAssignment, instruction: Instruction) -> Event | None:
        match instruction:
            case CheckChain():
                return self._check_chain(instruction.taskid)
            case Fetch():
                return self._fetch(assignment)
            case Run():
                return self._run(assignment, instruction)
            case Contribute():
                return self._contribute(assignment, instruction.digest)
            case WatchTask():
                return self._watch(instruction)
            case Reveal():
                return self._reveal(instruction.taskid, instruction.digest)
            case Upload():
                return self._upload(instruction)
            case CleanUp():
                shutil.rmtree(self.work_dir(instruction.taskid), ignore_errors=True)
        return None

    def work_dir(self, taskid: bytes) -> Path:
        return self.work_root / f"0x{taskid.hex()}"

    # --- the chain --------------------------------------------------------------------------

    def _check_chain(self, taskid: bytes) -> ChainChecked:
        view = self.chain.task(taskid)
        return ChainChecked(
            now=self._clock(),
            chain_now=self.chain.block_time(),
            status=view.status,
            contribution_deadline=view.contribution_deadline,
            free_balance=self.chain.free_balance(),
            already_voted=self.chain.vote(taskid).status != CONTRIBUTION_UNSET,
        )

    def _contribute(self, assignment: WorkAssignment, digest: bytes) -> Event:
        """Vote, unless this worker's vote is on-chain already (sent before a restart)."""
        taskid = _taskid(assignment)
        vote = self.chain.vote(taskid)
        if vote.status != CONTRIBUTION_UNSET:
            if vote.result_hash == result_hash(taskid, digest):
                return Contributed(self._clock(), None)
            return ContributionFailed(
                self._clock(),
                WorkerCause.CONTRIBUTION_FAILED,
                "the chain holds another vote of this worker on the task",
            )
        deadline = self.chain.task(taskid).contribution_deadline or assignment.contribution_deadline
        if self.chain.block_time() >= deadline:
            return ContributionFailed(
                self._clock(),
                WorkerCause.DEADLINE_PASSED,
                f"the contribution deadline ({deadline}) passed while the app ran",
            )
        authorization = bytes.fromhex(assignment.authorization[2:])
        try:
            tx_hash = self.chain.contribute(assignment, digest, authorization)
        except EscrowError as error:
            return ContributionFailed(
                self._clock(),
                WorkerCause.STAKE_TOO_LOW,
                f"the hub refused the stake ({error}): deposit more (`decloud account deposit`)",
            )
        except ContractRevert as error:
            return ContributionFailed(
                self._clock(), WorkerCause.CONTRIBUTION_FAILED, f"the hub refused the vote: {error}"
            )
        return Contributed(self._clock(), tx_hash)

    def _watch(self, instruction: WatchTask) -> TaskSeen:
        if instruction.wait:
            self._stopping.wait(self.settings.chain_poll_s)
        taskid = instruction.taskid
        view = self.chain.task(taskid)
        return TaskSeen(
            now=self._clock(),
            chain_now=self.chain.block_time(),
            status=view.status,
            vote_is_consensus=(
                view.status == TASK_REVEALING
                and self.chain.is_consensus(taskid, instruction.digest)
            ),
            reveal_deadline=view.reveal_deadline,
        )

    def _reveal(self, taskid: bytes, digest: bytes) -> Event:
        if self.chain.vote(taskid).status == CONTRIBUTION_PROVEN:
            return Revealed(self._clock(), None)
        try:
            tx_hash = self.chain.reveal(taskid, digest)
        except ContractRevert as error:
            return RevealFailed(
                self._clock(),
                WorkerCause.CONTRIBUTION_FAILED,
                f"the hub refused the reveal: {error}",
            )
        return Revealed(self._clock(), tx_hash)

    # --- downloads ----------------------------------------------------------------------------

    def _fetch(self, assignment: WorkAssignment) -> Event:
        inputs = self.work_dir(_taskid(assignment)) / "in"
        try:
            shutil.rmtree(inputs, ignore_errors=True)
            inputs.mkdir(parents=True)
            app = self._fetch_app(assignment)
            dataset = self._fetch_dataset(assignment, inputs)
            files = self._fetch_inputs(parse_params(assignment.params).input_files, inputs)
        except FetchError as error:
            return FetchFailed(self._clock(), error.cause, error.message)
        except OSError as error:
            return FetchFailed(
                self._clock(),
                WorkerCause.WORKER_ERROR,
                f"the worker cannot prepare inputs: {error}",
            )
        return Fetched(self._clock(), app, dataset, files)

    def _fetch_app(self, assignment: WorkAssignment) -> str:
        """The module's path, or the image's id (loaded from an archive) or reference."""
        app = assignment.app
        checksum = bytes.fromhex(app.checksum[2:])
        if app.type == "WASM":
            if not is_url(app.multiaddr):
                raise FetchError(
                    WorkerCause.DOWNLOAD_FAILED,
                    f"the module's multiaddr {app.multiaddr!r} is not a file:// or http(s):// URL",
                )
            return str(self.fetcher.fetch(app.multiaddr, checksum, "module"))
        if not is_url(app.multiaddr):
            return app.multiaddr  # an image the engine holds; the runtime checks it
        archive = self.fetcher.fetch(app.multiaddr, None, "image archive")
        runtime = self.runtimes.get(AppType.OCI)
        if not isinstance(runtime, DockerRuntime):
            raise FetchError(WorkerCause.WORKER_ERROR, "this worker has no container engine")
        try:
            return runtime.load_image(archive)
        except Exception as error:  # a foreign archive can fail the engine in many ways
            raise FetchError(
                FailureCause.IMAGE_MISSING,
                f"the image archive from {app.multiaddr} cannot be loaded: {error}",
            ) from error

    def _fetch_dataset(self, assignment: WorkAssignment, inputs: Path) -> str | None:
        """The dataset, verified, as `<dataset address>` in the input directory."""
        dataset = assignment.dataset
        if dataset is None:
            return None
        checksum = bytes.fromhex(dataset.checksum[2:])
        cached = self.fetcher.fetch(dataset.multiaddr, checksum, "dataset")
        _place(cached, inputs / dataset.address)
        return dataset.address

    def _fetch_inputs(self, urls: tuple[str, ...], inputs: Path) -> tuple[str, ...]:
        names = tuple(input_file_name(url) for url in urls)
        if len(set(names)) != len(names) or any((inputs / name).exists() for name in names):
            raise FetchError(
                WorkerCause.DOWNLOAD_FAILED,
                f"the input files {names} would share a name (with each other or the dataset)",
            )
        for url, name in zip(urls, names, strict=True):
            _place(self.fetcher.fetch(url, None, "input file"), inputs / name)
        return names

    # --- the run ------------------------------------------------------------------------------

    def _run(self, assignment: WorkAssignment, run: Run) -> Event:
        work = self.work_dir(run.taskid)
        output = work / "out"
        shutil.rmtree(output, ignore_errors=True)
        kind = AppType[assignment.app.type]
        runtime = self.runtimes.get(kind)
        if runtime is None:
            return RunFailed(
                self._clock(), WorkerCause.WORKER_ERROR, f"this worker runs no {kind.name} apps"
            )
        spec = self._spec(assignment, run, kind, work / "in", output)
        outcome = runtime.run(spec)
        self._in_turn(run.taskid, partial(self._send_logs, run.taskid, outcome))
        if outcome.failure is not None:
            return RunFailed(self._clock(), outcome.failure.cause, outcome.failure.message)
        assert outcome.digest is not None, "a run without failure has a digest"
        callback_data = read_computed(output).callback_data or b""
        return Computed(self._clock(), outcome.digest, callback_data)

    def _spec(
        self, assignment: WorkAssignment, run: Run, kind: AppType, inputs: Path, output: Path
    ) -> RunSpec:
        deal = assignment.deal
        context = TaskContext(
            deal_id=bytes.fromhex(assignment.dealid[2:]),
            task_id=run.taskid,
            task_index=assignment.index,
            bag_first_index=int(deal.bot_first),
            bag_size=int(deal.bot_size),
            dataset_address=assignment.dataset.address if assignment.dataset else None,
            dataset_filename=run.dataset_filename,
            input_files=run.input_files,
        )
        limits = Limits(
            fuel=self.settings.fuel,
            memory_bytes=self.settings.app_memory_mb * MIB,
            wall_time_s=float(deal.time_ref),
            cpus=self.settings.cpus,
        )
        return RunSpec(
            kind,
            run.app,
            inputs,
            output,
            args=parse_params(assignment.params).args,
            env=app_environment(context),
            limits=limits,
            checksum=bytes.fromhex(assignment.app.checksum[2:]),
            entropy_seed=run.taskid,
        )

    def _send_logs(self, taskid: bytes, outcome: RunOutcome) -> None:
        """The requester reads them with `decloud task logs`; losing them fails nothing."""
        try:
            self.scheduler.logs(taskid, outcome.stdout, outcome.stderr)
        except SchedulerError as error:
            _log.warning("logs of task 0x%s not sent: %s", taskid.hex()[:12], error)

    # --- the result ---------------------------------------------------------------------------

    def _upload(self, upload: Upload) -> Event:
        output = self.work_dir(upload.taskid) / "out"
        if not output.is_dir():
            return UploadFailed(self._clock(), f"the output {output} is gone: nothing to upload")
        try:
            stored = self.storage.upload(
                upload.taskid, output, self._key, scratch=self.work_dir(upload.taskid)
            )
        except StorageError as error:
            if error.status is None or error.status >= 500:
                raise TryAgain(str(error)) from error
            return UploadFailed(self._clock(), f"the result store refused the upload: {error}")
        link = RESULT_LINK_PREFIX + stored.cid
        self._report_result(upload.taskid, link, upload.callback_data)
        return Uploaded(self._clock(), link)

    def _report_result(self, taskid: bytes, link: str, callback_data: bytes) -> None:
        """The scheduler takes the link once its chain watcher saw the reveal: until then
        it refuses it, so ask again for a while."""
        deadline = time.monotonic() + self.settings.result_report_wait_s
        while True:
            try:
                self.scheduler.result(taskid, link, callback_data)
                return
            except ReplicateRefused as error:
                if time.monotonic() > deadline or self._stopping.is_set():
                    _log.warning("result of task 0x%s not taken: %s", taskid.hex()[:12], error)
                    return
            self._stopping.wait(self.settings.chain_poll_s)

    # --- reports ------------------------------------------------------------------------------

    def report(self, instruction: Report | ReportFailure) -> Future[Event | None]:
        """Send a report on the reports' own threads, each replicate's in the order given:
        the scheduler's answers do not hold up the replicates. Its event: a refusal means
        the scheduler gave the replicate up."""
        if isinstance(instruction, Report):
            return self._in_turn(instruction.taskid, partial(self._report, instruction))
        return self._in_turn(instruction.taskid, partial(self._report_failure, instruction))

    def _in_turn(self, taskid: bytes, send: Callable[[], _T]) -> Future[_T]:
        """Send once the replicate's previous report is answered. Replicates do not wait for
        each other: with one thread for all, a scheduler slow to answer (a busy machine)
        let the reports fall behind the replicates, and the `contributed` that frees the
        worker's slot came late."""
        with self._reports_lock:
            sent = self._reports.submit(_after, self._last_report.get(taskid), send)
            self._last_report[taskid] = sent
        sent.add_done_callback(partial(self._answered, taskid))
        return sent

    def _answered(self, taskid: bytes, sent: Future[Any]) -> None:
        with self._reports_lock:
            if self._last_report.get(taskid) is sent:
                del self._last_report[taskid]

    def _report(self, report: Report) -> Withdrawn | None:
        """Progress only (the scheduler counts votes from the chain): one attempt."""
        taskid = report.taskid
        try:
            match report.step:
                case "started":
                    self.scheduler.started(taskid)
                case "contributed":
                    assert report.tx_hash is not None
                    self.scheduler.contributed(taskid, report.tx_hash)
                case "revealed":
                    assert report.tx_hash is not None
                    self.scheduler.revealed(taskid, report.tx_hash)
        except ReplicateRefused as error:
            return Withdrawn(self._clock(), f"the scheduler refused the report: {error}")
        except SchedulerError as error:
            _log.warning("%s of task 0x%s not reported: %s", report.step, taskid.hex()[:12], error)
        return None

    def _report_failure(self, report: ReportFailure) -> None:
        """The requester learns the cause from it: tried a few times."""
        for wait in FAILURE_REPORT_WAITS_S:
            try:
                self.scheduler.failed(report.taskid, report.cause, report.message)
                return
            except ReplicateRefused:
                return  # the scheduler had given the replicate up already
            except SchedulerError as error:
                _log.warning(
                    "failure of task 0x%s not reported: %s", report.taskid.hex()[:12], error
                )
            if self._stopping.wait(wait):
                return


def _after(previous: Future[Any] | None, send: Callable[[], _T]) -> _T:
    """`send`, once `previous` ended. The pool takes work in the order it was given, so
    `previous` is running or done by now: this wait cannot starve the pool."""
    if previous is not None:
        concurrent.futures.wait([previous])
    return send()


def _taskid(assignment: WorkAssignment) -> bytes:
    return bytes.fromhex(assignment.taskid[2:])


def _place(cached: Path, target: Path) -> None:
    """Put a cached file into an input directory: a hard link when the cache shares the
    file system (the app sees its inputs read-only, so sharing the inode is safe), else a
    copy."""
    try:
        os.link(cached, target)
    except OSError:
        shutil.copyfile(cached, target)
