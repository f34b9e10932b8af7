"""The ways to reach a target, one file each behind one protocol (as pyinfra's connectors).

`base.py` holds the `Transport` protocol and the shared base class; `local.py`, `ssh.py` and `adb.py`
implement it; `connect.py::open_transport` picks one from the target's `ansible_connection`.
Nothing is imported here, so naming this package costs no paramiko import.
"""
