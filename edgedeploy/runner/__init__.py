"""The on-device runner lives in `edgedeploy_runner.py`, a stand-alone script shipped to targets.

It is never imported in-process by the rest of the package: only its path is used.
"""

from pathlib import Path

RUNNER_PATH = Path(__file__).with_name("edgedeploy_runner.py")
