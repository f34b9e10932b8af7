"""The emulated arm64 devices behind `edgedeploy emulator`, as SSH targets of the inventory.

`image.py` builds the Debian arm64 image; `instances.py` starts, stops and lists instances (the
qemu VM, or the chroot stand-in of `chroot.py`); `state.py` holds what both kinds share (the state
file, the loopback SSH endpoint), so `chroot` never imports `instances` back (no circle).
Nothing is imported here.
"""
