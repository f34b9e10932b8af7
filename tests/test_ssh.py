"""The ssh transport against a real OpenSSH sshd on loopback: auth, ssh_config, host keys, quoting."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.deploy.transports.ssh import SSHTransport
from edgedeploy.errors import TargetError
from tests.support.cli import run_cli
from tests.support.sshd import SSHServer, keygen

EVIL_NAME = "a b 'q' \"d\" $(touch PWNED); touch PWNED2 `touch PWNED3`.onnx"


def _inventory(tmp_path: Path, server: SSHServer, name: str = "box", **extra: object) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(server.inventory_yaml(name, **extra))
    return path


def _transport(tmp_path: Path, server: SSHServer, **extra: object) -> SSHTransport:
    target = load_inventory(_inventory(tmp_path, server, **extra)).get("box")
    return SSHTransport(target)


def test_key_auth_runs_commands_with_exit_codes_env_cwd_and_stdin(sshd: SSHServer, tmp_path: Path) -> None:
    with _transport(tmp_path, sshd) as ssh:
        assert ssh.workdir == str((sshd.root / "device-workdir").resolve())
        assert ssh.run(["sh", "-c", "exit 3"]).exit_code == 3
        result = ssh.run(
            ["sh", "-c", 'echo "$GREETING" from "$(pwd)"; cat'], env={"GREETING": "hi"}, stdin=b"in"
        )
        assert result.stdout == f"hi from {ssh.workdir}\nin"
        # Arguments are quoted, never pasted: shell syntax in them is inert text.
        assert ssh.run(["echo", "$(id)", ";", "`id`", "'x'"]).stdout == "$(id) ; `id` 'x'\n"
        assert ssh.run(["pwd"], cwd="/").stdout == "/\n"


def test_command_timeout_is_a_target_error(sshd: SSHServer, tmp_path: Path) -> None:
    with _transport(tmp_path, sshd) as ssh, pytest.raises(TargetError, match="timed out after 0.5 s"):
        ssh.run(["sleep", "5"], timeout=0.5)


def test_ssh_config_alias_and_proxyjump(sshd: SSHServer, tmp_path: Path) -> None:
    """~/.ssh/config supplies HostName/Port/User/IdentityFile; ProxyJump tunnels through a jump host
    (the same sshd, reached first as `jumpbox`)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host devbox jumpbox\n  HostName {sshd.host}\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n  UserKnownHostsFile {sshd.known_hosts}\n"
        f"Host behindjump\n  HostName {sshd.host}\n  Port {sshd.port}\n  ProxyJump jumpbox\n"
        f"  IdentityFile {sshd.client_key}\n  UserKnownHostsFile {sshd.known_hosts}\n"
    )
    inventory = tmp_path / "alias.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"all": {"hosts": {name: {"ansible_connection": "ssh"} for name in ("devbox", "behindjump")}}}
        )
    )
    for name in ("devbox", "behindjump"):
        out = run_cli("targets", "check", name, "-i", str(inventory), "--json", env={"HOME": str(home)})
        assert out.returncode == 0, out.stderr
        facts = json.loads(out.stdout)
        assert facts["target"] == name and facts["arch"] and facts["python"].startswith("3.")
        assert "avx2" in facts["isa"] and facts["cores"] >= 1


def test_unknown_host_key_refused_then_trust_new_records_it(sshd: SSHServer, tmp_path: Path) -> None:
    sshd.known_hosts.write_text("")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    inventory = _inventory(tmp_path, sshd)
    refused = run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json")
    assert refused.returncode != 0
    assert "host key" in refused.stderr and "--trust-new" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and refused.stdout == ""
    trusted = run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--trust-new", "--json")
    assert trusted.returncode == 0, trusted.stderr
    assert sshd.known_hosts.read_text() == sshd.host_key_line()
    again = run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["skipped"] is True


