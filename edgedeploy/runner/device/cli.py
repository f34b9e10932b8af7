"""The zipapp's command line: `python3 edgedeploy_runner.pyz MODEL [options]` measures a model
(measure.py); `probe`, `platform` and `verify` print the device's facts (probe.py). Model files end
in .onnx/.tflite, so a first argument naming a sub-command is never a model."""

import sys

FACT_COMMANDS = ("probe", "platform", "verify")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FACT_COMMANDS:
        from . import probe

        return probe.main(argv[0], argv[1:])
    from . import measure

    return measure.main(argv)
