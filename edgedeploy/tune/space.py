"""The search space of `edgedeploy tune`: which recipes to train and which exports to measure.

A space has training axes (each point the search picks is trained once, by the compress pipeline)
and cheap axes (export format/precision, runtime, threads) measured on every trained candidate
without retraining. `load_space` checks a YAML file and drops what cannot run here, so that a space with
no valid point fails before any training with one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.errors import UsageError
from edgedeploy.runner.device.runtimes import RUNTIMES_FOR as _RUNNER_RUNTIMES

DEFAULT_SPACE = Path(__file__).resolve().parent / "default_space.yaml"

# export name -> (format, precision, int8_format) as `convert` takes them.
EXPORTS: dict[str, tuple[str, str, str]] = {
    "onnx-fp32": ("onnx", "fp32", "auto"),
    "onnx-fp16": ("onnx", "fp16", "auto"),
    "onnx-int8": ("onnx", "int8", "auto"),
    "onnx-int8-qdq": ("onnx", "int8", "qdq"),
    "onnx-int8-qoperator": ("onnx", "int8", "qoperator"),
    "onnx-int8-dynamic": ("onnx", "int8-dynamic", "auto"),
    "tflite-fp32": ("tflite", "fp32", "auto"),
    "tflite-fp16": ("tflite", "fp16", "auto"),
    "tflite-int8": ("tflite", "int8", "auto"),
}

# Runtimes the device-side runner can use for each file format (its own table, so the two agree);
# `auto` is the runner's choice (the first of these the device has).
RUNTIMES_FOR: dict[str, list[str]] = {ext.lstrip("."): names for ext, names in _RUNNER_RUNTIMES.items()}
AUTO_RUNTIME = "auto"

# axis -> (type, check of one value, what the check says)
TRAINING_AXES: dict[str, tuple[type, Any, str]] = {
    "structured_amount": (float, lambda v: 0.0 <= v < 1.0, "a fraction in [0, 1)"),
    "sparsity": (float, lambda v: 0.0 <= v < 1.0, "a fraction in [0, 1)"),
    "cluster": (int, lambda v: v == 0 or 2 <= v <= 256, "0 (off) or 2..256 clusters"),
    "distill": (bool, lambda v: True, "true or false"),
    "epochs": (float, lambda v: 0.0 < v <= 100.0, "epochs in (0, 100]"),
}
# Value of an axis absent from the space: that technique is off.
SPACE_KEYS = ("training", "exports", "runtimes", "threads")
AXIS_OFF: dict[str, Any] = {
    "structured_amount": 0.0,
    "sparsity": 0.0,
    "cluster": 0,
    "distill": False,
    "epochs": 1.0,
}


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    step: float | None = None


@dataclass
class SearchSpace:
    training: dict[str, list[Any] | Range]
    exports: list[str]
    threads: list[int]
    source: str
    notes: list[str] = field(default_factory=list)
    runtimes: list[str] = field(default_factory=lambda: [AUTO_RUNTIME])

    def runtimes_for(self, export: str) -> list[str]:
        """The space's runtimes that can run this export's files (`auto` can run any)."""
        fmt = EXPORTS[export][0]
        return [r for r in self.runtimes if r == AUTO_RUNTIME or r in RUNTIMES_FOR[fmt]]

    def input_model_point(self) -> dict[str, Any] | None:
        """Training settings with every technique off (the input model as it is), when the space
        holds that point; None when some axis excludes its off value."""
        point: dict[str, Any] = {}
        for axis, values in self.training.items():
            if axis == "epochs":
                continue
            off = AXIS_OFF[axis]
            inside = off in values if isinstance(values, list) else values.low <= off <= values.high
            if not inside:
                return None
            point[axis] = off
        return point

    def startup_points(self, limit: int) -> list[dict[str, Any]]:
        """The guided search's first compressed candidates (after the input model): one per
        structured-pruning amount of the space, smallest first, at most `limit`, each trained with
        the settings of the space most likely to keep its accuracy: distillation on, the largest
        fine-tuning budget, sparsity and clustering off (or their mildest value when the space has no
        off).

        Why: the structured amount is the axis that changes the deployed architecture, so the one
        that sets the latency; the others cost training time (epochs, distillation) or accuracy
        (sparsity, clustering) and do not speed up a dense runtime. A sampler that starts from the
        input model alone sees only unpruned points within the accuracy floor and keeps proposing
        unpruned variants; pruned candidates trained with too little budget fall below the floor and
        teach it nothing (bench/tune.py, docs/tune.md). Starting from each amount at its best
        budget shows it which amounts can come within the floor at all."""
        amounts = self.training.get("structured_amount")
        if limit < 1 or amounts is None:
            return []
        if isinstance(amounts, Range):
            if amounts.step:
                count = int(round((amounts.high - amounts.low) / amounts.step)) + 1
                grid = [amounts.low + i * amounts.step for i in range(count)]
            else:
                grid = [amounts.low + (amounts.high - amounts.low) * i / limit for i in range(limit + 1)]
        else:
            grid = list(amounts)
        chosen = sorted(a for a in set(grid) if a > 0)[:limit]
        best: dict[str, Any] = {}
        for axis, values in self.training.items():
            if axis == "structured_amount":
                continue
            if isinstance(values, Range):
                if axis == "cluster":
                    mildest = 0 if values.low <= 0 else values.high
                else:
                    mildest = values.high if axis == "epochs" else values.low
            elif axis == "distill":
                mildest = True in values
            elif axis == "epochs":
                mildest = max(values)
            elif axis == "cluster":
                # 0 (off), else the most clusters: the smallest loss of precision.
                mildest = 0 if 0 in values else max(values)
            else:
                mildest = min(values)
            best[axis] = mildest
        return [{**best, "structured_amount": amount} for amount in chosen]

    def distinct_recipes(self) -> int | None:
        """How many different recipes the training axes give (None: a range makes it unbounded), so
        that a study stops when it has trained them all instead of asking forever."""
        import itertools
        import json

        if any(isinstance(v, Range) for v in self.training.values()):
            return None
        axes = list(self.training)
        recipes = {
            json.dumps(recipe_for({**AXIS_OFF, **dict(zip(axes, combo, strict=True))}), sort_keys=True)
            for combo in itertools.product(*(self.training[a] for a in axes))  # type: ignore[misc]
        }
        return len(recipes)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "training": {
                k: (v if isinstance(v, list) else {"low": v.low, "high": v.high, "step": v.step})
                for k, v in self.training.items()
            },
            "exports": self.exports,
            "runtimes": self.runtimes,
            "threads": self.threads,
            "notes": self.notes,
        }


def load_space(path: Path | None, tflite_ok: bool | None = None) -> SearchSpace:
    """Read and check a space file (None: the built-in default). Raises UsageError naming the file."""
    import yaml

    path = path or DEFAULT_SPACE
    name = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise UsageError(f"space {name}: cannot read it ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        raise UsageError(f"space {name}: not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(doc, dict):
        raise UsageError(f"space {name}: expected a mapping with training:, exports:, runtimes: and threads:")
    unknown = sorted(set(doc) - set(SPACE_KEYS))
    if unknown:
        raise UsageError(
            f"space {name}: unknown key(s) {', '.join(unknown)} (known: {', '.join(SPACE_KEYS)})"
        )
    training_doc = doc.get("training") or {}
    if not isinstance(training_doc, dict):
        raise UsageError(f"space {name}: training: must be a mapping of axis -> choices")
    training: dict[str, list[Any] | Range] = {}
    for axis, values in training_doc.items():
        if axis not in TRAINING_AXES:
            raise UsageError(
                f"space {name}: unknown training axis {axis!r} (known: {', '.join(TRAINING_AXES)})"
            )
        training[axis] = _axis(name, axis, values)
    notes: list[str] = []
    exports = _str_list(name, "exports", doc.get("exports", ["onnx-fp32"]))
    bad = [e for e in exports if e not in EXPORTS]
    if bad:
        raise UsageError(f"space {name}: unknown export(s) {', '.join(bad)} (known: {', '.join(EXPORTS)})")
    if tflite_ok is None:
        import importlib.util

        # litert-torch is x86_64-only and optional ([litert] extra): look without importing it (slow).
        tflite_ok = importlib.util.find_spec("litert_torch") is not None
    if not tflite_ok and any(e.startswith("tflite") for e in exports):
        notes.append("TFLite exports skipped: litert-torch is not installed ([litert] extra, x86_64 only)")
        exports = [e for e in exports if not e.startswith("tflite")]
    threads_doc = doc.get("threads", [1])
    if not isinstance(threads_doc, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in threads_doc
    ):
        raise UsageError(f"space {name}: threads: must be a list of integers, e.g. [1, 2]")
    threads = sorted({t for t in threads_doc if t >= 1})
    runtimes = list(dict.fromkeys(_str_list(name, "runtimes", doc.get("runtimes", [AUTO_RUNTIME]))))
    known_runtimes = [AUTO_RUNTIME, *dict.fromkeys(r for names in RUNTIMES_FOR.values() for r in names)]
    bad = [r for r in runtimes if r not in known_runtimes]
    if bad:
        raise UsageError(
            f"space {name}: unknown runtime(s) {', '.join(bad)} (known: {', '.join(known_runtimes)})"
        )
    space = SearchSpace(
        training=training,
        exports=list(dict.fromkeys(exports)),
        threads=threads,
        source=name,
        notes=notes,
        runtimes=runtimes,
    )
    # An export no runtime of the space can run has no point to measure: dropped, and said so.
    unrunnable = [e for e in space.exports if not space.runtimes_for(e)]
    if unrunnable and runtimes:
        notes.append(f"exports {', '.join(unrunnable)} skipped: no runtime of the space runs them")
        space.exports = [e for e in space.exports if e not in unrunnable]
    if not space.exports or not threads or not runtimes:
        missing = "exports" if not space.exports else "threads (>= 1)" if not threads else "runtimes"
        raise UsageError(f"space {name}: no valid point: no {missing} left to measure")
    return space


def _str_list(name: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"space {name}: {key}: must be a list of names")
    return value


def _axis(name: str, axis: str, values: Any) -> list[Any] | Range:
    kind, ok, wanted = TRAINING_AXES[axis]
    if isinstance(values, dict):
        if kind is bool or set(values) - {"low", "high", "step"} or not {"low", "high"} <= set(values):
            raise UsageError(f"space {name}: {axis}: give a list of choices or {{low, high, step}}")
        try:
            low, high = float(values["low"]), float(values["high"])
            step = float(values["step"]) if values.get("step") is not None else None
        except (TypeError, ValueError) as err:
            raise UsageError(f"space {name}: {axis}: low/high/step must be numbers") from err
        if low > high or not ok(low) or not ok(high) or (step is not None and step <= 0):
            raise UsageError(f"space {name}: no valid point for {axis}: [{low}, {high}] must be {wanted}")
        return Range(low, high, step)
    if not isinstance(values, list):
        values = [values]
    valid = [_coerce(v, kind) for v in values]
    valid = [v for v in valid if v is not None and ok(v)]
    if not valid:
        raise UsageError(f"space {name}: no valid point for {axis}: {values!r} (each must be {wanted})")
    return list(dict.fromkeys(valid))


def _coerce(value: Any, kind: type) -> Any:
    if kind is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if kind is int:
        return int(value) if float(value).is_integer() else None
    return float(value)


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """The training settings of one Optuna trial (absent axes: that technique off)."""
    settings = dict(AXIS_OFF)
    for axis, values in space.training.items():
        if isinstance(values, Range):
            if TRAINING_AXES[axis][0] is int:
                settings[axis] = trial.suggest_int(
                    axis, int(values.low), int(values.high), step=int(values.step or 1)
                )
            else:
                settings[axis] = trial.suggest_float(axis, values.low, values.high, step=values.step)
        else:
            settings[axis] = trial.suggest_categorical(axis, values)
    return settings


def recipe_for(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The compress recipe of a candidate: prune_structured -> prune -> distill -> cluster, each only
    when on (empty: the input model as it is). The order is the default recipe's: remove weights,
    recover accuracy from the unpruned model, then share the values that are left. With distillation
    on, the pruning stages fine-tune on the input model's soft targets too (a `carry` stage first, as
    docs/compress.md recommends for CNNs), and the distill stage anneals its learning rate (cosine)."""
    epochs = float(settings["epochs"])
    stages: list[dict[str, Any]] = []
    if settings["structured_amount"] > 0:
        stages.append(
            {"stage": "prune_structured", "amount": float(settings["structured_amount"]), "epochs": epochs}
        )
    if settings["sparsity"] > 0:
        stages.append({"stage": "prune", "sparsity": float(settings["sparsity"]), "epochs": epochs})
    if settings["distill"]:
        if stages:
            stages.insert(0, {"stage": "distill", "epochs": 0, "carry": True})
        stages.append({"stage": "distill", "epochs": epochs, "schedule": "cosine"})
    if settings["cluster"] > 0:
        stages.append({"stage": "cluster", "clusters": int(settings["cluster"]), "epochs": min(epochs, 1.0)})
    return stages


def describe_settings(settings: dict[str, Any]) -> str:
    """One line for a candidate's training settings ("the input model as it is" when all are off)."""
    parts = [
        f"structured {settings['structured_amount']:g}" if settings.get("structured_amount") else "",
        f"sparsity {settings['sparsity']:g}" if settings.get("sparsity") else "",
        f"cluster {settings['cluster']}" if settings.get("cluster") else "",
        "distill" if settings.get("distill") else "",
    ]
    chosen = [p for p in parts if p]
    epochs = settings.get("epochs")
    return (", ".join(chosen) + f", {epochs:g} epochs") if chosen else "the input model as it is"
