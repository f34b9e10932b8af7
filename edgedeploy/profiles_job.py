"""`edgedeploy profiles list|show|compare|export|report`: queries over the profile store.

The store (`profiles/store.py`: the files) and its index (`profiles/index.py`: the queries) do the
work; this job turns what they find into typed results and writes the export's file.
"""

from __future__ import annotations

from pathlib import Path

from edgedeploy.fileinfo import write_bytes_atomic
from edgedeploy.profiles import compare, index
from edgedeploy.profiles.report import write_report
from edgedeploy.results import Comparison, Profile, ProfilesExport, ProfileSummary

# `profiles report` returns the HTML file's path: the package's function is the whole job.
__all__ = ["compare_profiles", "export_csv", "list_profiles", "load_profile", "write_report"]


def list_profiles(
    root: Path | None,
    *,
    target: str | None = None,
    model: str | None = None,
    runtime: str | None = None,
    since: str | None = None,
) -> list[ProfileSummary]:
    rows = index.list_profiles(root, target=target, model=model, runtime=runtime, since=since)
    return [ProfileSummary.from_row(row) for row in rows]


def load_profile(root: Path | None, ident: str) -> Profile:
    return Profile.from_doc(index.load_profile(root, ident), root)


def compare_profiles(root: Path | None, a: str, b: str) -> Comparison:
    return Comparison.from_doc(compare.compare_profiles(root, a, b))


def export_csv(root: Path | None, path: Path) -> ProfilesExport:
    """Every profile's summary row as CSV: `path` "-" keeps the text for stdout, else the file is
    written atomically."""
    text, rows = index.summary_csv(root)
    if str(path) == "-":
        return ProfilesExport(path=path, rows=rows, text=text)
    write_bytes_atomic(path, text.encode())
    return ProfilesExport(path=path, rows=rows, text=None)
