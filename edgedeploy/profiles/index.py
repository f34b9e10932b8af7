"""A SQLite index over the profile files, so queries stay fast with thousands of profiles.

The index is a cache, never the truth: `ProfileIndex.open(root)` brings it up to date from the files
(new or changed files by size and mtime are parsed, vanished ones dropped) before every query, and a
missing, stale-format or damaged index file is simply rebuilt. It lives at `<root>/.index.sqlite`
(hidden, gitignored); where the store is read-only the index is built in memory instead.

The store's queries are here too: `list_profiles`, `load_profile`/`resolve_id` and `summary_csv`.
A profile's id is its path relative to the store root without `.json`
(`local/lenet300/20261124T231600.123456Z`); `show` also takes a file path or a unique prefix of the
id or of the file stem.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any

from edgedeploy.errors import UsageError
from edgedeploy.profiles.store import (
    SUMMARY_FIELDS,
    iter_profile_files,
    profiles_root,
    read_profile_file,
    summarize,
    warn,
)

INDEX_NAME = ".index.sqlite"
# Bump when the columns change: an index of another version is dropped and rebuilt.
INDEX_VERSION = 1
_BOOL_FIELDS = ("emulated", "throttled")
_COLUMNS = ", ".join(f"{name}" for name in SUMMARY_FIELDS if name != "path")


class ProfileIndex:
    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self.conn = conn

    @classmethod
    def open(cls, root: Path) -> ProfileIndex:
        """Open (creating or rebuilding as needed) the index of `root` and sync it with the files."""
        db = root / INDEX_NAME
        try:
            conn = cls._connect(db)
        except sqlite3.OperationalError:
            # Locked by another writer for too long, or not writable: answer from a private index.
            conn = cls._connect(None)
        except sqlite3.DatabaseError:
            # A damaged cache: drop it (only the index, never a profile) and build it again.
            db.unlink(missing_ok=True)
            try:
                conn = cls._connect(db)
            except sqlite3.DatabaseError:
                conn = cls._connect(None)
        except OSError:
            conn = cls._connect(None)
        index = cls(root, conn)
        index.sync()
        return index

    @staticmethod
    def _connect(db: Path | None) -> sqlite3.Connection:
        if db is not None and not os.access(db.parent, os.W_OK):
            db = None
        conn = sqlite3.connect(":memory:" if db is None else str(db), timeout=30)
        try:
            # IMMEDIATE: two processes creating the index at once take turns instead of colliding.
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != INDEX_VERSION:
                conn.execute("DROP TABLE IF EXISTS profiles")
                conn.execute("DROP TABLE IF EXISTS bad_files")
                file_key = "path TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER"
                conn.execute(f"CREATE TABLE profiles ({file_key}, {_COLUMNS})")
                conn.execute(f"CREATE TABLE bad_files ({file_key}, reason TEXT)")
                conn.execute("CREATE INDEX by_target_model ON profiles (target, model, created)")
                conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
            conn.commit()
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def sync(self) -> None:
        """Parse new and changed files, forget vanished ones; warn about every corrupt file."""
        known: dict[str, tuple[int, int]] = {
            path: (mtime, size)
            for table in ("profiles", "bad_files")
            for path, mtime, size in self.conn.execute(f"SELECT path, mtime_ns, size FROM {table}")
        }
        seen: set[str] = set()
        with self.conn:
            for file in iter_profile_files(self.root):
                key = str(file)
                try:
                    stat = file.stat()
                except OSError:
                    continue  # vanished between the walk and the stat
                seen.add(key)
                if known.get(key) == (stat.st_mtime_ns, stat.st_size):
                    continue
                self._forget(key)
                try:
                    row = summarize(self.root, file, read_profile_file(file))
                except ValueError as exc:
                    self.conn.execute(
                        "INSERT OR REPLACE INTO bad_files VALUES (?, ?, ?, ?)",
                        (key, stat.st_mtime_ns, stat.st_size, str(exc)),
                    )
                    continue
                values = [row[name] for name in SUMMARY_FIELDS if name != "path"]
                marks = ", ".join("?" * (len(values) + 3))
                self.conn.execute(
                    f"INSERT OR REPLACE INTO profiles VALUES ({marks})",
                    [key, stat.st_mtime_ns, stat.st_size, *values],
                )
            for key in set(known) - seen:
                self._forget(key)
        for path, reason in self.conn.execute("SELECT path, reason FROM bad_files ORDER BY path"):
            warn(f"skipped corrupt profile {path}: {reason} (file left in place)")

    def _forget(self, key: str) -> None:
        self.conn.execute("DELETE FROM profiles WHERE path = ?", (key,))
        self.conn.execute("DELETE FROM bad_files WHERE path = ?", (key,))

    def query(
        self,
        *,
        target: str | None = None,
        model: str | None = None,
        runtime: str | None = None,
        since: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows matching all filters, oldest first. `model` matches the name or a sha256 prefix."""
        where: list[str] = []
        args: list[Any] = []
        if target:
            where.append("target = ?")
            args.append(target)
        if model:
            where.append("(model = ? OR model_sha256 LIKE ?)")
            args += [model, f"{model.lower()}%"]
        if runtime:
            where.append("runtime = ?")
            args.append(runtime)
        if since:
            where.append("created >= ?")
            args.append(since)
        sql = f"SELECT path, {_COLUMNS} FROM profiles"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created, path"
        rows = []
        for record in self.conn.execute(sql, args):
            row = dict(zip(("path", *[n for n in SUMMARY_FIELDS if n != "path"]), record, strict=True))
            for name in _BOOL_FIELDS:
                row[name] = bool(row[name])
            rows.append({name: row[name] for name in SUMMARY_FIELDS})
        return rows

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ProfileIndex:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def parse_since(since: str) -> str:
    """An ISO date or date-time as the store's `created` format (UTC), for string comparison."""
    try:
        when = dt.datetime.fromisoformat(since.strip())
    except ValueError as exc:
        raise UsageError(f"--since {since!r}: expected an ISO date or date-time (2026-11-24T10:00)") from exc
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def list_profiles(
    root: Path | None = None,
    *,
    target: str | None = None,
    model: str | None = None,
    runtime: str | None = None,
    since: str | None = None,
) -> list[dict[str, Any]]:
    """Summary rows of the stored profiles matching every filter given, oldest first."""
    base = profiles_root(root)
    since_key = parse_since(since) if since else None
    if not base.is_dir():
        return []
    with ProfileIndex.open(base) as index:
        return index.query(target=target, model=model, runtime=runtime, since=since_key)


