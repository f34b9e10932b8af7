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
from edgedeploy.shapes import Shape, ShapeSpec

TORCH_SUFFIXES = {".pt", ".pth", ".ts", ".pt2", ".bin", ".ckpt"}
KERAS_SUFFIXES = {".keras", ".h5", ".hdf5"}


# Shapes the user gave (`--shape [NAME=]1,3,224,224`, repeatable), as edgedeploy.shapes parses them.


@dataclass
class SourceModel:
    """A loaded model that predicts its first output from float32 batches (one array per input, in
    the model's input order), plus what converters need."""

    name: str  # what the user named (path or module:factory)
    kind: str  # torch | onnx | keras | tflite
    input_shapes: list[Shape] | None  # one per input, with the batch axis; None when unknown
    predict: Callable[[list[np.ndarray]], np.ndarray]
    input_names: list[str] = field(default_factory=lambda: ["input"])
    layout: str = "NCHW"
    module: Any = None  # torch.nn.Module or keras model
    file: Path | None = None  # the file itself, for onnx/tflite sources
    notes: list[str] = field(default_factory=list)
    integer_inputs: list[str] = field(default_factory=list)  # inputs whose values cannot be invented
    output_name: str = ""  # the first output's name (verification infers the task from it)
    # True: every input has its batch on axis 0 (data arrays are (N, *shape[1:]) per input). False
    # (scalar inputs, a state whose batch is axis 1, ...): each sample is one whole feed, data arrays
    # are (N, *shape) per input and the model runs one sample at a time.
    batched: bool = True

    @property
    def input_shape(self) -> Shape | None:
        """The first input's shape (the only one for most models)."""
        return self.input_shapes[0] if self.input_shapes else None

    @property
    def stem(self) -> str:
        if self.file is not None:
            return self.file.stem
        if Path(self.name).exists():
            return Path(self.name).stem
        return self.name.rpartition(":")[2] or "model"  # module:factory -> factory


