"""`edgedeploy fleet profile`: every model on every target of a group, concurrently, failures isolated.

Shape of a run:
- one queue per target: a device runs one job at a time (two profiles at once on one board would
  measure each other), while up to `workers` targets are worked on at once;
- every (target, model) job is `profile_job.profile_model` under a watchdog of `timeout` seconds.
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
from edgedeploy.present import TargetsProgress, stderr_lines
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
class _TargetState:
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


def run_fleet(
    models: list[Path],
    target: str,
    *,
    inventory: Path | None = None,
    workers: int = 8,
    runs: int = 50,
    warmup: int = 5,
    timeout: float = 600.0,
    retries: int = 1,
    resume: str | None = None,
    trust_new: bool = False,
    progress: bool = True,
    store_root: Path | None = None,
    checksum: bool = False,
) -> FleetResult:
    """Profile every model on every target of `target` (a group or host); one row per pair.
    `checksum`: the device's copies of runner and model are checked by sha256, not size and mtime."""
    from edgedeploy.profile_job import profile_model

    if workers < 1 or runs < 1 or warmup < 0 or retries < 0 or timeout <= 0:
        raise UsageError("--workers and --runs must be >= 1, --warmup and --retries >= 0, --timeout > 0")
    if not models:
        raise UsageError("fleet profile needs at least one model")
    for model in models:
        if not model.is_file():
            raise UsageError(f"{model}: no such file")
    targets = load_inventory(inventory).resolve(target)
    by_digest: dict[str, Path] = {}
    for model in models:  # the same bytes under two names are one job, not two
        by_digest.setdefault(sha256_file(model), model)
    digests = {model: digest for digest, model in by_digest.items()}
    models = list(digests)

    journal = Journal(resume or new_run_id())
    finished = journal.finished() if resume else {}
    journal.append(
        {
            "event": "resume" if resume else "start",
            "group": target,
            "inventory": str(inventory) if inventory else None,
            "models": [str(m.resolve()) for m in models],
            "settings": {"runs": runs, "warmup": warmup, "timeout": timeout, "retries": retries},
        }
    )
    states = {
        t.name: _TargetState(
            t, [Job(t.name, m, digests[m]) for m in models if (t.name, digests[m]) not in finished]
        )
        for t in targets
    }
    say = stderr_lines()
    if progress:
        todo = sum(len(s.jobs) for s in states.values())
        say(
            f"fleet run {journal.run_id}: {len(targets)} targets x {len(models)} models, {todo} jobs to do "
            f"(resume with --resume {journal.run_id})"
        )

    def profile_one(job: Job, view: _ProgressView) -> dict[str, Any]:
        return profile_model(
            job.model,
            job.target,
            runs=runs,
            warmup=warmup,
            inventory=inventory,
            trust_new=trust_new,
            progress=False,
            timeout=timeout,
            store_root=store_root,
            on_status=lambda msg: view.status(job.target, msg),
            checksum=checksum,
        )

    def run_job(state: _TargetState, job: Job, view: _ProgressView) -> FleetRow:
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
        for attempt in range(retries + 1):
            row.attempts = attempt + 1
            view.status(job.target, f"{job.model.name} (attempt {attempt + 1})")
            try:
                doc = _call_with_watchdog(lambda: profile_one(job, view), timeout)
            except JobTimeout as exc:
                row.error = f"{job.target}: {exc}"
                state.hung = f"{job.target} hung on {job.model.name} ({exc})"
                break
            except UsageError as exc:  # the model or the settings: another try cannot help
                row.error = _describe(exc)
                break
            except Exception as exc:  # noqa: BLE001 - any device failure becomes this row, never the run's
                row.error = _describe(exc)
                if attempt < retries:
                    time.sleep(RETRY_BACKOFF_S * 2**attempt)
                continue
            row.status, row.error = "ok", None
            row.profile_path = doc.get("path")
            row.p50_ms = (doc.get("latency_ms") or {}).get("p50")
            break
        row.seconds = round(time.monotonic() - start, 3)
        row.finished = utc_now()
        return row

    def drain(state: _TargetState, view: _ProgressView) -> None:
        for job in state.jobs:
            row = run_job(state, job, view)
            journal.append({"event": "job", **row.to_dict()})
            state.rows.append(row)
            view.advance(job.target)
        view.status(state.target.name, "done" if not state.hung else "[red]hung[/]")

    started = time.monotonic()
    pending: queue.Queue[_TargetState] = queue.Queue()
    for state in states.values():
        pending.put(state)

    def worker(view: _ProgressView) -> None:
        while True:
            try:
                state = pending.get_nowait()
            except queue.Empty:
                return
            try:
                drain(state, view)
            except Exception as exc:  # noqa: BLE001 - one target's failure must not end the run or lose rows
                state.stopped = _describe(exc)

    totals = {name: len(models) for name in states}
    already = {name: len(models) - len(s.jobs) for name, s in states.items()}
    with _ProgressView(progress, totals, already) as view:
        # Daemon threads: Ctrl-C ends the run at once; the journal already holds every finished job.
        threads = [
            threading.Thread(target=worker, args=(view,), daemon=True)
            for _ in range(min(workers, len(states)))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except KeyboardInterrupt:
            say(
                f"fleet run {journal.run_id} interrupted; finished jobs are in {journal.path}; "
                f"continue with --resume {journal.run_id}"
            )
            raise

    rows: list[FleetRow] = []
    for name, state in states.items():
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
    return FleetResult(
        run_id=journal.run_id,
        journal=journal.path,
        group=target,
        wall_s=round(time.monotonic() - started, 3),
        rows=rows,
    )
