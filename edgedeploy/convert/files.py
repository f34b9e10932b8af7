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
    """The first line of an exception's message: library errors can span pages; users get one line."""
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:limit]


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


def load_array_file(path: Path) -> np.ndarray:
    """A .npy file (or the first array of a .npz) as an array; bad files become one-line errors."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as archive:
                return np.asarray(archive[archive.files[0]])
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, IndexError, EOFError) as err:
        raise UsageError(f"{path}: not a readable .npy array ({err})") from err


def load_calibration(path: Path) -> np.ndarray:
    """Calibration samples from a .npy/.npz file or a directory of them (stacked along batch)."""
    if path.is_dir():
        files = sorted([*path.glob("*.npy"), *path.glob("*.npz")])
        if not files:
            raise UsageError(f"{path}: calibration directory holds no .npy files")
        arrays = [load_array_file(f) for f in files]
        shapes = {a.shape[1:] if a.ndim == arrays[0].ndim else a.shape for a in arrays}
        if len({a.ndim for a in arrays}) != 1 or len(shapes) != 1:
            raise UsageError(
                f"{path}: calibration files have different shapes: {sorted(str(a.shape) for a in arrays)}"
            )
        return np.concatenate(arrays, axis=0).astype(np.float32)
    if not path.exists():
        raise UsageError(f"{path}: calibration data not found")
    return load_array_file(path).astype(np.float32)


def match_input_shape(
    samples: np.ndarray, input_shape: tuple[int, ...], what: str, origin: str
) -> np.ndarray:
    """Check samples against the model's input shape (batch excluded); a single sample gets a batch axis."""
    expected = tuple(input_shape[1:])
    if samples.shape == expected:
        samples = samples[None]
    if tuple(samples.shape[1:]) != expected:
        raise UsageError(
            f"{origin}: {what} has shape {tuple(samples.shape)} but the model takes "
            f"(N, {', '.join(map(str, expected))})"
        )
    if len(samples) == 0:
        raise UsageError(f"{origin}: {what} holds no samples")
    return np.ascontiguousarray(samples, dtype=np.float32)
