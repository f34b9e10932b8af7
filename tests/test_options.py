"""Each verb's options dataclass: one object however a caller spells it, the CLI's flags defaulting
to its fields (the one place the defaults are stated)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from edgedeploy import api, cli
from edgedeploy.options import CompressOptions, FleetProfileOptions, ProfileOptions, RunOptions


def test_keywords_and_an_options_object_are_the_same_settings() -> None:
    typed = ProfileOptions(runs=5, inputs=[Path("a.npy")], profiles_dir=Path("store"))
    spelt = api._options(ProfileOptions, None, {"runs": 5, "inputs": "a.npy", "profiles_dir": "store"})
    assert spelt == typed and spelt.inputs == (Path("a.npy"),)
    over = api._options(ProfileOptions, typed, {"threads": 2})
    assert (over.runs, over.threads) == (5, 2) and typed.threads is None
    with pytest.raises(TypeError, match="rnus"):
        api._options(ProfileOptions, None, {"rnus": 5})
    with pytest.raises(AttributeError):
        typed.runs = 6  # type: ignore[misc]


def test_counted_profiles_have_no_time_floors() -> None:
    counted = ProfileOptions.counted(runs=7)
    assert (counted.runs, counted.min_seconds, counted.warmup_seconds) == (7, 0.0, 0.0)
    assert ProfileOptions().min_seconds == 1.0 and ProfileOptions().warmup_seconds == 0.5


@pytest.mark.parametrize(
    ("command", "options", "renamed"),
    [
        (cli.profile, ProfileOptions, {"raw": "raw_samples"}),
        (cli.run, RunOptions, {"out": "out_dir", "shape": "shapes"}),
        (cli.fleet_profile, FleetProfileOptions, {"root": "profiles_dir"}),
        (cli.compress, CompressOptions, {"dataset": "data"}),
    ],
)
def test_cli_flags_default_to_the_options_defaults(
    command: Callable[..., None], options: type[Any], renamed: dict[str, str]
) -> None:
    defaults = options()
    checked = 0
    for name, param in inspect.signature(command).parameters.items():
        field = renamed.get(name, name)
        if not hasattr(defaults, field) or param.default is inspect.Parameter.empty:
            continue
        default = (
            param.default.default if isinstance(param.default, typer.models.OptionInfo) else param.default
        )
        if field in ("inputs", "shapes") and default is None:
            continue  # a repeatable flag's None is the options' empty tuple/dict
        if field == "latency_target":
            assert default == str(defaults.latency_target)
        else:
            assert default == getattr(defaults, field), (command.__name__, name)
        checked += 1
    assert checked >= 5
