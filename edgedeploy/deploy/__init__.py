"""Targets (the inventory) and the transports that reach them (local, ssh, adb, qemu)."""