def resolve_id(root: Path | None, ident: str) -> Path:
    """A profile file from a path, an id, or a unique prefix of an id or of a file stem."""
    direct = Path(ident)
    if direct.suffix == ".json" and direct.is_file():
        return direct
    base = profiles_root(root)
    rows = list_profiles(base)
    exact = [r for r in rows if r["id"] == ident]
    matches = exact or [
        r for r in rows if r["id"].startswith(ident) or Path(r["path"]).stem.startswith(ident)
    ]
    if not matches:
        raise UsageError(f"no profile {ident!r} under {base} (see `edgedeploy profiles list`)")
    if len(matches) > 1:
        shown = ", ".join(r["id"] for r in matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise UsageError(f"profile id {ident!r} is ambiguous ({len(matches)} match: {shown})")
    return Path(matches[0]["path"])


def load_profile(root: Path | None, ident: str) -> dict[str, Any]:
    path = resolve_id(root, ident)
    try:
        doc = read_profile_file(path)
    except ValueError as exc:
        raise UsageError(f"{path}: corrupt profile: {exc}") from exc
    doc["path"] = str(path)
    return doc


def summary_csv(root: Path | None) -> tuple[str, int]:
    """All profiles' summary rows as CSV text, and how many rows it holds (`profiles export`)."""
    rows = list_profiles(root)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(SUMMARY_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue(), len(rows)
