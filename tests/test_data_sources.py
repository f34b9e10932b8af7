"""`load_data(spec)`: built-ins, .npz, image folders and module:factory on small real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.data.sources import (
    FASHION_MNIST_DIR,
    ArrayDataset,
    ImageFolderDataset,
    load_data,
    read_idx,
)
from edgedeploy.errors import UsageError
from edgedeploy.train import accuracy, seed_everything, train

needs_fashion = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist not installed (tools/install-system-deps.sh installs it)",
)


def fashion_images(n_per_class: int, classes: tuple[int, ...], offset: int = 0) -> dict[int, np.ndarray]:
    """Real Fashion-MNIST test images (uint8 28x28), n_per_class for each class in `classes`."""
    images = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    return {c: images[labels == c][offset : offset + n_per_class] for c in classes}


def write_image_folder(root: Path, per_class: dict[str, np.ndarray], rgb: bool = False) -> None:
    from PIL import Image

    for name, images in per_class.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(images):
            image = Image.fromarray(pixels)
            (image.convert("RGB") if rgb else image).save(root / name / f"{i:03d}.png")


@needs_fashion
def test_fashion_mnist_builtin_is_the_60k_10k_idx_data() -> None:
    splits = load_data("fashion-mnist", batch_size=64)
    assert len(splits.train) == 60000 and len(splits.val) == 10000
    assert splits.input_shape == (1, 28, 28) and splits.num_classes == 10 and splits.labelled
    x, y = next(iter(splits.train_loader(seed=0)))
    assert (
        x.shape == (64, 1, 28, 28) and x.dtype == torch.float32 and 0 <= float(x.min()) < float(x.max()) <= 1
    )
    assert y.dtype == torch.int64 and set(np.unique(splits.val.labels())) == set(range(10))
    assert splits.classes is not None and splits.classes[9] == "ankle-boot"


def test_mnist_builtin_matches_the_arrays_the_recipes_were_tuned_on() -> None:
    from edgedeploy.data.mnist import load_mnist

    train_split, test_split = load_mnist()
    splits = load_data("mnist", train_samples=500, seed=3)
    expected = train_split.subset(500, 3)
    assert isinstance(splits.train, ArrayDataset)
    np.testing.assert_array_equal(splits.train.x, expected.as_float())
    np.testing.assert_array_equal(splits.train.labels(), expected.labels)
    assert len(splits.val) == len(test_split.labels)


def test_digits_builtin_splits_by_val_fraction_and_normalises() -> None:
    splits = load_data("digits", val_fraction=0.25, mean=[0.5], std=[0.25])
    assert len(splits.train) + len(splits.val) == 1797 and len(splits.val) == round(1797 * 0.25)
    assert splits.input_shape == (1, 8, 8)
    x = splits.train.x  # type: ignore[attr-defined]
    assert float(x.min()) == pytest.approx(-2.0) and float(x.max()) == pytest.approx(2.0)
    assert splits.describe()["normalisation"] == {"mean": [0.5], "std": [0.25]}


def test_training_through_a_dataset_equals_training_on_its_arrays() -> None:
    """The array fast path keeps the earlier results: same seed, same weights either way."""
    splits = load_data("digits", train_samples=300)
    x, y = splits.train.x, splits.train.labels()  # type: ignore[attr-defined]
    models = []
    for inputs in ((x, y), (splits.train,)):
        seed_everything(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        train(model, *inputs, epochs=2, batch_size=32)
        models.append(model)
    assert torch.equal(models[0][1].weight, models[1][1].weight)


def test_npz_labelled_unlabelled_and_uint8(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (40, 3, 5, 7), dtype=np.uint8),
        y_train=rng.integers(0, 4, 40),
        x_val=rng.integers(0, 256, (10, 3, 5, 7), dtype=np.uint8),
        y_val=np.arange(10) % 4,
    )
    splits = load_data(str(path), batch_size=8)
    assert splits.input_shape == (3, 5, 7) and splits.num_classes == 4 and splits.labelled
    assert float(splits.train.x.max()) <= 1.0  # type: ignore[attr-defined]
    np.savez(tmp_path / "unlabelled.npz", x_train=rng.random((20, 6)), x_val=rng.random((5, 6)))
    unlabelled = load_data(str(tmp_path / "unlabelled.npz"))
    assert not unlabelled.labelled and unlabelled.input_shape == (6,)
    np.savez(
        tmp_path / "half.npz", x_train=rng.random((20, 6)), x_val=rng.random((5, 6)), y_train=np.zeros(20)
    )
    with pytest.raises(UsageError, match="give both y_train and y_val"):
        load_data(str(tmp_path / "half.npz"))
    np.savez(tmp_path / "nox.npz", x_train=rng.random((20, 6)))
    with pytest.raises(UsageError, match="missing x_val"):
        load_data(str(tmp_path / "nox.npz"))


@needs_fashion
def test_image_folder_train_val_layout_streams_resized_normalised_batches(tmp_path: Path) -> None:
    names = {0: "tshirt", 1: "trouser", 7: "sneaker"}
    train_imgs = fashion_images(30, tuple(names))
    val_imgs = fashion_images(10, tuple(names), offset=30)
    write_image_folder(tmp_path / "train", {names[c]: imgs for c, imgs in train_imgs.items()})
    write_image_folder(tmp_path / "val", {names[c]: imgs for c, imgs in val_imgs.items()})
    splits = load_data(str(tmp_path), batch_size=16, workers=1, input_size=(32, 32), mean=[0.5], std=[0.5])
    assert isinstance(splits.train, ImageFolderDataset)
    assert splits.classes == ["sneaker", "trouser", "tshirt"] and splits.num_classes == 3
    assert splits.input_shape == (1, 32, 32) and len(splits.train) == 90 and len(splits.val) == 30
    x, y = next(iter(splits.val_loader()))
    assert x.shape == (16, 1, 32, 32) and float(x.min()) >= -1 and float(x.max()) <= 1 and float(x.min()) < 0
    assert set(y.tolist()) <= {0, 1, 2}
    # Real image content: a linear classifier learns the three classes from the decoded pixels.
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 3))
    train(model, splits.train_loader(seed=0), epochs=5, lr=1e-2)
    assert accuracy(model, splits.val_loader()) > 0.8


@needs_fashion
def test_one_folder_split_by_val_fraction_rgb_and_unlabelled(tmp_path: Path) -> None:
    imgs = fashion_images(20, (3, 5))
    write_image_folder(tmp_path / "classes", {"dress": imgs[3], "sandal": imgs[5]}, rgb=True)
    splits = load_data(str(tmp_path / "classes"), val_fraction=0.25)
    assert splits.input_shape == (3, 28, 28) and len(splits.val) == 10 and len(splits.train) == 30
    gray = load_data(str(tmp_path / "classes"), channels=1)
    assert gray.input_shape == (1, 28, 28)
    # Images without class folders: unlabelled, labels -1.
    loose = tmp_path / "loose"
    loose.mkdir()
    for path in (tmp_path / "classes" / "dress").iterdir():
        path.rename(loose / path.name)
    unlabelled = load_data(str(loose))
    assert not unlabelled.labelled and unlabelled.num_classes is None
    _, y = next(iter(unlabelled.train_loader()))
    assert set(y.tolist()) == {-1}


@needs_fashion
def test_image_folder_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        load_data(str(tmp_path / "empty"))
    imgs = fashion_images(4, (0, 1, 2))
    write_image_folder(tmp_path / "mismatch" / "train", {"a": imgs[0], "b": imgs[1]})
    write_image_folder(tmp_path / "mismatch" / "val", {"a": imgs[0], "c": imgs[2]})
    with pytest.raises(
        UsageError, match=r"train and val classes differ \(only in train: b; only in val: c\)"
    ):
        load_data(str(tmp_path / "mismatch"))
    write_image_folder(tmp_path / "broken", {"a": imgs[0], "b": imgs[1]})
    (tmp_path / "broken" / "b" / "zz-broken.png").write_bytes(b"not a png at all")
    for workers in (0, 1):
        splits = load_data(str(tmp_path / "broken"), workers=workers, val_fraction=0.1)
        with pytest.raises(UsageError) as info:
            for dataset in (splits.train, splits.val):
                model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
                train(
                    model, splits.train_loader() if dataset is splits.train else splits.val_loader(), epochs=1
                )
        message = str(info.value)
        assert "\n" not in message and "zz-broken.png: cannot read it" in message


def test_factory_returns_datasets_or_loaders(tmp_path: Path) -> None:
    (tmp_path / "mydata.py").write_text(
        "import torch\n"
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "def make():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.rand(50, 4, generator=g)\n"
        "    y = (x.sum(1) > 2).long()\n"
        "    return TensorDataset(x[:40], y[:40]), DataLoader(TensorDataset(x[40:], y[40:]), batch_size=5)\n"
        "def bad():\n"
        "    return 3\n"
    )
    splits = load_data(f"{tmp_path / 'mydata.py'}:make")
    assert splits.input_shape == (4,) and splits.labelled and "val" in splits.loaders
    assert len(splits.train) == 40 and len(splits.val) == 10
    with pytest.raises(UsageError, match="must return \\(train, val\\)"):
        load_data(f"{tmp_path / 'mydata.py'}:bad")
    with pytest.raises(UsageError, match="no such file or folder"):
        load_data(str(tmp_path / "missing"))
