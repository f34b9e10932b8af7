"""File plumbing shared by the converters: atomic outputs, calibration data, quiet native logs."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgedeploy.errors import UsageError

# Metadata key holding the input layout (NCHW/NHWC) in ONNX metadata_props and TFLite metadata.
LAYOUT_KEY = "edgedeploy.layout"


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message: library errors can span pages; users get one line.

    A line over `limit` is shortened at a word boundary and says so ("..."), never cut mid-word."""
    lines = str(err).strip().splitlines()
    line = lines[0] if lines else type(err).__name__
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."


def ort_error(err: BaseException, path: Path, label: str) -> str:
    """onnxruntime's message about the model at `path`, naming it `label` instead of its (temporary)
    file, and for an invalid graph only the node and the error (not the node's full signature)."""
    import re

    text = " ".join(str(err).split())
    text = text.replace(str(path), label).replace(path.name, label)
    text = re.sub(r"Load model from .*? failed: ?", "", text)
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : ", "", text)
    node = re.search(r'In Node, \("([^"]*)", (\w+), .*?, Error (.*)$', text)
    if node:
        prefix = text[: text.find("In Node")].strip()
        text = f"{prefix} node {node.group(1)!r} ({node.group(2)}): {node.group(3)}"
    return first_line(RuntimeError(text), limit=400)


def guess_layout(shape: tuple[int, ...]) -> str:
    """Images are NCHW when the channel-sized axis (1, 3 or 4) comes right after the batch."""
    if len(shape) != 4:
        return "N/A" if len(shape) < 3 else "unknown"
    if shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4):
        return "NCHW"
    if shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        return "NHWC"
    return "unknown"


@contextlib.contextmanager
def work_dir_beside(output: Path) -> Iterator[Path]:
    """A hidden temporary directory next to `output`, removed afterwards whatever happens.

    Converters write candidates there; only the verified one is moved onto `output` with os.replace
    (same file system, so atomic): a failed or interrupted conversion leaves no half-written model.
    """
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        work = tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent)
    except OSError as err:
        raise UsageError(f"{output}: cannot write here ({err.strerror or err})") from err
    with work as name:
        yield Path(name)


@contextlib.contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (Python and C++ loggers of litert/ORT) to stderr meanwhile.

    Converters print progress lines on fd 1; `--json` promises one JSON document on stdout.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def native_output_to(log: Path) -> Iterator[None]:
    """Append everything written to fd 1 and 2 meanwhile (C++ absl logs, exporter warnings, progress
    bars of litert-torch and ai-edge-quantizer) to `log`, so a job's own progress stays readable."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with log.open("ab") as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def load_arrays(path: Path, names: list[str] | None = None) -> list[np.ndarray]:
    """A .npy file's array, or a .npz file's arrays: by `names` (a model's inputs) when it holds
    them all, else in the order saved (np.savez(f, a, b) stores arr_0, arr_1). Bad files: one line."""
    try:
        if path.suffix != ".npz":
            return [np.load(path, allow_pickle=False)]
        with np.load(path, allow_pickle=False) as archive:
            keys = names if names and set(names) <= set(archive.files) else archive.files
            return [np.asarray(archive[key]) for key in keys]
    except (OSError, ValueError, IndexError, EOFError, KeyError) as err:
        raise UsageError(f"{path}: not a readable .npy/.npz array ({err})") from err


def load_calibration(path: Path, names: list[str] | None = None) -> list[np.ndarray]:
    """Calibration samples, one array per model input (`names`): a .npy file (one input), a .npz
    (one array per input), or a directory of such files, stacked along the batch axis."""
    if path.is_dir():
        files = sorted([*path.glob("*.npy"), *path.glob("*.npz")])
        if not files:
            raise UsageError(f"{path}: calibration directory holds no .npy files")
        per_file = [load_arrays(f, names) for f in files]
        if len({len(arrays) for arrays in per_file}) != 1:
            raise UsageError(f"{path}: calibration files hold different numbers of arrays")
        stacked = []
        for arrays in zip(*per_file, strict=True):
            shapes = {a.shape[1:] if a.ndim == arrays[0].ndim else a.shape for a in arrays}
            if len({a.ndim for a in arrays}) != 1 or len(shapes) != 1:
                raise UsageError(
                    f"{path}: calibration files have different shapes: {sorted(str(a.shape) for a in arrays)}"
                )
            stacked.append(np.concatenate(arrays, axis=0).astype(np.float32))
        return stacked
    if not path.exists():
        raise UsageError(f"{path}: calibration data not found")
    return [a.astype(np.float32) for a in load_arrays(path, names)]


def match_input_shape(
    samples: np.ndarray, input_shape: tuple[int, ...], what: str, origin: str, batched: bool = True
) -> np.ndarray:
    """Check samples against the model's input shape (batch excluded; for a model without a shared
    batch axis, the whole shape: one feed per sample); a single sample gets a sample axis."""
    expected = tuple(input_shape[1:]) if batched else tuple(input_shape)
    if samples.shape == expected:
        samples = samples[None]
    if tuple(samples.shape[1:]) != expected:
        raise UsageError(
            f"{origin}: {what} has shape {tuple(samples.shape)} but the model takes "
            f"(N{''.join(f', {d}' for d in expected)})"
        )
    if len(samples) == 0:
        raise UsageError(f"{origin}: {what} holds no samples")
    return np.ascontiguousarray(samples, dtype=np.float32)


def match_inputs(
    inputs: np.ndarray | list[np.ndarray],
    shapes: list[tuple[int, ...]],
    names: list[str],
    what: str,
    origin: str,
    batched: bool = True,
) -> list[np.ndarray]:
    """One checked array per model input (a bare array for a one-input model), the same N for all."""
    arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(arrays) != len(shapes):
        raise UsageError(
            f"{origin}: {what} has {len(arrays)} array(s) but the model has {len(shapes)} inputs "
            f"({', '.join(names)})"
        )
    checked = [
        match_input_shape(
            np.asarray(a), shape, f"{what} for input {name!r}" if len(names) > 1 else what, origin, batched
        )
        for a, shape, name in zip(arrays, shapes, names, strict=True)
    ]
    if len({len(a) for a in checked}) > 1:
        raise UsageError(
            f"{origin}: {what} has different sample counts per input: {[len(a) for a in checked]}"
        )
    return checked
