"""Real third-party ONNX files, as the packages that `make test` installs ship them (no downloads).

Each model is copied into the test's tmp_path, so a test can write beside it and never touches the
installed package. The packages are pinned in pyproject.toml's `dev` extra.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
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
    "silero_vad_op15": (
        "silero_vad",
        "data/silero_vad_16k_op15.onnx",
        "Silero VAD at opset 15 with a named batch: input [batch,sequence], state [2,batch,128], sr",
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


def page_crops(count: int, height: int, width: int, normalize: str) -> np.ndarray:
    """`count` crops of scikit-image's scanned text page (a real photo of print, shipped in the wheel)
    as PaddleOCR feeds them: (count, 3, height, width) float32, `normalize` "imagenet" (detector) or
    "half" ((x - 0.5) / 0.5: classifier, recognizer)."""
    from skimage import data

    page = data.page().astype(np.float32) / 255.0  # (191, 384) grey
    rows = np.linspace(0, page.shape[0] - height, count).astype(int)
    cols = np.linspace(0, page.shape[1] - width, count).astype(int)[::-1]
    crops = np.stack([page[r : r + height, c : c + width] for r, c in zip(rows, cols, strict=True)])
    rgb = np.repeat(crops[:, None], 3, axis=1)
    if normalize == "imagenet":
        mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
        std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
        return ((rgb - mean) / std).astype(np.float32)
    return ((rgb - 0.5) / 0.5).astype(np.float32)


def vad_feeds(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`count` Silero VAD feeds (one whole feed per sample: the model has no shared batch axis):
    512 audio samples of a 440 Hz tone in noise, a zero state, sample rate 16000."""
    rng = np.random.default_rng(seed)
    t = np.arange(512, dtype=np.float32) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    audio = tone[None] * rng.random((count, 1), dtype=np.float32) + 0.05 * rng.standard_normal((count, 512))
    return {
        "input": audio[:, None, :].astype(np.float32),
        "state": np.zeros((count, 2, 1, 128), np.float32),
        "sr": np.full(count, 16000, np.int64),
    }
