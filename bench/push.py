"""Benchmark `push` over SSH against OpenSSH's `scp`, on the same loopback sshd, in one run.

Measures, alternating rounds so both see the same machine load:
- first push of a random file (default 50 MB): edgedeploy's whole push (connect, local sha256, remote
  state query, pipelined SFTP upload, on-device sha256 verify, atomic rename, manifest) vs
  `scp` (connect + copy, no verification); throughput = file size / wall time, median of the rounds;
- an unchanged re-push (connect, hashes on both sides, skip): wall time, in-process.
Goals (issue 5): push >= 80% of scp's throughput; unchanged re-push < 0.5 s.

    python -m bench.push [--size-mb 50] [--rounds 3] [--quick]

Prints one JSON document. Needs Debian's openssh-server and openssh-client.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.deploy.push import push_file
from edgedeploy.deploy.transports.ssh import SSHTransport
from tests.support.sshd import SSHServer, make_server, sshd_available


def scp_seconds(server: SSHServer, src: Path, dest: Path) -> float:
    argv = [
        "scp", "-q", "-P", str(server.port), "-i", str(server.client_key),
        "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", str(src), f"{server.user}@{server.host}:{dest}",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def push_seconds(target_inventory: Path, src: Path, remote_dir: str) -> tuple[float, dict[str, object]]:
    """Wall time of a whole push; also the SFTP data rate between the first and last progress report."""
    target = load_inventory(target_inventory).get("bench")
    marks: list[tuple[float, int]] = []
    start = time.perf_counter()
    with SSHTransport(target) as ssh:
        result = push_file(
            ssh, src, remote_dir, python=target.python,
            progress=lambda done, total: marks.append((time.perf_counter(), done)),
        )  # fmt: skip
        cipher = ssh.cipher
    seconds = time.perf_counter() - start
    rate = (marks[-1][1] - marks[0][1]) / 1e6 / (marks[-1][0] - marks[0][0]) if len(marks) > 2 else None
    return seconds, {**result.to_dict(), "cipher": cipher, "transfer_mb_per_s": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (2 MB, 1 round)")
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.rounds = 2, 1
    if not sshd_available() or not shutil.which("scp"):
        sys.exit("bench/push.py needs openssh-server and openssh-client (tools/install-system-deps.sh)")

    with tempfile.TemporaryDirectory(prefix="edgedeploy-bench-push-") as tmp:
        root = Path(tmp)
        server = make_server(root / "sshd").start()
        server.write_known_hosts()
        try:
            inventory = root / "inventory.yml"
            # The device's Python is the system one, as on a board; here `python3` on the remote PATH
            # would be a pyenv shim that alone costs ~0.3 s per start.
            python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
            inventory.write_text(
                server.inventory_yaml(
                    "bench", workdir=str(root / "device"), ansible_python_interpreter=python
                )
            )
            src = root / "model.bin"
            src.write_bytes(os.urandom(args.size_mb << 20))
            size_mb = src.stat().st_size / 1e6
            scp_s, push_s, transfer, details = [], [], [], {}
            for round_no in range(args.rounds):
                scp_s.append(scp_seconds(server, src, root / f"scp-{round_no}.bin"))
                seconds, details = push_seconds(inventory, src, f"round-{round_no}")
                push_s.append(seconds)
                transfer.append(details["transfer_mb_per_s"])
                assert details["sent_bytes"] == src.stat().st_size and not details["skipped"]
            with SSHTransport(load_inventory(inventory).get("bench")) as ssh:  # what one remote command costs
                shell_start_s = statistics.median(ssh.run(["true"]).seconds for _ in range(3))
            repush_s = []
            for _ in range(max(3, args.rounds)):
                seconds, again = push_seconds(inventory, src, f"round-{args.rounds - 1}")
                assert again["skipped"] and again["sent_bytes"] == 0
                repush_s.append(seconds)
        finally:
            server.stop()

    scp_mb_s = size_mb / statistics.median(scp_s)
    push_mb_s = size_mb / statistics.median(push_s)
    doc = {
        "file_mb": round(size_mb, 1),
        "rounds": args.rounds,
        "scp_seconds": [round(s, 3) for s in scp_s],
        "push_seconds": [round(s, 3) for s in push_s],
        "scp_mb_per_s": round(scp_mb_s, 1),
        "push_mb_per_s": round(push_mb_s, 1),
        "push_vs_scp": round(push_mb_s / scp_mb_s, 3),
        "push_vs_scp_goal": 0.8,
        "push_sftp_transfer_mb_per_s": [round(r, 1) if r else None for r in transfer],
        "push_cipher": details.get("cipher"),
        "remote_command_start_s": round(shell_start_s, 3),
        "unchanged_repush_seconds": [round(s, 3) for s in repush_s],
        "unchanged_repush_median_s": round(statistics.median(repush_s), 3),
        "unchanged_repush_goal_s": 0.5,
        "notes": "both timings include connection set-up; push also hashes locally and verifies the sha256 "
        "on the device (one remote command through the login shell: if the sshd user's ~/.bashrc is slow, "
        "push pays it and scp's SFTP subsystem does not), scp verifies nothing; loopback on a shared "
        "machine, so figures are noisy",
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