def from_torch_module(
    module: Any, name: str, input_shapes: list[Shape] | Shape | None, input_names: list[str] | None = None
) -> SourceModel:
    """`input_shapes`: one shape per forward() argument (a bare tuple for a one-input model)."""
    import torch

    if isinstance(input_shapes, tuple):
        input_shapes = [input_shapes]
    # Modules unflattened from torch.export programs refuse eval() (they are in inference mode
    # already) and guard their traced batch size: feed them one example-sized batch at a time.
    exported = isinstance(module, torch.fx.GraphModule)
    if not exported:
        module = module.eval()
    step = input_shapes[0][0] if exported and input_shapes else None

    def run(xs: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            out = module(*(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in xs))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.detach().float().numpy()

    def predict(xs: list[np.ndarray]) -> np.ndarray:
        from edgedeploy.convert.runtimes import predict_in_batches

        return predict_in_batches(run, list(xs), step)

    names = input_names or _forward_argument_names(module)
    return SourceModel(
        name=name, kind="torch", input_shapes=input_shapes, predict=predict, input_names=names, module=module
    )


def _forward_argument_names(module: Any) -> list[str]:
    """forward()'s required positional arguments; a single input keeps the exporter-wide name "input"."""
    import inspect

    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return ["input"]
    names = [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return names if len(names) > 1 else ["input"]


def resolve_shapes(
    origin: str, names: list[str], declared: list[list[int | None]] | None, given: ShapeSpec | None
) -> list[Shape] | None:
    """Each input's shape: the one the user gave (by name, or in order), else the declared one with a
    dynamic batch set to 1. Other dynamic dimensions must be given: the error names them."""
    given = given or []
    by_name = {name: dims for name, dims in given if name}
    unnamed = [dims for name, dims in given if not name]
    unknown = sorted(set(by_name) - set(names))
    if unknown or len(unnamed) > len(names) or (unnamed and by_name):
        raise UsageError(
            f"{origin}: --shape {', '.join(unknown) or 'values'} do not match the model's inputs "
            f"({', '.join(names)}); give NAME=dims per input, or one shape per input in order"
        )
    if declared is None and not given:
        return None
    shapes: list[Shape] = []
    missing: list[str] = []  # NAME=dims with ? where the user must choose
    for index, name in enumerate(names):
        dims = by_name.get(name) or (unnamed[index] if index < len(unnamed) else None)
        want = declared[index] if declared else None
        if dims is not None:
            if want is not None and (
                len(want) != len(dims)
                or any(w is not None and w != d for w, d in zip(want, dims, strict=False))
            ):
                raise UsageError(
                    f"{origin}: --shape {name}={_dims(dims)} does not fit its shape {_dims(want)}"
                )
            shapes.append(tuple(dims))
            continue
        if want is None:
            raise UsageError(f"{origin}: the shape of input {name!r} is unknown; pass --shape {name}=...")
        if any(d is None for d in want[1:]):
            missing.append(
                f"{name}="
                + ",".join("1" if i == 0 and d is None else str(d or "?") for i, d in enumerate(want))
            )
        shapes.append(tuple(d or 1 for d in want))
    if missing:
        raise UsageError(
            f"{origin}: inputs with dynamic dimensions (?) need a shape: "
            + " ".join(f"--shape {m}" for m in missing)
        )
    return shapes


def _dims(dims: Any) -> str:
    return ",".join("?" if d is None else str(d) for d in dims)


def load_source(
    spec: str, arch: str | None = None, input_shape: Shape | ShapeSpec | None = None
) -> SourceModel:
    """Load any supported source model. `input_shape` (with batch; a ShapeSpec for several inputs)
    overrides what the model says."""
    input_shape = [("", input_shape)] if isinstance(input_shape, tuple) else input_shape
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


def _load_factory(spec: str, given: ShapeSpec | None) -> SourceModel:
    from edgedeploy.extras import require_compress
    from edgedeploy.models.loading import build_from_factory

    require_compress(f"{spec}: a torch model")

    return _torch_source(build_from_factory(spec), spec, _zoo_shape(spec.partition(":")[2]), given)


def _torch_source(model: Any, name: str, default: Shape | None, given: ShapeSpec | None) -> SourceModel:
    """A built torch module; `default` (a zoo model's shape) applies when the user gave none."""
    names = _forward_argument_names(model)
    declared = [list(default)] if default and not given and len(names) == 1 else None
    return from_torch_module(model, name, resolve_shapes(name, names, declared, given), names)


def _load_torch_file(path: Path, arch: str | None, input_shape: ShapeSpec | None) -> SourceModel:
    from edgedeploy.extras import require_compress

    require_compress(f"{path}: a torch model")
    from edgedeploy.models.loading import load_torch_file

    loaded = load_torch_file(path, str(path))
    if loaded.kind == "torchscript":
        return _torchscript_model(path, loaded.value, input_shape)
    if loaded.kind == "state_dict":
        return _state_dict_model(path, loaded.value, arch or loaded.arch, input_shape)
    program = loaded.value
    try:
        example = program.example_inputs[0] if program.example_inputs else ()
        names = list(program.graph_signature.user_inputs)
        names = names if len(names) > 1 else ["input"]
        declared = [list(t.shape) for t in example] if example and not input_shape else None
        shapes = resolve_shapes(str(path), names, declared, input_shape)
        return from_torch_module(program.module(), str(path), shapes, names)
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - torch raises many types for programs it cannot rebuild
        raise UsageError(f"{path}: cannot load the torch file ({first_line(err)})") from err


def _saved_model(path: Path, tf: Any, input_shape: Shape | None) -> SourceModel:
    """A SavedModel directory runs through its serving signature (Keras 3 cannot load it as a model);
    the converter reads the directory itself, so `module` is the path."""
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (input_name, spec), *_ = serve.structured_input_signature[1].items()
    shape = input_shape or tuple(d or 1 for d in spec.shape)

    def predict(xs: list[np.ndarray]) -> np.ndarray:
        outputs = serve(**{input_name: tf.constant(xs[0], dtype=tf.float32)})
        return np.asarray(next(iter(outputs.values())), dtype=np.float32)

    return SourceModel(
        name=str(path),
        kind="keras",
        input_shapes=[shape],
        predict=predict,
        module=path,
        file=path,
        layout="NHWC",
    )


def _torchscript_model(path: Path, scripted: Any, input_shape: ShapeSpec | None) -> SourceModel:
    """Both exporters need torch.export programs: convert the TorchScript graph to one, but verify
    against the TorchScript module itself, so that this extra step is checked too."""
    import torch
    from torch._export.converter import TS2EPConverter

    if not input_shape:
        raise UsageError(f"{path}: TorchScript keeps no input shape; pass --shape, e.g. 1,1,28,28")
    names = [argument.name for argument in scripted.forward.schema.arguments[1:]]
    names = names if len(names) > 1 else ["input"]
    shapes = resolve_shapes(str(path), names, None, input_shape)
    assert shapes is not None
    try:
        program = TS2EPConverter(scripted, tuple(torch.zeros(shape) for shape in shapes)).convert()
    except Exception as err:  # noqa: BLE001 - the converter raises many internal types
        raise UsageError(
            f"{path}: cannot convert TorchScript to a torch.export program ({first_line(err)})"
        ) from err
    source = from_torch_module(program.module(), str(path), shapes, names)
    source.predict = from_torch_module(scripted, str(path), shapes, names).predict
    return source


def _state_dict_model(
    path: Path, state: dict[str, Any], arch: str | None, input_shape: ShapeSpec | None
) -> SourceModel:
    from edgedeploy.models.loading import build_from_state_dict

    model = build_from_state_dict(str(path), state, arch)
    return _torch_source(model, str(path), _zoo_shape(arch or ""), input_shape)


def _load_onnx(path: Path, input_shape: ShapeSpec | None) -> SourceModel:
    import onnx

    from edgedeploy.convert.runtimes import OnnxRunner

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as err:  # noqa: BLE001 - protobuf DecodeError, ValidationError, ...
        raise UsageError(f"{path}: truncated or corrupt ONNX file ({first_line(err)})") from err
    runner = OnnxRunner(path)
    shapes = resolve_shapes(str(path), runner.input_names, runner.input_shapes, input_shape)
    assert shapes is not None
    initializers = {t.name for t in model.graph.initializer}
    declared = [
        [
            d.dim_param if d.HasField("dim_param") else (d.dim_value or None)
            for d in i.type.tensor_type.shape.dim
        ]
        for i in model.graph.input
        if i.name not in initializers
    ]
    batched = shares_batch_axis_0(declared)
    source = SourceModel(
        name=str(path),
        kind="onnx",
        input_shapes=shapes,
        predict=runner.predict if batched else runner.predict_each,
        input_names=runner.input_names,
        file=path,
        layout=guess_layout(shapes[0]) if batched else "N/A",
        batched=batched,
        integer_inputs=[
            name
            for name, dtype in zip(runner.input_names, runner.input_dtypes, strict=True)
            if np.issubdtype(dtype, np.integer) or dtype is np.bool_
        ],
        output_name=runner.session.get_outputs()[0].name,
    )
    if not batched:
        source.notes.append(
            "inputs share no batch axis 0 (a scalar, or a batch on another axis): each verification "
            "sample is one whole feed, run one at a time"
        )
    return source


def shares_batch_axis_0(dims: list[list[int | str | None]]) -> bool:
    """Whether all inputs have their batch on axis 0 (as declared: ints, symbol names, None unknown).

    Not so for a 0-d input (a sample rate), for a symbol that leads one input but sits on another axis
    elsewhere (Silero VAD: input [batch, n], state [2, batch, 128]), or for fixed leading dimensions
    that differ (input [1, 576], state [2, 1, 128])."""
    if any(len(d) == 0 for d in dims):
        return False
    leading = {d[0] for d in dims if isinstance(d[0], str) and d[0]}
    if any(isinstance(dim, str) and dim in leading for d in dims for dim in d[1:]):
        return False
    return len({d[0] if isinstance(d[0], int) else "dynamic" for d in dims}) == 1


def _load_tflite(path: Path, input_shape: ShapeSpec | None) -> SourceModel:
    from edgedeploy.convert.runtimes import TfliteRunner

    if path.stat().st_size < 8 or path.read_bytes()[4:8] != b"TFL3":
        raise UsageError(f"{path}: truncated or corrupt TFLite file (no TFL3 identifier)")
    runner = TfliteRunner(path)
    names = [str(detail["name"]) for detail in runner.inputs]
    declared = [[int(d) for d in detail["shape"]] for detail in runner.inputs]
    shapes = resolve_shapes(str(path), names, declared, input_shape)
    assert shapes is not None
    return SourceModel(
        name=str(path),
        kind="tflite",
        input_shapes=shapes,
        predict=runner.predict,
        input_names=names,
        file=path,
        layout=guess_layout(shapes[0]),
        output_name=str(runner.output["name"]),
    )


def _load_keras(path: Path, given: ShapeSpec | None) -> SourceModel:
    try:
        import tensorflow as tf
    except ImportError as err:
        raise UsageError(
            f"{path}: Keras/SavedModel sources need TensorFlow, which is not installed: "
            'pip install "edgedeploy[tf]"'
        ) from err
    input_shape = given[0][1] if given else None
    try:
        if path.is_dir():
            return _saved_model(path, tf, input_shape)
        model = tf.keras.models.load_model(str(path), compile=False)
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - keras raises many types for unreadable files
        raise UsageError(f"{path}: cannot load the Keras model ({first_line(err)})") from err
    shape = input_shape or tuple(d or 1 for d in model.inputs[0].shape)

    def predict(xs: list[np.ndarray]) -> np.ndarray:
        return np.asarray(model(xs[0], training=False), dtype=np.float32)

    return SourceModel(
        name=str(path),
        kind="keras",
        input_shapes=[shape],
        predict=predict,
        module=model,
        file=path,
        layout="NHWC",
    )
