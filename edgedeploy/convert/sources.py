"""Load a source model from what the user names: module:factory, TorchScript, .pt2, state_dict
(+ --arch), .onnx, .keras/.h5/SavedModel, .tflite. Every failure is one line naming the file."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.convert.files import first_line, guess_layout
from edgedeploy.errors import UsageError

TORCH_SUFFIXES = {".pt", ".pth", ".ts", ".pt2", ".bin", ".ckpt"}
KERAS_SUFFIXES = {".keras", ".h5", ".hdf5"}


@dataclass
class SourceModel:
    """A loaded model that can predict on NCHW/NHWC float32 batches, plus what converters need."""

    name: str  # what the user named (path or module:factory)
    kind: str  # torch | onnx | keras | tflite
    input_shape: tuple[int, ...] | None  # with the batch axis; None when unknown
    predict: Callable[[np.ndarray], np.ndarray]
    layout: str = "NCHW"
    module: Any = None  # torch.nn.Module or keras model
    file: Path | None = None  # the file itself, for onnx/tflite sources
    notes: list[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        if self.file is not None:
            return self.file.stem
        if Path(self.name).exists():
            return Path(self.name).stem
        return self.name.rpartition(":")[2] or "model"  # module:factory -> factory


def from_torch_module(module: Any, name: str, input_shape: tuple[int, ...] | None) -> SourceModel:
    import torch

    # Modules unflattened from torch.export programs refuse eval() (they are in inference mode
    # already) and guard their traced batch size: feed them one example-sized batch at a time.
    exported = isinstance(module, torch.fx.GraphModule)
    if not exported:
        module = module.eval()
    step = input_shape[0] if exported and input_shape else None

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.detach().float().numpy()

    def predict(x: np.ndarray) -> np.ndarray:
        from edgedeploy.convert.runtimes import predict_in_batches

        return predict_in_batches(run, x, step)

    return SourceModel(name=name, kind="torch", input_shape=input_shape, predict=predict, module=module)


def load_source(
    spec: str, arch: str | None = None, input_shape: tuple[int, ...] | None = None
) -> SourceModel:
    """Load any supported source model. `input_shape` (with batch) overrides what the model says."""
    path = Path(spec)
    if not path.exists() and ":" in spec and not spec.endswith((".onnx", ".tflite")):
        return _load_factory(spec, input_shape)
    if not path.exists():
        raise UsageError(f"{spec}: no such file (and not a module:factory path)")
    suffix = path.suffix.lower()
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return _load_keras(path, input_shape)
        raise UsageError(f"{path}: a directory but not a SavedModel (no saved_model.pb)")
    if suffix == ".onnx":
        return _load_onnx(path, input_shape)
    if suffix == ".tflite":
        return _load_tflite(path, input_shape)
    if suffix in KERAS_SUFFIXES:
        return _load_keras(path, input_shape)
    if suffix in TORCH_SUFFIXES or zipfile.is_zipfile(path):
        return _load_torch_file(path, arch, input_shape)
    raise UsageError(
        f"{path}: unknown model format (expected .onnx, .tflite, .keras/.h5, a SavedModel directory, "
        "a torch file .pt/.pth/.pt2 or module:factory)"
    )


def _zoo_shape(name: str) -> tuple[int, ...] | None:
    from edgedeploy.models.zoo import INPUT_SHAPES

    return INPUT_SHAPES.get(name)


def _load_factory(spec: str, input_shape: tuple[int, ...] | None) -> SourceModel:
    from edgedeploy.models.loading import build_from_factory

    model = build_from_factory(spec)
    return from_torch_module(model, spec, input_shape or _zoo_shape(spec.partition(":")[2]))


def _load_torch_file(path: Path, arch: str | None, input_shape: tuple[int, ...] | None) -> SourceModel:
    import torch

    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path}: truncated or corrupt torch file (not a zip archive)")
    names = zipfile.ZipFile(path).namelist()
    try:
        if path.suffix == ".pt2" or any(n.endswith("serialized_exported_program.json") for n in names):
            program = torch.export.load(str(path))
            example = program.example_inputs[0] if program.example_inputs else ()
            shape = input_shape or (tuple(example[0].shape) if example else None)
            return from_torch_module(program.module(), str(path), shape)
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return _torchscript_model(path, torch.jit.load(str(path), map_location="cpu"), input_shape)
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - torch raises many types for unreadable archives
        raise UsageError(f"{path}: cannot load the torch file ({first_line(err)})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        arch = arch or state.get("arch")
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(
            f"{path}: holds a {type(state).__name__}, not a state_dict, TorchScript or .pt2 program"
        )
    return _state_dict_model(path, state, arch, input_shape)


def _saved_model(path: Path, tf: Any, input_shape: tuple[int, ...] | None) -> SourceModel:
    """A SavedModel directory runs through its serving signature (Keras 3 cannot load it as a model);
    the converter reads the directory itself, so `module` is the path."""
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (input_name, spec), *_ = serve.structured_input_signature[1].items()
    shape = input_shape or tuple(d or 1 for d in spec.shape)

    def predict(x: np.ndarray) -> np.ndarray:
        outputs = serve(**{input_name: tf.constant(x, dtype=tf.float32)})
        return np.asarray(next(iter(outputs.values())), dtype=np.float32)

    return SourceModel(
        name=str(path),
        kind="keras",
        input_shape=shape,
        predict=predict,
        module=path,
        file=path,
        layout="NHWC",
    )


def _torchscript_model(path: Path, scripted: Any, input_shape: tuple[int, ...] | None) -> SourceModel:
    """Both exporters need torch.export programs: convert the TorchScript graph to one, but verify
    against the TorchScript module itself, so that this extra step is checked too."""
    import torch
    from torch._export.converter import TS2EPConverter

    if input_shape is None:
        raise UsageError(f"{path}: TorchScript keeps no input shape; pass --input-shape, e.g. 1,1,28,28")
    try:
        program = TS2EPConverter(scripted, (torch.zeros(input_shape),)).convert()
    except Exception as err:  # noqa: BLE001 - the converter raises many internal types
        raise UsageError(
            f"{path}: cannot convert TorchScript to a torch.export program ({first_line(err)})"
        ) from err
    source = from_torch_module(program.module(), str(path), input_shape)
    source.predict = from_torch_module(scripted, str(path), input_shape).predict
    return source


def _state_dict_model(
    path: Path, state: dict[str, Any], arch: str | None, input_shape: tuple[int, ...] | None
) -> SourceModel:
    from edgedeploy.models.loading import build_from_state_dict

    model = build_from_state_dict(str(path), state, arch)
    return from_torch_module(model, str(path), input_shape or _zoo_shape(arch or ""))


def _load_onnx(path: Path, input_shape: tuple[int, ...] | None) -> SourceModel:
    import onnx

    from edgedeploy.convert.runtimes import OnnxRunner

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as err:  # noqa: BLE001 - protobuf DecodeError, ValidationError, ...
        raise UsageError(f"{path}: truncated or corrupt ONNX file ({first_line(err)})") from err
    runner = OnnxRunner(path)
    shape = input_shape or tuple(d or 1 for d in runner.input_shape)
    return SourceModel(
        name=str(path),
        kind="onnx",
        input_shape=shape,
        predict=runner.predict,
        file=path,
        layout=guess_layout(shape),
    )


def _load_tflite(path: Path, input_shape: tuple[int, ...] | None) -> SourceModel:
    from edgedeploy.convert.runtimes import TfliteRunner

    if path.stat().st_size < 8 or path.read_bytes()[4:8] != b"TFL3":
        raise UsageError(f"{path}: truncated or corrupt TFLite file (no TFL3 identifier)")
    runner = TfliteRunner(path)
    shape = input_shape or tuple(runner.input_shape)
    return SourceModel(
        name=str(path),
        kind="tflite",
        input_shape=shape,
        predict=runner.predict,
        file=path,
        layout=guess_layout(shape),
    )


def _load_keras(path: Path, input_shape: tuple[int, ...] | None) -> SourceModel:
    try:
        import tensorflow as tf
    except ImportError as err:
        raise UsageError(
            f"{path}: Keras/SavedModel sources need TensorFlow, which is not installed: "
            'pip install "edgedeploy[tf]"'
        ) from err
    try:
        if path.is_dir():
            return _saved_model(path, tf, input_shape)
        model = tf.keras.models.load_model(str(path), compile=False)
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - keras raises many types for unreadable files
        raise UsageError(f"{path}: cannot load the Keras model ({first_line(err)})") from err
    shape = input_shape or tuple(d or 1 for d in model.inputs[0].shape)

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model(x, training=False), dtype=np.float32)

    return SourceModel(
        name=str(path),
        kind="keras",
        input_shape=shape,
        predict=predict,
        module=model,
        file=path,
        layout="NHWC",
    )
