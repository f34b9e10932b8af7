"""Model architectures edgedeploy knows by name (for state_dicts and the benchmarks)."""
