"""Build torch modules from what users name: `module:factory` paths and state_dicts with an --arch.

Shared by `compress` and `convert`, so both accept the same names and say the same things when a
name or a file does not fit.
"""

from __future__ import annotations

import importlib
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
