"""Build torch modules from what users name: `module:factory` paths and state_dicts with an --arch.

Shared by `compress` and `convert`, so both accept the same names and say the same things when a
name or a file does not fit.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgedeploy.errors import UsageError


def build_from_factory(spec: str) -> Any:
    """`pkg.module:factory` -> the nn.Module the factory returns (or the module object it names)."""
    from torch import nn

    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise UsageError(f"{spec}: cannot import {attr!r} from {module_name!r}") from err
    built = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
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
            f"{label}: is a state_dict; name its architecture with {arch_option} ({known} or module:factory)"
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
