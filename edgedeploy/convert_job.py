"""`edgedeploy convert`: load any source model, convert, verify, report (the CLI verb's one module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.errors import UsageError
from edgedeploy.options import ConvertOptions
from edgedeploy.results import ConvertResult
from edgedeploy.shapes import parse_shapes

MNIST_SHAPE = (1, 28, 28)
MNIST_CALIBRATION_SAMPLES = 256


def run(model: str, options: ConvertOptions | None = None) -> ConvertResult:
    """Convert `model` and verify it; returns the result, whose document is convert.api.convert_source's.

    With `options.target`, the int8 auto candidates are timed on that target; it is connected to
    before the conversion starts, so an unknown or unreachable target fails in seconds."""
    from edgedeploy.convert.api import convert_source
    from edgedeploy.convert.files import load_calibration, match_inputs
    from edgedeploy.convert.sources import load_source

    opts = options or ConvertOptions()
    to, precision, verify_samples, calibration = (
        opts.to,
        opts.precision,
        opts.verify_samples,
        opts.calibration,
    )
    if verify_samples < 1:
        raise UsageError(f"--verify-samples {verify_samples}: need at least 1")
    if opts.threads is not None and opts.threads < 1:
        raise UsageError(f"--threads {opts.threads}: need at least 1")
    timed = precision == "auto" or (precision == "int8" and opts.int8_format == "auto")
    if opts.target is not None and not (to == "onnx" and timed):
        raise UsageError(
            "--target times the int8 candidates on a device: it needs --to onnx --precision int8 "
            "--int8-format auto, or --precision auto (to time any model there, use edgedeploy profile "
            "MODEL --target T)"
        )
    shapes = parse_shapes(list(opts.input_shape), "--shape")
    source = load_source(model, arch=opts.arch, input_shape=shapes or None)
    output = opts.output or Path(f"{source.stem}-{precision}.{to}")
    calibration_data = None
    if calibration is not None:
        calibration_data = load_calibration(calibration, source.input_names)
        if source.input_shapes is not None:
            calibration_data = match_inputs(
                calibration_data,
                source.input_shapes,
                source.input_names,
                "calibration data",
                str(calibration),
                source.batched,
            )
    verify_inputs, labels, origin, calibration_data = _verification_data(
        source.input_shapes, calibration_data, calibration, verify_samples, precision
    )
    settings: dict[str, Any] = {
        "to": to,
        "precision": precision,
        "output": output,
        "calibration": calibration_data,
        "verify_inputs": verify_inputs,
        "labels": labels,
        "tolerance": opts.tolerance,
        "int8_format": opts.int8_format,
        "threads": opts.threads,
        "inputs_origin": origin,
        "verify_samples": verify_samples,
        "verify_metric": opts.verify_metric,
    }
    if opts.target is None:
        return ConvertResult.from_doc(convert_source(source, **settings))
    from edgedeploy.convert.timing import TargetTimer
    from edgedeploy.deploy.inventory import load_inventory
    from edgedeploy.deploy.transports.connect import open_transport

    target = load_inventory(opts.inventory).get(opts.target)
    with open_transport(target, trust_new=opts.trust_new) as transport:
        timer = TargetTimer(transport, target, remote_prefix=f"{output.stem}.")
        return ConvertResult.from_doc(convert_source(source, timer=timer, **settings))


def _verification_data(
    shapes: list[tuple[int, ...]] | None,
    calibration: list[np.ndarray] | None,
    calibration_path: Path | None,
    samples: int,
    precision: str,
) -> tuple[list[np.ndarray] | None, np.ndarray | None, str | None, list[np.ndarray] | None]:
    """(verify inputs, labels, where they came from, calibration set).

    With user data, the last `samples` rows are held out for verification when there are enough rows,
    so int8 is not verified on the very images it was calibrated on. MNIST-shaped models without user
    data get real MNIST digits (and labels, hence accuracy); anything else gets generated inputs.
    """
    if calibration is not None:
        if len(calibration[0]) >= 2 * samples:
            return (
                [c[-samples:] for c in calibration],
                None,
                f"last {samples} rows of {calibration_path} (held out)",
                [c[:-samples] for c in calibration],
            )
        return (
            [c[:samples] for c in calibration],
            None,
            f"first rows of {calibration_path} (also used to calibrate)",
            calibration,
        )
    from edgedeploy.extras import MNIST_PACKAGES, installed

    # The MNIST digits come with the [compress] extra; a core install verifies on generated inputs.
    mnist_shaped = shapes is not None and len(shapes) == 1 and tuple(shapes[0][1:]) == MNIST_SHAPE
    if mnist_shaped and installed(*MNIST_PACKAGES):
        from edgedeploy.data.mnist import load_mnist

        train, test = load_mnist()
        test_part = test.subset(samples, seed=0)
        calibration_set = (
            [train.subset(MNIST_CALIBRATION_SAMPLES, seed=0).as_float()] if precision == "int8" else None
        )
        return [test_part.as_float()], test_part.labels, f"{samples} MNIST test images", calibration_set
    return None, None, None, None
