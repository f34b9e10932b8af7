"""push's device script: the device end of `edgedeploy push` (deploy/push.py), one file at a time.

It is the one module of this package that runs from its SOURCE, sent by the host on stdin or with -c
(`python3 -S - MODE ARGS...`): it is what puts the zipapp on the device in the first place, so it
cannot need the zipapp, and it stays stand-alone (standard library only, no imports from this
package). The host imports its constants (LOCK_WAIT_S...) and reads its text; the argv protocol and
the modes are described in deploy/push.py.
"""

import contextlib
import errno
import glob
import hashlib
import json
import os
import select
import sys
import time

# Seconds a device script waits for another writer's lock on the same file; an own part left behind by
# a run that died together with its device process is adopted once untouched this long. A session
# that hears nothing from the host and sees the part not grow for IDLE_S gives up (parking the part):
# a link that died silently (sshd may not notice for hours) must not hold the file's lock, and the
# reconnecting push then gets it within IDLE_S < LOCK_WAIT_S.
LOCK_WAIT_S = 300
ORPHAN_AGE_S = 120
IDLE_S = 120


def space(p):
    try:
        st = os.statvfs(p if os.path.isdir(p) else os.path.dirname(p) or ".")
    except OSError:
        return None, None
    return st.f_bavail * st.f_frsize, (st.f_favail if st.f_files else None)


def fail(what, exc):
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) and space(folder)[1] == 0:
        sys.exit("%s failed: no free inodes on the device in %s" % (what, folder))
    sys.exit("%s failed: %s" % (what, exc.strerror))


def lock(path):
    import fcntl  # here: the host imports this module for its constants, and may lack fcntl

    t0 = time.time()
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            fail("creating the lock " + path, e)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.time() - t0 > LOCK_WAIT_S:
                    sys.exit(
                        "another push of %s has held its lock (%s) for %d s; try again when it "
                        "has finished" % (final, path, LOCK_WAIT_S)
                    )
                time.sleep(0.1)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed it as we waited: lock the new one


def unlock(fd, path):
    with contextlib.suppress(OSError):
        os.remove(path)
    os.close(fd)


def sha(p):
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            for c in iter(lambda: f.read(1 << 20), b""):
                h.update(c)
    except OSError:
        return None
    return h.hexdigest()


def adopt():
    if not os.path.exists(shared):
        old = [
            p
            for p in glob.glob(glob.escape(shared) + "-*")
            if p != part and time.time() - os.path.getmtime(p) > ORPHAN_AGE_S
        ]
        if old:
            os.replace(max(old, key=os.path.getsize), shared)
    if "a" in flags and part != shared and not os.path.exists(part) and os.path.exists(shared):
        os.replace(shared, part)


def park():
    if part != shared and os.path.exists(part):
        os.replace(part, shared)


def state():
    if mode != "state":
        os.makedirs(folder, exist_ok=True)
    try:
        part_size = os.path.getsize(part)
    except OSError:
        part_size = None
    free, inodes = space(folder)
    try:
        with open(manifest) as f:
            entry = json.load(f).get("files", {}).get(key)
    except (OSError, ValueError):
        entry = None
    try:
        st = os.stat(final)
        same = (
            "c" not in flags
            and entry
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
        )
        final_sha = entry["sha256"] if same else sha(final)
    except OSError:
        final_sha = None
    return {
        "sha256": final_sha,
        "part_size": part_size,
        "part_sha256": sha(part) if part_size else None,
        "free": free,
        "free_inodes": inodes,
        "manifest_sha256": (entry or {}).get("sha256"),
    }


def record(want):
    fd = lock(manifest + ".lock")
    try:
        try:
            with open(manifest) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = {}
        stamp = int(time.time()) - 2
        os.utime(final, (stamp, stamp))
        doc.setdefault("files", {})[key] = {
            "sha256": want,
            "size": int(size),
            "source": source,
            "mtime": stamp,
            "mtime_ns": os.stat(final).st_mtime_ns,
            "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = "%s.%d.tmp" % (manifest, os.getpid())
        try:
            with open(tmp, "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
            os.replace(tmp, manifest)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            fail("writing " + manifest, e)
    finally:
        unlock(fd, manifest + ".lock")


def idle_exit():
    park()
    sys.exit("no word from the host and no upload progress for %d s; gave up" % IDLE_S)


def following():
    h = hashlib.sha256()
    f = None
    verdict = None
    moved = time.time()
    while True:
        if f is None:
            try:
                f = open(part, "rb", buffering=0)  # noqa: SIM115 - read as it grows, until the exit
            except OSError:
                if verdict == "go":
                    raise
        c = f.read(1 << 20) if f else b""
        if c:
            h.update(c)
            moved = time.time()
            continue
        if verdict == "go":
            return h.hexdigest()
        if time.time() - moved > IDLE_S:
            idle_exit()
        if select.select([sys.stdin], [], [], 0.05)[0]:
            verdict = sys.stdin.readline().strip()
            if verdict != "go":
                if verdict == "abort":
                    discard()
                else:
                    park()  # EOF: the link went; the next run resumes
                sys.exit("upload abandoned; nothing changed")


def commit(want, got):
    if got != want:
        discard()
        sys.exit("sha256 mismatch after upload (got %s); the upload was discarded" % got)
    os.replace(part, final)
    record(want)
    if part != shared:  # a shared part is stale now that the file is in place
        with contextlib.suppress(OSError):
            os.remove(shared)


def discard():
    with contextlib.suppress(OSError):
        os.remove(part)


if __name__ == "__main__":
    mode, final, manifest, key, size, source, part, flags = sys.argv[1:9]
    shared = final + ".edgedeploy-part"
    folder = os.path.dirname(final) or "."
    held = None
    if mode != "state":
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            fail("creating " + folder, e)
        held = lock(final + ".edgedeploy-lock")
        adopt()
    try:
        if mode == "session":
            print(json.dumps(state()), flush=True)
            if not select.select([sys.stdin], [], [], IDLE_S)[0]:
                idle_exit()
            words = sys.stdin.readline().split()
            if words[:1] == ["record"]:
                record(words[1])
            elif words[:1] == ["follow"]:
                if words[2] == "fresh":
                    discard()
                print("ready", flush=True)
                commit(words[1], following())
            elif words[:1] == ["abort"]:
                discard()
            elif words[:1] != ["done"]:
                park()
        elif mode in ("state", "state-mkdir"):
            print(json.dumps(state()))
        elif mode == "commit":
            commit(sys.argv[9], sha(part))
        elif mode == "record":
            record(sys.argv[9])
        elif mode == "discard":
            discard()
    finally:
        if held is not None:
            unlock(held, final + ".edgedeploy-lock")
