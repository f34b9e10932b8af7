"""OpenSSH known_hosts files: read as far as host-key checks need, edited one host at a time.

paramiko's HostKeys parser is not used on the user's file: it splits on the first three fields, so a
`@cert-authority` or `@revoked` marker line (valid OpenSSH syntax) reaches base64 decoding and
raises InvalidHostKey ('Incorrect padding') for EVERY connection, and its `save` rewrites the whole
file from what it understood (comments, unknown key types such as `sk-ssh-ed25519@openssh.com` and
trailing comments lost). Here:
- plain lines whose key paramiko can decode become known keys; lines it cannot decode (unknown key
  types, damaged base64) are skipped, as OpenSSH skips what it cannot parse;
- `@revoked` keys are collected and refused (never "known", even when also listed plainly);
- `@cert-authority` lines are skipped: paramiko does not verify host certificates, so a host known
  only through a CA counts as unknown (the user records its key with --trust-new);
- forgetting a host removes only its name (its whole line when it was the only name) and keeps every
  other byte, the file mode and a symlinked file's link; the new file replaces the old atomically.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgedeploy.errors import UsageError
from edgedeploy.fileinfo import write_bytes_atomic

if TYPE_CHECKING:
    import paramiko


@dataclass(frozen=True)
class KnownLine:
    """One meaningful line: optional marker, host patterns, key type, base64 key."""

    marker: str | None
    patterns: list[str]
    key_type: str
    key_base64: str


def parse_line(text: str) -> KnownLine | None:
    """None for blank lines, comments and lines too short to be records."""
    fields = text.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = fields[0] if fields[0].startswith("@") else None
    if marker:
        fields = fields[1:]
    if len(fields) < 3:
        return None
    return KnownLine(marker, fields[0].split(","), fields[1], fields[2])


def _hashed_match(pattern: str, hostname: str) -> bool:
    """OpenSSH's HashKnownHosts form: |1|base64(salt)|base64(HMAC-SHA1(salt, hostname))."""
    parts = pattern.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return False
    try:
        salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, hostname.encode(), hashlib.sha1).digest(), want)


def names_host(patterns: list[str], hostname: str, *, wildcards: bool = True) -> bool:
    """Does a line's host-pattern list cover `hostname` (`host` or `[host]:port`)? A negated
    pattern that matches excludes the host whatever else matches, as in OpenSSH."""
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if body.startswith("|"):
            hit = _hashed_match(body, hostname)
        elif wildcards:
            hit = fnmatch.fnmatchcase(hostname.lower(), body.lower())
        else:
            hit = hostname.lower() == body.lower()
        if hit and negated:
            return False
        matched = matched or hit
    return matched


@dataclass
class HostKeyRecords:
    """What a known_hosts file says about keys: plain records for paramiko, revoked keys apart."""

    known: paramiko.HostKeys
    revoked_patterns: list[tuple[list[str], str, str]]

    def is_revoked(self, hostname: str, key: paramiko.PKey) -> bool:
        wanted = (key.get_name(), key.get_base64())
        return any(
            (key_type, blob) == wanted and names_host(patterns, hostname)
            for patterns, key_type, blob in self.revoked_patterns
        )


def load(path: Path, into: paramiko.HostKeys | None = None) -> HostKeyRecords:
    """Read `path` (a missing file holds no records); known keys are added to `into` when given
    (an SSHClient's host keys)."""
    import paramiko

    known = paramiko.HostKeys() if into is None else into
    revoked_patterns: list[tuple[list[str], str, str]] = []
    if not path.is_file():
        return HostKeyRecords(known, revoked_patterns)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UsageError(f"known_hosts {path}: cannot read ({exc.strerror})") from exc
    plain: list[KnownLine] = []
    for raw in text.splitlines():
        line = parse_line(raw)
        if line is None:
            continue
        if line.marker == "@revoked":
            revoked_patterns.append((line.patterns, line.key_type, line.key_base64))
        elif line.marker is None:
            plain.append(line)
        # @cert-authority (and any future marker): skipped, see the module docstring.
    revoked = {(key_type, blob) for _, key_type, blob in revoked_patterns}
    for line in plain:
        if (line.key_type, line.key_base64) in revoked:
            continue  # a revoked key is never a known one
        try:
            key = paramiko.PKey.from_type_string(line.key_type, base64.b64decode(line.key_base64))
        except (binascii.Error, ValueError, paramiko.SSHException, paramiko.UnknownKeyType):
            continue  # a key type paramiko lacks (sk-*), or damaged base64: not ours to judge
        for name in line.patterns:
            if not name.startswith("!"):
                known.add(name, key.get_name(), key)
    return HostKeyRecords(known, revoked_patterns)


def forget_host(path: Path, hostname: str) -> int:
    """Remove `hostname`'s plain records from `path`; returns how many lines changed. Only exact names
    (or hashed forms of it) are removed: a wildcard pattern stands for other hosts too."""
    real = path.resolve()
    data = real.read_bytes()
    lines = data.splitlines(keepends=True)
    out: list[bytes] = []
    changed = 0
    for raw in lines:
        line = parse_line(raw.decode(errors="replace"))
        if (
            line is None
            or line.marker is not None
            or not names_host(line.patterns, hostname, wildcards=False)
        ):
            out.append(raw)
            continue
        changed += 1
        others = [p for p in line.patterns if not names_host([p], hostname, wildcards=False)]
        if not others:
            continue
        # Several names share the key: keep the line for the others, drop only this host's name.
        text = raw.decode(errors="surrogateescape")
        start = text.index(line.patterns[0]) if line.patterns[0] in text else 0
        old = ",".join(line.patterns)
        out.append(
            (text[:start] + text[start:].replace(old, ",".join(others), 1)).encode(errors="surrogateescape")
        )
    if changed:
        write_bytes_atomic(real, b"".join(out), mode=stat.S_IMODE(real.stat().st_mode))
    return changed


def append_record(path: Path, hostname: str, key: paramiko.PKey) -> None:
    """Append one record, starting a new line if the file's last line has no newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        needs_newline = path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    except FileNotFoundError:
        needs_newline = False
    with path.open("a") as fh:
        if needs_newline:
            fh.write("\n")
        fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
