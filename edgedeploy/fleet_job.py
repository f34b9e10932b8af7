"""`edgedeploy fleet profile`: every model on every target of a group, concurrently, failures isolated.

Shape of a run:
- one queue per target: a device runs one job at a time (two profiles at once on one board would
  measure each other), while up to `workers` targets are worked on at once;
- every (target, model) job is `profile_job.profile_model` (`JobRunner`) under a watchdog of
  `timeout` seconds (`FleetScheduler`, which decides what runs next on which target).
  A job that fails with a device error is retried (`retries` times, with backoff); a job that hangs
  past its timeout is NOT retried (that costs another full timeout) and the target's remaining jobs
  become error rows without being attempted, because the abandoned attempt may still hold the device;
- a dead or hanging device yields error rows; the other targets finish;
- each run has an id and a journal (JSON lines under the cache dir, one line per finished job, written
  as each job ends), so `--resume RUN_ID` skips the (target, model) pairs that already succeeded.
  Pairs are keyed by target name and the model's sha256, so an edited model is profiled again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import Target, cache_dir, load_inventory
from edgedeploy.errors import EdgeDeployError, UsageError
from edgedeploy.fileinfo import sha256_file
from edgedeploy.options import FleetProfileOptions, ProfileOptions
from edgedeploy.present import TargetsProgress, stderr_lines
from edgedeploy.profile_job import profile_model
from edgedeploy.profiles.schema import utc_now
from edgedeploy.results import FleetResult, FleetRow

RETRY_BACKOFF_S = 0.5
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def journal_dir() -> Path:
    return cache_dir() / "fleet"


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class Job:
    target: str
    model: Path
    sha256: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.target, self.sha256)


class JobTimeout(Exception):
    """The watchdog fired: the job ran past its timeout (the attempt is abandoned, not retried)."""


class Journal:
    """Append-only JSON lines: a `start` header, then one `job` line per finished job."""

    def __init__(self, run_id: str) -> None:
        if not _RUN_ID.match(run_id):
            raise UsageError(f"run id {run_id!r}: expected letters, digits, '-', '_' or '.'")
        self.run_id = run_id
        self.path = journal_dir() / f"{run_id}.jsonl"
        self._lock = threading.Lock()

    def append(self, event: dict[str, Any]) -> None:
        line = json.dumps({**event, "at": utc_now()}, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write per line on an O_APPEND file: an interrupted run leaves whole lines only.
            with self.path.open("a") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())

    def finished(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Rows of the jobs that succeeded, keyed by (target, model sha256)."""
        if not self.path.is_file():
            raise UsageError(f"no fleet run {self.run_id!r} (journals are in {self.path.parent})")
        done: dict[tuple[str, str], dict[str, Any]] = {}
        for line in self.path.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that job simply runs again
            if event.get("event") == "job" and event.get("status") == "ok":
                done[(event["target"], event["model_sha256"])] = event
        return done


@dataclass
class TargetQueue:
    """One target's jobs, in the order they run, and what became of them (the scheduler fills it)."""

    target: Target
    jobs: list[Job]
    hung: str | None = None
    rows: list[FleetRow] = field(default_factory=list)
    # Why this target's worker stopped before its last job (an error outside any one job's handling).
    stopped: str | None = None


class _ProgressView:
    """The fleet's progress on stderr (present.TargetsProgress), or nothing when `enabled` is false."""

    def __init__(self, enabled: bool, totals: dict[str, int], done: dict[str, int]) -> None:
        self._progress: TargetsProgress | None = None
        if enabled:
            self._progress = TargetsProgress(totals, done)

    def status(self, target: str, text: str) -> None:
        if self._progress:
            self._progress.status(target, text)

    def advance(self, target: str) -> None:
        if self._progress:
            self._progress.advance(target)

    def __enter__(self) -> _ProgressView:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()


