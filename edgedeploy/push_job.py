"""`edgedeploy push`: the model into a target's `models/`, the runner beside it, each verified and
recorded; a group name pushes to each of its hosts in turn. The mechanism (skip, resume, verify,
the device script) is `deploy/push.py`; this job picks the targets, reports progress and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import Target, load_inventory
from edgedeploy.deploy.push import manifest_path, plan_push, push_file
from edgedeploy.errors import EdgeDeployError, UsageError
from edgedeploy.options import PushOptions


def push_to_target(file: Path, target_name: str, options: PushOptions | None = None) -> dict[str, Any]:
    """The `push` verb: the model into `models/`, the runner beside it, each verified and recorded.
    A group name pushes to each of its hosts in turn: `{"group", "targets": [result or error]}`, and
    `ok` false when any failed (one unreachable board does not stop the others)."""
    opts = options or PushOptions()
    if not file.is_file():
        raise UsageError(f"{file}: no such file")
    inv = load_inventory(opts.inventory)
    if target_name in inv.hosts:
        return _push_one(inv.hosts[target_name], file, opts)
    rows: list[dict[str, Any]] = []
    for target in inv.resolve(target_name):
        try:
            rows.append({"target": target.name, **_push_one(target, file, opts)})
        except EdgeDeployError as exc:
            rows.append({"target": target.name, "error": str(exc)})
    return {"group": target_name, "ok": all("error" not in r for r in rows), "targets": rows}


def _push_one(target: Target, file: Path, opts: PushOptions) -> dict[str, Any]:
    from edgedeploy.deploy.transports.connect import open_transport
    from edgedeploy.runner import RUNNER_PATH

    checksum = opts.checksum
    with open_transport(target, trust_new=opts.trust_new) as transport:
        if opts.dry_run:
            doc = plan_push(transport, file, "models", python=target.python, checksum=checksum)
            doc["runner"] = plan_push(transport, RUNNER_PATH, "", python=target.python, checksum=checksum)
            return doc
        with _progress_bar(file, enabled=opts.progress) as bar:
            result = push_file(
                transport, file, "models", python=target.python, progress=bar, checksum=checksum
            )
        runner = push_file(transport, RUNNER_PATH, "", python=target.python, checksum=checksum)
        return {**result.to_dict(), "runner": runner.to_dict(), "manifest": manifest_path(transport)}


@contextmanager
def _progress_bar(file: Path, *, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar (bytes, throughput, time left) on stderr, fed by the transport's callback."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"push {file.name}", total=file.stat().st_size)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def print_result(result: dict[str, Any]) -> None:
    if "group" in result:
        for row in result["targets"]:
            print(f"[{row['target']}] ", end="")
            if "error" in row:
                print(f"error: {row['error']}")
            else:
                print_result(row)
        return
    if result.get("dry_run"):
        if result["skipped"]:
            print(f"unchanged, would skip: {result['remote_path']} (sha256 {result['sha256'][:12]})")
        else:
            resume = f", resuming after {result['resume_from']} bytes" if result["resume_from"] else ""
            print(f"would send {result['would_send_bytes']} bytes -> {result['remote_path']}{resume}")
        runner = result.get("runner")
        if runner:
            print(f"runner: {'unchanged' if runner['skipped'] else 'would send'} {runner['remote_path']}")
        return
    if result["skipped"]:
        print(f"unchanged: {result['remote_path']} (0 bytes sent)")
    else:
        resumed = f", resumed after {result['resumed_from']} bytes" if result.get("resumed_from") else ""
        print(
            f"pushed {result['sent_bytes']} bytes -> {result['remote_path']} "
            f"(sha256 {result['sha256'][:12]} verified on the device{resumed})"
        )
    if "manifest" in result:
        print(f"manifest: {result['manifest']}")
