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
from edgedeploy.results import PushResult


def push_to_target(file: Path, target_name: str, options: PushOptions | None = None) -> PushResult:
    """The `push` verb: the model into `models/`, the runner beside it, each verified and recorded.
    A group name pushes to each of its hosts in turn (document `{"group", "targets": [result or
    error]}`), and `ok` is false when any failed (one unreachable board does not stop the others)."""
    opts = options or PushOptions()
    return PushResult.from_doc(_push(file, target_name, opts), target_name, opts.dry_run)


def _push(file: Path, target_name: str, opts: PushOptions) -> dict[str, Any]:
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
    from edgedeploy.deploy.runner_client import runner_zipapp
    from edgedeploy.deploy.transports.connect import open_transport

    checksum = opts.checksum
    with open_transport(target, trust_new=opts.trust_new) as transport:
        if opts.dry_run:
            doc = plan_push(transport, file, "models", python=target.python, checksum=checksum)
            doc["runner"] = plan_push(transport, runner_zipapp(), "", python=target.python, checksum=checksum)
            return doc
        with _progress_bar(file, enabled=opts.progress) as bar:
            result = push_file(
                transport, file, "models", python=target.python, progress=bar, checksum=checksum
            )
        runner = push_file(transport, runner_zipapp(), "", python=target.python, checksum=checksum)
        return {**result.to_dict(), "runner": runner.to_dict(), "manifest": manifest_path(transport)}


@contextmanager
def _progress_bar(file: Path, *, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """The transfer's progress bar on stderr (present.transfer_bar), or None without progress."""
    if not enabled:
        yield None
        return
    from edgedeploy.present import transfer_bar

    with transfer_bar(f"push {file.name}", file.stat().st_size) as bar:
        yield bar
