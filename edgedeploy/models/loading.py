"""Torch models from what users name: `module:factory` paths, torch files, state_dicts + an --arch.

The one loader behind `compress`, `convert`, `inspect` and `tune`, so all accept the same names and
files and say the same things when a name or a file does not fit.
"""

from __future__ import annotations

import importlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.errors import UsageError

FACTORY_EXAMPLE = (
    "write a factory file, e.g. net_factory.py with `from mynet import Net` and "
    "`def build(): return Net(num_classes=10)`, and name it as net_factory.py:build"
)
"""How to build a model whose class needs constructor arguments (said in the errors that need it)."""


def build_from_factory(spec: str) -> Any:
    """`pkg.module:factory` or `path/to/file.py:factory` -> the nn.Module the factory returns (or the
    module object it names)."""
    from torch import nn

    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            module = import_file(module_name, spec)
        else:
            module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise UsageError(f"{spec}: cannot import {attr!r} from {module_name!r}") from err
    try:
        built = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
    except TypeError as err:
        # A model class named directly whose constructor wants arguments (Net(num_classes=...)).
        raise UsageError(
            f"{spec}: calling {attr}() failed ({str(err).splitlines()[0]}); if it needs constructor "
            f"arguments, {FACTORY_EXAMPLE}"
        ) from err
    if not isinstance(built, nn.Module):
        raise UsageError(f"{spec}: the factory returned a {type(built).__name__}, not a torch nn.Module")
    return built


def build_from_state_dict(
    label: str, state: dict[str, Any], arch: str | None, arch_option: str = "--arch"
) -> Any:
    """The architecture `arch` (a zoo name or module:factory) with `state` loaded into it."""
    from edgedeploy.models import zoo

    known = ", ".join(sorted(zoo.INPUT_SHAPES))
    if not arch:
        raise UsageError(
            f"{label}: is a state_dict; name its architecture with {arch_option} ({known} or "
            f"module:factory; for a class that needs constructor arguments, {FACTORY_EXAMPLE})"
        )
    if ":" in arch:
        model = build_from_factory(arch)
    elif arch in zoo.INPUT_SHAPES:
        # Weights come from the file: never load the packaged pretrained ones first.
        model = (
            zoo.efficientnet_lite0(pretrained=False) if arch == "efficientnet_lite0" else getattr(zoo, arch)()
        )
    else:
        raise UsageError(f"{label}: unknown {arch_option} {arch!r} (known: {known} or module:factory)")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise UsageError(
            f"{label}: weights do not fit {arch_option} {arch} ({str(err).splitlines()[0]})"
        ) from err
    return model


def import_file(path: str, spec: str) -> Any:
    """The module defined by a .py file (a factory file beside the user's model)."""
    import importlib.util
    import sys
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{spec}: no such file {file}")
    module_spec = importlib.util.spec_from_file_location(file.stem, file)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"{spec}: cannot import {file}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[file.stem] = module
    # The file's own folder first, so `from mynet import Net` finds the user's code beside it.
    sys.path.insert(0, str(file.resolve().parent))
    module_spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class TorchFile:
    """What a torch file holds: `kind` is "exported" (a .pt2 torch.export program), "torchscript",
    "module" (a pickled nn.Module) or "state_dict"; `arch` is a checkpoint's own architecture name."""

    kind: str
    value: Any
    arch: str | None = None


def load_torch_file(path: Path, label: str, *, pickled_modules: bool = False) -> TorchFile:
    """Read any torch file, named `label` in errors. A whole pickled nn.Module is read only with
    `pickled_modules` (unpickling runs code from the file; compress needs the module's own classes,
    convert and inspect read weights only). A checkpoint dict {"state_dict" or "model": ...,
    "arch": ...} gives its state_dict and arch."""
    import torch
    from torch import nn

    if not zipfile.is_zipfile(path):
        raise UsageError(f"{label}: not a torch model file (truncated or corrupt: not a zip archive)")
    names = zipfile.ZipFile(path).namelist()
    try:
        if path.suffix == ".pt2" or any(n.endswith("serialized_exported_program.json") for n in names):
            return TorchFile("exported", torch.export.load(str(path)))
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return TorchFile("torchscript", torch.jit.load(str(path), map_location="cpu"))
        loaded = torch.load(str(path), map_location="cpu", weights_only=not pickled_modules)
    except Exception as err:  # noqa: BLE001 - torch raises many types for foreign or damaged files
        lines = str(err).strip().splitlines()
        why = lines[0] if lines else type(err).__name__
        raise UsageError(f"{label}: not a torch model file (cannot load it: {why})") from err
    if isinstance(loaded, nn.Module):
        return TorchFile("module", loaded)
    arch = None
    if isinstance(loaded, dict):
        inner = loaded.get("state_dict", loaded.get("model"))
        if isinstance(inner, dict):
            arch = loaded.get("arch") if isinstance(loaded.get("arch"), str) else None
            loaded = inner
    if isinstance(loaded, dict) and loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return TorchFile("state_dict", loaded, arch)
    raise UsageError(
        f"{label}: holds a {type(loaded).__name__}, not a torch module, state_dict, TorchScript or "
        ".pt2 program"
    )


def load_torch_model(spec: str, arch: str | None, what: str = "model", arch_option: str = "--arch") -> Any:
    """An eager nn.Module (whose Linear/Conv layers compress and tune change) from `module:factory`,
    a pickled module file, or a state_dict file + its architecture (`arch`, given by the user as
    `arch_option`); errors name the file as `what`."""
    path = Path(spec)
    label = f"{what} {spec}"
    if not path.exists():
        if ":" in spec:
            return build_from_factory(spec)
        raise UsageError(f"{label}: no such file (give a file or module:factory)")
    if path.is_dir():
        raise UsageError(f"{label}: is a directory, not a torch model file")
    loaded = load_torch_file(path, label, pickled_modules=True)
    if loaded.kind in ("exported", "torchscript"):
        what_it_is = "a .pt2 ExportedProgram" if loaded.kind == "exported" else "TorchScript"
        raise UsageError(
            f"{label}: {what_it_is} has no Linear/Conv modules left to compress; "
            f"give module:factory or a state_dict file with {arch_option}"
        )
    if loaded.kind == "module":
        return loaded.value
    return build_from_state_dict(label, loaded.value, arch or loaded.arch, arch_option)
