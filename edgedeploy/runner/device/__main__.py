"""`python3 edgedeploy_runner.pyz ...` (the zipapp's entry, see runner/__init__.py) or `python3 -m
edgedeploy_device ...` (Dockerfile.arm64): the same command line."""

import sys

from .cli import main

sys.exit(main())
