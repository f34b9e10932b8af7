"""The benchmarks: scripts that print measured JSON (never timed tests). Each module directly in bench/
is one benchmark, run from the repository root as `python -m bench.NAME` (`--help` lists its options,
`--quick` is the smoke run the tests use). What they share is in bench/support/; the sshd, network
namespace and tiny-ONNX helpers they share with the tests are in tests/support/. A benchmark imports no
other benchmark and no test file (checked by tests/test_bench_layout.py)."""
