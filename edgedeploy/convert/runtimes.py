"""Run ONNX and TFLite files locally (onnxruntime, ai-edge-litert) for verification and profiling."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.convert.files import first_line, ort_error
from edgedeploy.errors import UsageError

Batch = np.ndarray | list[np.ndarray]
"""Model inputs: one array for a one-input model, else one array per input in the model's order,
each with the batch axis first (the same N for all)."""


def as_list(inputs: Batch) -> list[np.ndarray]:
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


ONNX_DTYPES: dict[str, Any] = {
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class OnnxRunner:
    """An onnxruntime CPU session on one model file; runs any batch (split when the batch is fixed)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        from edgedeploy.runner.device.runtimes import open_ort_session

        def quiet(options: Any) -> None:
            options.log_severity_level = 3

        # The runner's session set-up, so the outputs verified here are those the runner times.
        try:
            self.session, self.session_options, self.session_options_dropped = open_ort_session(
                ort, str(path), threads, quiet
            )
        except Exception as err:  # noqa: BLE001 - ORT raises its own untyped errors for bad files
            raise UsageError(
                f"{path}: onnxruntime cannot load it ({ort_error(err, path, str(path))})"
            ) from err
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.input_shapes = [[d if isinstance(d, int) else None for d in i.shape] for i in inputs]
        # Integer inputs (a sample rate, token ids) are fed as integers: float data is cast to them.
        self.input_dtypes = [ONNX_DTYPES.get(i.type, np.float32) for i in inputs]
        self.input_name, self.input_shape = self.input_names[0], self.input_shapes[0]

    @property
    def fixed_batch(self) -> int | None:
        return self.input_shape[0] if self.input_shape else None

    def run_batch(self, x: Batch) -> np.ndarray:
        feeds = {
            name: np.asarray(array, dtype=dtype)  # a 0-d input's sample is a NumPy scalar: make it an array
            for name, array, dtype in zip(self.input_names, as_list(x), self.input_dtypes, strict=True)
        }
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)

    def predict(self, x: Batch) -> np.ndarray:
        return predict_in_batches(self.run_batch, x, self.fixed_batch)

    def predict_each(self, x: Batch) -> np.ndarray:
        """For models without a shared batch axis: x[i][k] is input i of sample k, a whole feed of
        the input's shape (a scalar, a state with its batch on axis 1, ...); outputs stacked on a new
        leading axis."""
        arrays = as_list(x)
        return np.stack([self.run_batch([a[k] for a in arrays]) for k in range(len(arrays[0]))])


class TfliteRunner:
    """An ai-edge-litert interpreter; quantizes int8/uint8 inputs and dequantizes outputs itself."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or 1)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise UsageError(f"{path}: LiteRT cannot load it ({first_line(err)})") from err
        self.inputs = self.interpreter.get_input_details()
        self.output = self.interpreter.get_output_details()[0]
        self.input_shape = [int(d) for d in self.inputs[0]["shape"]]

    @property
    def fixed_batch(self) -> int:
        return self.input_shape[0]

    def run_batch(self, x: Batch) -> np.ndarray:
        for detail, array in zip(self.inputs, as_list(x), strict=True):
            self.interpreter.set_tensor(detail["index"], _quantize(array, detail))
        self.interpreter.invoke()
        return _dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)

    def predict(self, x: Batch) -> np.ndarray:
        return predict_in_batches(self.run_batch, x, self.fixed_batch)


def predict_in_batches(run_batch: Callable[[Any], np.ndarray], x: Batch, batch: int | None) -> np.ndarray:
    """Run `x` through a model whose batch size is fixed (None: any), zero-padding the last chunk."""
    if not batch:
        return run_batch(x)
    arrays = as_list(x)
    total = len(arrays[0])
    outputs = []
    for start in range(0, total, batch):
        chunks = [_padded(a[start : start + batch], batch) for a in arrays]
        result = run_batch(chunks if isinstance(x, (list, tuple)) else chunks[0])
        outputs.append(result[: min(batch, total - start)])
    return np.concatenate(outputs)


def _padded(chunk: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.issubdtype(detail["dtype"], np.floating):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def open_runner(path: Path, threads: int | None = None) -> OnnxRunner | TfliteRunner:
    return TfliteRunner(path, threads) if path.suffix == ".tflite" else OnnxRunner(path, threads)


def profile_latencies(
    runners: dict[str, OnnxRunner | TfliteRunner],
    sample: Batch,
    min_seconds: float = 0.6,
    max_runs: int = 200,
) -> dict[str, float]:
    """Median single-inference latency (ms) of each runner, measured in interleaved rounds.

    Interleaving spreads background load (other processes on a shared CPU) evenly over the candidates,
    so their ratio stays meaningful even when absolute times are noisy.
    """
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for runner in runners.values():
        for _ in range(3):
            runner.run_batch(sample)
    started = time.perf_counter()
    while True:
        for name, runner in runners.items():
            for _ in range(5):
                t0 = time.perf_counter()
                runner.run_batch(sample)
                samples[name].append((time.perf_counter() - t0) * 1000.0)
        runs = len(next(iter(samples.values())))
        if runs >= max_runs or (runs >= 20 and time.perf_counter() - started >= min_seconds * len(runners)):
            break
    return {name: float(np.median(values)) for name, values in samples.items()}
