"""Real photos for int8 calibration and int8-vs-fp32 agreement, offline.

There is no ImageNet offline, but scikit-image and scikit-learn ship a few ordinary colour photos of
ImageNet-like subjects. The calibration photos and the evaluation photos are DISJOINT sets, so int8
ranges are never fitted on the images they are judged on:

- calibration: astronaut (skimage), coffee (skimage), china (sklearn: a temple)
- evaluation: chelsea (skimage: a cat), rocket (skimage), the Middlebury motorcycle stereo pair
  (skimage; both views, one scene), flower (sklearn)

Crops are ImageNet-style random resized crops (a square of 50-100 % of the short side, anywhere,
mirrored half the time) resized to the model's input with a bilinear filter, then normalised as
EfficientNet-Lite expects: (pixel - 127) / 128, the TensorFlow reference's MEAN_RGB 127 / STDDEV_RGB
128 for the Lite models. (Checked: on centre crops it makes the ported weights more confident than
torchvision's mean/std, e.g. coffee -> espresso 0.94 vs 0.84, motorcycle -> moped 0.72 vs 0.56.)
One-channel models (the LeNet-5 smoke run) get grey crops in [0, 1].

`smooth_images` makes synthetic natural-image-like inputs where photos are not needed (verification and
calibration inputs of the conversion benches).
"""

from __future__ import annotations

import numpy as np

CALIBRATION_PHOTOS = ("astronaut", "coffee", "china")
EVALUATION_PHOTOS = ("chelsea", "rocket", "motorcycle_left", "motorcycle_right", "flower")


def load_photo(name: str) -> np.ndarray:
    """One bundled photo as an HxWx3 uint8 array (no download: the files ship in the wheels)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _disparity = skimage.data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    return getattr(skimage.data, name)()[..., :3]


def random_crops(names: tuple[str, ...], n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """`n` NCHW float32 crops of the named photos, preprocessed for a model of input `shape`."""
    from PIL import Image

    photos = [Image.fromarray(load_photo(name)) for name in names]
    rng = np.random.default_rng(seed)
    _, channels, height, width = shape
    out = np.empty((n, channels, height, width), np.float32)
    for i in range(n):
        photo = photos[i % len(photos)]  # every photo equally often
        side = int(min(photo.size) * rng.uniform(0.5, 1.0))
        left = int(rng.integers(photo.size[0] - side + 1))
        top = int(rng.integers(photo.size[1] - side + 1))
        box = (left, top, left + side, top + side)
        crop = photo.resize((width, height), Image.Resampling.BILINEAR, box=box)
        pixels = np.asarray(crop, np.float32)
        if rng.random() < 0.5:
            pixels = pixels[:, ::-1]
        if channels == 1:
            out[i, 0] = pixels.mean(axis=2) / 255.0
        else:
            out[i] = ((pixels - 127.0) / 128.0).transpose(2, 0, 1)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def agreement(
    reference_logits: np.ndarray, logits: np.ndarray, confident_at: float = 0.5
) -> dict[str, float | int | None]:
    """Top-1 agreement with the reference (fp32) model: over all inputs, and over the inputs on which
    the reference is confident (its top-1 softmax probability above `confident_at`), where a
    disagreement is a real error rather than a coin toss between near-equal classes; plus how often
    the reference's top-1 is in the top 5, and the logits' SQNR."""
    reference_top1 = reference_logits.argmax(axis=1)
    same = logits.argmax(axis=1) == reference_top1
    confident = softmax(reference_logits).max(axis=1) > confident_at
    top5 = np.argsort(-logits, axis=1)[:, :5]
    noise = float(np.sum((logits - reference_logits) ** 2))
    return {
        "top1_agreement": float(same.mean()),
        "top1_agreement_confident": float(same[confident].mean()) if confident.any() else None,
        "confident_inputs": int(confident.sum()),
        "inputs": len(same),
        "reference_top1_in_top5": float((top5 == reference_top1[:, None]).any(axis=1).mean()),
        # Signal-to-quantisation-noise ratio of the logits: finer-grained than agreement.
        "logit_sqnr_db": 10.0 * float(np.log10(np.sum(reference_logits**2) / noise)) if noise else None,
    }


def smooth_images(count: int, size: int, seed: int) -> np.ndarray:
    """Natural-image-like inputs: bilinear-upsampled 7x7 colour noise plus a little pixel noise."""
    import torch

    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(-1, 1, (count, 3, 7, 7)).astype(np.float32))
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    images = images.numpy() + rng.normal(0, 0.05, images.shape).astype(np.float32)
    return np.clip(images, -1, 1).astype(np.float32)
