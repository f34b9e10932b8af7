"""Ansible-style inventory: groups, children, variable precedence, user files merged over built-ins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.errors import UsageError


def test_groups_children_and_precedence(tmp_path: Path) -> None:
    user = tmp_path / "mine.yml"
    user.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"edgedeploy_threads": 1},
                    "children": {
                        "lab": {
                            "vars": {"ansible_user": "lab", "edgedeploy_threads": 2},
                            "children": {
                                "lab_pis": {
                                    "vars": {"edgedeploy_threads": 3},
                                    "hosts": {
                                        "pi-a": {"ansible_host": "10.0.0.5"},
                                        "pi-b": {"edgedeploy_threads": 4},
                                    },
                                }
                            },
                        },
                        "raspberry_pi": {"hosts": {"pi5": {"ansible_host": "192.168.1.50"}}},
                    },
                }
            }
        )
    )
    inv = load_inventory(user)
    assert [t.name for t in inv.resolve("lab")] == ["pi-a", "pi-b"]
    pi_a, pi_b = inv.get("pi-a"), inv.get("pi-b")
    assert (pi_a.threads, pi_b.threads) == (3, 4)  # child group beats parent; host beats group
    assert pi_a.user == "lab" and pi_a.host == "10.0.0.5" and pi_a.connection == "ssh"
    assert pi_b.host == "pi-b" and set(pi_a.groups) >= {"all", "lab", "lab_pis"}
    pi5 = inv.get("pi5")  # redefined by the user: their host wins, the built-in's other vars stay
    assert pi5.host == "192.168.1.50" and pi5.user == "pi" and pi5.power_model is not None
    with pytest.raises(UsageError, match="is a group"):
        inv.get("lab")


def test_bad_inventory_files_are_usage_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("all: [unclosed")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_inventory(broken)
    with pytest.raises(UsageError, match="file not found"):
        load_inventory(tmp_path / "missing.yml")
    flat = tmp_path / "flat.yml"
    flat.write_text("hosts: {a: {}}\n")
    with pytest.raises(UsageError, match="top-level 'all:'"):
        load_inventory(flat)


SECRET_INVENTORY = """\
all:
  vars:
    ansible_become_pass: group-sudo-secret
  hosts:
    pi:
      ansible_host: 10.0.0.9
      ansible_user: pi
      ansible_password: hunter2-ssh
      ansible_ssh_pass: hunter3-ssh
      edgedeploy_threads: 2
"""


def test_targets_show_redacts_passwords(tmp_path: Path) -> None:
    from tests.support.cli import run_cli

    inventory = tmp_path / "inv.yml"
    inventory.write_text(SECRET_INVENTORY)
    for args in ([], ["--json"]):
        out = run_cli("targets", "show", "pi", "--inventory", str(inventory), *args, env={"COLUMNS": "200"})
        assert out.returncode == 0, out.stderr
        for secret in ("group-sudo-secret", "hunter2-ssh", "hunter3-ssh"):
            assert secret not in out.stdout + out.stderr
        assert "<redacted>" in out.stdout and "10.0.0.9" in out.stdout
        if args:
            shown = json.loads(out.stdout)["vars"]
            assert shown["ansible_password"] == shown["ansible_become_pass"] == "<redacted>"
            assert shown["ansible_user"] == "pi" and shown["edgedeploy_threads"] == 2


def test_vault_values_are_refused_naming_the_key(tmp_path: Path) -> None:
    from tests.support.cli import run_cli

    inventory = tmp_path / "vaulted.yml"
    inventory.write_text(
        "all:\n  hosts:\n    pi:\n      ansible_host: 10.0.0.9\n      ansible_become_pass: !vault |\n"
        "        $ANSIBLE_VAULT;1.1;AES256\n        6231386435363034363533393036393863\n"
    )
    with pytest.raises(
        UsageError, match=r"all\.hosts\.pi\.ansible_become_pass \(line 5\) holds an Ansible Vault"
    ):
        load_inventory(inventory)
    out = run_cli("targets", "show", "pi", "--inventory", str(inventory))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: inventory {inventory}: all.hosts.pi.ansible_become_pass (line 5)")
    assert "does not support" in lines[0] and "ConstructorError" not in lines[0]
    # Other tags are still not YAML edgedeploy reads.
    inventory.write_text("all:\n  hosts:\n    pi: !python/object:os.system {}\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_inventory(inventory)
