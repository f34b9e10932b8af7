"""edgedeploy's device side: one package, shipped to the device as ONE zipapp (`edgedeploy_runner.pyz`)
and run there with the device's Python (3.8+): `python3 edgedeploy_runner.pyz MODEL ...` measures a
model, `... probe` reports the device's facts, `... platform` / `... verify` serve `provision`.

It imports only the standard library at import time (numpy and the inference runtime lazily, where a
model is run) and nothing from the rest of edgedeploy (tools/check_imports.py checks it), so the
host can import its modules too (the runtimes table, the sysfs readers) without a device.
Modules: runtimes (the RUNTIMES declaration and one adapter per runtime), inputs (feeds and outputs),
sysfs (cpufreq, thermal zones, throttling), power (sensors and sampling), host (what device this
is, memory), measure (the timed runs and their statistics), probe (facts for `targets check` and
`provision`), pushfile (push's device script), cli (the sub-commands).
This file stays parseable by any Python (no f-strings): the zipapp's entry imports it first and
calls check_python, so 2.7-3.7 get one clear JSON error (exit 4), not a SyntaxError.
"""

import sys
import time

RUNNER_VERSION = "2"
MIN_PYTHON = (3, 8)


class RunnerError(Exception):
    """A failure to report as the one JSON document {"error", "kind"} with exit code `code`: 1 runner
    failure, 2 bad input (model, inputs, shapes), 3 no usable runtime, 4 the device's Python is too old."""

    def __init__(self, message, kind="bad-input", code=2):
        Exception.__init__(self, message)
        self.kind = kind
        self.code = code


def check_python(version_info=None):
    version = tuple((version_info or sys.version_info)[:2])
    if version < MIN_PYTHON:
        raise RunnerError(
            "Python %d.%d on the device is too old; the runner needs %d.%d+ "
            "(set ansible_python_interpreter to a newer one)" % (version + MIN_PYTHON),
            kind="python",
            code=4,
        )


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