def test_changed_host_key_refused_unless_trust_new_replaces_it(sshd: SSHServer, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key").with_suffix(".pub").read_text().split()
    sshd.known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {other[0]} {other[1]}\n")
    inventory = _inventory(tmp_path, sshd)
    refused = run_cli("targets", "check", "box", "-i", str(inventory))
    assert refused.returncode == 1
    assert "host key" in refused.stderr and "CHANGED" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert other[1] in sshd.known_hosts.read_text()  # a refusal never touches the record
    trusted = run_cli("targets", "check", "box", "-i", str(inventory), "--trust-new")
    assert trusted.returncode == 0, trusted.stderr
    assert "CHANGED" in trusted.stderr and "replaced" in trusted.stderr  # said loudly, not silently
    assert other[1] not in sshd.known_hosts.read_text()
    assert sshd.host_key_line().split()[2] in sshd.known_hosts.read_text()
    again = run_cli("targets", "check", "box", "-i", str(inventory))
    assert again.returncode == 0, again.stderr


def test_auth_failure_is_one_line(sshd: SSHServer, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger_key")
    inventory = _inventory(tmp_path, sshd, ansible_ssh_private_key_file=str(stranger))
    out = run_cli("targets", "check", "box", "-i", str(inventory), env={"SSH_AUTH_SOCK": ""})
    assert out.returncode == 1
    assert out.stderr.startswith("error: box: authentication failed for ")
    assert len(out.stderr.strip().splitlines()) == 1


def test_unreachable_and_hung_hosts_time_out(sshd: SSHServer, tmp_path: Path) -> None:
    """A host that accepts TCP but never speaks SSH times out; a closed port is refused. One line each."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never answers
        hung = _inventory(
            tmp_path, sshd, "hung", ansible_port=silent.getsockname()[1],
            edgedeploy_connect_timeout=1, edgedeploy_connect_retries=0,
        )  # fmt: skip
        out = run_cli("targets", "check", "hung", "-i", str(hung))
    assert out.returncode == 1 and "cannot reach" in out.stderr and "1 s timeout" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    sshd.stop()
    closed = _inventory(tmp_path, sshd, "closed", edgedeploy_connect_retries=1)
    out = run_cli("push", str(sshd.known_hosts), "-t", "closed", "-i", str(closed))
    assert out.returncode == 1 and "cannot reach" in out.stderr and "2 attempts" in out.stderr


def test_hostile_file_name_arrives_intact_and_runs_nothing(sshd: SSHServer, tmp_path: Path) -> None:
    model = tmp_path / EVIL_NAME
    model.write_bytes(b"\x00weights\xff" * 1000)
    inventory = _inventory(tmp_path, sshd)
    out = run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["remote_path"].endswith("/models/" + EVIL_NAME)
    assert Path(doc["remote_path"]).read_bytes() == model.read_bytes()
    workdir = sshd.root / "device-workdir"
    touched = [p for p in [*workdir.rglob("PWNED*"), *Path.home().glob("PWNED*"), *tmp_path.glob("PWNED*")]]
    assert touched == []
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["files"]["models/" + EVIL_NAME]["size"] == model.stat().st_size


def test_missing_device_python_is_one_line(sshd: SSHServer, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"weights")
    inventory = _inventory(tmp_path, sshd, ansible_python_interpreter="/nonexistent/python3")
    out = run_cli("push", str(model), "-t", "box", "-i", str(inventory))
    assert out.returncode == 1
    assert "/nonexistent/python3 not found on the device" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (sshd.root / "device-workdir" / "models" / "m.onnx").exists()


def test_key_from_the_ssh_agent(sshd: SSHServer, tmp_path: Path) -> None:
    """No key file in the inventory: the key comes from a real ssh-agent ($SSH_AUTH_SOCK)."""
    agent, add = shutil.which("ssh-agent"), shutil.which("ssh-add")
    if agent is None or add is None:
        pytest.skip("OpenSSH client (ssh-agent) not installed")
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen([agent, "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        env = {"SSH_AUTH_SOCK": str(sock), "HOME": str(tmp_path)}
        subprocess.run([add, "-q", str(sshd.client_key)], env=env, check=True, capture_output=True)
        doc = yaml.safe_load(sshd.inventory_yaml("box"))
        del doc["all"]["hosts"]["box"]["ansible_ssh_private_key_file"]
        inventory = tmp_path / "agent.yml"
        inventory.write_text(yaml.safe_dump(doc))
        out = run_cli("targets", "check", "box", "-i", str(inventory), "--json", env=env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["target"] == "box"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def _hashed(hostname: str) -> str:
    """OpenSSH's HashKnownHosts form of a name (as `ssh-keygen -H` writes it)."""
    import base64
    import hashlib
    import hmac

    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, hostname.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def _crowded_known_hosts(tmp_path: Path, sshd: SSHServer, record: str) -> str:
    """A real user's known_hosts: comments, a CA line, a revoked key of another host, a security-key
    line paramiko cannot decode, a hashed entry, trailing comments, no newline at the end."""
    ca_key, old_key = tmp_path / "ca_key", tmp_path / "old_key"
    ca = (ca_key if ca_key.exists() else keygen(ca_key)).with_suffix(".pub").read_text().split()
    old = (old_key if old_key.exists() else keygen(old_key)).with_suffix(".pub").read_text().split()
    sk_blob = (
        "AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIHZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2AAAABHNzaDo="
    )
    return (
        "# my hosts, keep this comment\n"
        f"@cert-authority *.corp.example {ca[0]} {ca[1]} corp CA\n"
        f"@revoked elsewhere.example {old[0]} {old[1]}\n"
        f"yubi.example sk-ssh-ed25519@openssh.com {sk_blob} my security key\n"
        f"{_hashed('hashed.example')} {old[0]} {old[1]}\n"
        f"{record}\n"
        "\n"
        f"other.example,10.0.0.9 {old[0]} {old[1]} trailing comment stays"
    )


def test_marker_lines_in_known_hosts_are_understood(sshd: SSHServer, tmp_path: Path) -> None:
    """@cert-authority/@revoked lines (valid OpenSSH syntax) used to break every connection with
    'Incorrect padding'; now a matching key connects, and a revoked key is refused in one line."""
    sshd.known_hosts.write_text(_crowded_known_hosts(tmp_path, sshd, sshd.host_key_line().strip()))
    inventory = _inventory(tmp_path, sshd)
    ok = run_cli("targets", "check", "box", "-i", str(inventory))
    assert ok.returncode == 0, ok.stderr

    name, key_type, blob = sshd.host_key_line().split()
    sshd.known_hosts.write_text(
        _crowded_known_hosts(tmp_path, sshd, f"{name} {key_type} {blob}")
        + f"\n@revoked * {key_type} {blob}\n"
    )
    for extra in ((), ("--trust-new",)):  # --trust-new never overrides a revocation
        refused = run_cli("targets", "check", "box", "-i", str(inventory), *extra)
        assert refused.returncode == 1
        assert "is marked @revoked" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert f"@revoked * {key_type} {blob}" in sshd.known_hosts.read_text()


def test_trust_new_after_a_key_change_edits_only_that_host(sshd: SSHServer, tmp_path: Path) -> None:
    """--trust-new on a changed key: only the host's own record changes; comments, CA/revoked lines,
    security-key lines, hashed entries, trailing comments, the mode (0600) and a symlink stay."""
    other = keygen(tmp_path / "other_host_key").with_suffix(".pub").read_text().split()
    name = f"[{sshd.host}]:{sshd.port}"
    stale = f"{name},alias.example {other[0]} {other[1]} reinstalled box"
    stale_hashed = f"{_hashed(name)} {other[0]} {other[1]}"  # as `ssh-keygen -H` leaves it
    before = _crowded_known_hosts(tmp_path, sshd, f"{stale}\n{stale_hashed}")
    real = tmp_path / "dotssh" / "known_hosts"
    real.parent.mkdir()
    real.write_text(before)
    real.chmod(0o600)
    sshd.known_hosts.unlink(missing_ok=True)
    sshd.known_hosts.symlink_to(real)
    inventory = _inventory(tmp_path, sshd)
    refused = run_cli("targets", "check", "box", "-i", str(inventory))
    assert refused.returncode == 1 and "CHANGED" in refused.stderr
    trusted = run_cli("targets", "check", "box", "-i", str(inventory), "--trust-new")
    assert trusted.returncode == 0, trusted.stderr
    after = real.read_text()
    # The stale name left its line (kept for the alias that shares it); the new key is appended.
    expected = before.replace(stale, f"alias.example {other[0]} {other[1]} reinstalled box")
    expected = expected.replace(stale_hashed + "\n", "")
    assert after == expected + "\n" + sshd.host_key_line()
    assert real.stat().st_mode & 0o777 == 0o600 and sshd.known_hosts.is_symlink()
    again = run_cli("targets", "check", "box", "-i", str(inventory))
    assert again.returncode == 0, again.stderr


def test_upload_folder_made_by_another_writer_meanwhile(sshd: SSHServer, tmp_path: Path) -> None:
    """Two pushes at once: both see models/ missing, one makes it first, and the other's SFTP mkdir
    answers only "Failure" (a fresh-clone run failed `writing ... failed: Failure` this way). The
    folder appearing between our look and our mkdir is replayed here, on the real server."""
    model = tmp_path / "m.bin"
    model.write_bytes(b"w" * 4096)
    with _transport(tmp_path, sshd) as ssh:
        sftp = ssh._sftp_client()
        Path(ssh.workdir).mkdir(exist_ok=True)
        folder = f"{ssh.workdir}/models"
        made_meanwhile: list[str] = []
        real_stat = sftp.stat

        def stat_while_another_writer_makes_it(path: str):  # noqa: ANN202 - paramiko's SFTPAttributes
            if path == folder and not made_meanwhile:
                Path(folder).mkdir()
                made_meanwhile.append(path)
                raise FileNotFoundError(path)  # what our look saw, a moment before the other's mkdir
            return real_stat(path)

        sftp.stat = stat_while_another_writer_makes_it  # type: ignore[method-assign]
        ssh.put(model, f"{folder}/m.bin")
    assert made_meanwhile == [folder]
    assert Path(folder, "m.bin").read_bytes() == model.read_bytes()
