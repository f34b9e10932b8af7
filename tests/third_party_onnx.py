"""Real third-party ONNX files, as the packages that `make test` installs ship them (no downloads).

Each model is copied into the test's tmp_path, so a test can write beside it and never touches the
installed package. The packages are pinned in pyproject.toml's `dev` extra.
"""

from __future__ import annotations

import shutil
import importlib.util
from pathlib import Path

import pytest

# name -> (package, path inside the package, what it is)
MODELS: dict[str, tuple[str, str, str]] = {
    # PaddleOCR models exported by Paddle2ONNX at opset 11 (rapidocr-onnxruntime 1.4.4).
    "ocr_cls": (
        "rapidocr_onnxruntime",
        "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "PaddleOCR text-direction classifier: x [?,3,48,192] -> [?,2] softmax",
    ),
    "ocr_det": (
        "rapidocr_onnxruntime",
        "models/ch_PP-OCRv4_det_infer.onnx",
        "PaddleOCR PP-OCRv4 text detector (DB): x [?,3,?,?] -> probability map [?,1,H,W]",
    ),
    "ocr_rec": (
        "rapidocr_onnxruntime",
        "models/ch_PP-OCRv4_rec_infer.onnx",
        "PaddleOCR PP-OCRv4 text recognizer (CTC): x [?,3,48,?] -> per-step class scores [?,T,6625]",
    ),
    # Silero VAD 6.2.3: stateful (state [2,?,128], batch on axis 1), scalar int64 `sr`, If subgraphs.
    "silero_vad": (
        "silero_vad",
        "data/silero_vad.onnx",
        "Silero voice-activity detector: input [?,?], state [2,?,128], sr scalar int64",
    ),
}


def third_party_onnx(name: str, directory: Path) -> Path:
    """Copy model `name` (a key of MODELS) from its installed package into `directory`."""
    package, inner, _ = MODELS[name]
    # find_spec locates the package without importing it (silero_vad imports torch, rapidocr cv2).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{package} is not installed: pip install -e '.[dev]' (make test does)")
    source = Path(next(iter(spec.submodule_search_locations))) / inner
    target = directory / source.name
    shutil.copyfile(source, target)
    return target