def _call_with_watchdog(fn: Callable[[], dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Run fn in a daemon thread; raise JobTimeout if it is still running after `timeout` seconds.

    A Python thread cannot be killed, so a hung attempt is abandoned (daemon: it never keeps the
    process alive); the transports' own command timeouts end the remote work behind it.
    """
    from edgedeploy.deploy.transports.connect import record_opened_transports

    outcome: dict[str, Any] = {}
    opened: list[Any] = []

    def body() -> None:
        try:
            with record_opened_transports(opened):
                outcome["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc

    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        # Close the abandoned attempt's links: the device commands it waits on end now, and so do
        # the helper threads it started (a push's thread pool is joined at exit: left waiting on a
        # hung device, it would hold the process for the push's own 120 s timeout).
        for transport in list(opened):
            with contextlib.suppress(Exception):
                transport.close()
        raise JobTimeout(f"timed out after {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EdgeDeployError | JobTimeout):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


JobStatus = Callable[[str], None]
"""Where a running job reports what it is doing (its target's progress line)."""


@dataclass(frozen=True)
class JobRunner:
    """Runs one job: one model profiled on one target with the fleet's settings. Which job runs
    when, the watchdog, retries and a hung target are the scheduler's business, not this one's."""

    profile: ProfileOptions

    @classmethod
    def for_fleet(cls, options: FleetProfileOptions) -> JobRunner:
        # A fixed count of runs per profile (no time floors): the fleet compares targets on equal work.
        return cls(
            ProfileOptions.counted(
                runs=options.runs,
                warmup=options.warmup,
                inventory=options.inventory,
                trust_new=options.trust_new,
                timeout=options.timeout,
                profiles_dir=options.profiles_dir,
                checksum=options.checksum,
            )
        )

    def __call__(self, job: Job, status: JobStatus) -> dict[str, Any]:
        """The stored profile's document (with its `path`); raises what profiling raises."""
        return profile_model(job.model, job.target, self.profile, on_status=status).to_dict()


RunJob = Callable[[Job, JobStatus], dict[str, Any]]
"""One job run to its profile document (`JobRunner`, or any callable of that shape)."""


class FleetScheduler:
    """Which target runs what next: one queue per target, worked through in order by one of up to
    `workers` threads; each job under a watchdog of `timeout` seconds, retried `retries` times on
    device errors; a target whose job hung gets its later jobs as 'not attempted' rows; a worker
    stopped by an error outside any job's handling records why on its target (`stopped`).
    Every finished job is a row on its target's state and a line in the journal as it ends."""

    def __init__(
        self, run_job: RunJob, journal: Journal, *, workers: int, timeout: float, retries: int
    ) -> None:
        self.run_job = run_job
        self.journal = journal
        self.workers = workers
        self.timeout = timeout
        self.retries = retries

    def run(self, states: list[TargetQueue], view: _ProgressView | None = None) -> None:
        """Work through every target's jobs; returns when all are done (or re-raises Ctrl-C)."""
        view = view or _ProgressView(False, {}, {})
        pending: queue.Queue[TargetQueue] = queue.Queue()
        for state in states:
            pending.put(state)
        # Daemon threads: Ctrl-C ends the run at once; the journal already holds every finished job.
        threads = [
            threading.Thread(target=self._worker, args=(pending, view), daemon=True)
            for _ in range(min(self.workers, len(states)))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except KeyboardInterrupt:
            stderr_lines()(
                f"fleet run {self.journal.run_id} interrupted; finished jobs are in {self.journal.path}; "
                f"continue with --resume {self.journal.run_id}"
            )
            raise

    def _worker(self, pending: queue.Queue[TargetQueue], view: _ProgressView) -> None:
        while True:
            try:
                state = pending.get_nowait()
            except queue.Empty:
                return
            try:
                self._drain(state, view)
            except Exception as exc:  # noqa: BLE001 - one target's failure must not end the run or lose rows
                state.stopped = _describe(exc)

    def _drain(self, state: TargetQueue, view: _ProgressView) -> None:
        for job in state.jobs:
            row = self._run_job(state, job, view)
            self.journal.append({"event": "job", **row.to_dict()})
            state.rows.append(row)
            view.advance(job.target)
        view.status(state.target.name, "done" if not state.hung else "[red]hung[/]")

    def _run_job(self, state: TargetQueue, job: Job, view: _ProgressView) -> FleetRow:
        row = FleetRow(
            target=job.target,
            model=str(job.model),
            model_name=job.model.stem,
            model_sha256=job.sha256,
            emulated=state.target.emulated,
        )
        if state.hung:
            row.error = f"not attempted: {state.hung}"
            return row
        row.started = utc_now()
        start = time.monotonic()
        attempt = functools.partial(self.run_job, job, functools.partial(view.status, job.target))
        for number in range(self.retries + 1):
            row.attempts = number + 1
            view.status(job.target, f"{job.model.name} (attempt {number + 1})")
            try:
                doc = _call_with_watchdog(attempt, self.timeout)
            except JobTimeout as exc:
                row.error = f"{job.target}: {exc}"
                state.hung = f"{job.target} hung on {job.model.name} ({exc})"
                break
            except UsageError as exc:  # the model or the settings: another try cannot help
                row.error = _describe(exc)
                break
            except Exception as exc:  # noqa: BLE001 - any device failure becomes this row, never the run's
                row.error = _describe(exc)
                if number < self.retries:
                    time.sleep(RETRY_BACKOFF_S * 2**number)
                continue
            row.status, row.error = "ok", None
            row.profile_path = doc.get("path")
            row.p50_ms = (doc.get("latency_ms") or {}).get("p50")
            break
        row.seconds = round(time.monotonic() - start, 3)
        row.finished = utc_now()
        return row


def run_fleet(models: list[Path], target: str, options: FleetProfileOptions | None = None) -> FleetResult:
    """Profile every model on every target of `target` (a group or host); one row per pair.
    `options.checksum`: the device's copies of runner and model are checked by sha256, not size and mtime."""
    opts = options or FleetProfileOptions()
    if opts.workers < 1 or opts.runs < 1 or opts.warmup < 0 or opts.retries < 0 or opts.timeout <= 0:
        raise UsageError("--workers and --runs must be >= 1, --warmup and --retries >= 0, --timeout > 0")
    if not models:
        raise UsageError("fleet profile needs at least one model")
    for model in models:
        if not model.is_file():
            raise UsageError(f"{model}: no such file")
    targets = load_inventory(opts.inventory).resolve(target)
    by_digest: dict[str, Path] = {}
    for model in models:  # the same bytes under two names are one job, not two
        by_digest.setdefault(sha256_file(model), model)
    digests = {model: digest for digest, model in by_digest.items()}
    models = list(digests)

    journal = Journal(opts.resume or new_run_id())
    finished = journal.finished() if opts.resume else {}
    journal.append(
        {
            "event": "resume" if opts.resume else "start",
            "group": target,
            "inventory": str(opts.inventory) if opts.inventory else None,
            "models": [str(m.resolve()) for m in models],
            "settings": {
                "runs": opts.runs,
                "warmup": opts.warmup,
                "timeout": opts.timeout,
                "retries": opts.retries,
            },
        }
    )
    states = {
        t.name: TargetQueue(
            t, [Job(t.name, m, digests[m]) for m in models if (t.name, digests[m]) not in finished]
        )
        for t in targets
    }
    if opts.progress:
        todo = sum(len(s.jobs) for s in states.values())
        stderr_lines()(
            f"fleet run {journal.run_id}: {len(targets)} targets x {len(models)} models, {todo} jobs to do "
            f"(resume with --resume {journal.run_id})"
        )

    started = time.monotonic()
    scheduler = FleetScheduler(
        JobRunner.for_fleet(opts), journal, workers=opts.workers, timeout=opts.timeout, retries=opts.retries
    )
    totals = {name: len(models) for name in states}
    already = {name: len(models) - len(s.jobs) for name, s in states.items()}
    with _ProgressView(opts.progress, totals, already) as view:
        scheduler.run(list(states.values()), view)
    return FleetResult(
        run_id=journal.run_id,
        journal=journal.path,
        group=target,
        wall_s=round(time.monotonic() - started, 3),
        rows=_rows(list(states.values()), models, digests, finished),
    )


def _rows(
    states: list[TargetQueue],
    models: list[Path],
    digests: dict[Path, str],
    finished: dict[tuple[str, str], dict[str, Any]],
) -> list[FleetRow]:
    """One row per (target, model), in target then model order: this run's, a resumed run's, or
    one saying why the job never ran."""
    rows: list[FleetRow] = []
    for state in states:
        name = state.target.name
        by_key = {(r.target, r.model_sha256): r for r in state.rows}
        for model in models:
            key = (name, digests[model])
            if key in by_key:
                rows.append(by_key[key])
            elif key in finished:
                resumed = FleetRow.from_dict(finished[key])
                resumed.model, resumed.resumed = str(model), True
                rows.append(resumed)
            else:  # its target's worker stopped first: the row says why instead of going missing
                why = state.stopped or "the run ended before this job"
                rows.append(
                    FleetRow(
                        target=name,
                        model=str(model),
                        model_name=model.stem,
                        model_sha256=digests[model],
                        error=f"not run: {why}",
                    )
                )
    return rows
