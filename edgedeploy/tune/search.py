"""The Optuna side of `tune`: the study (SQLite under the tune directory), its objectives, and how
the measured variants of one trained candidate are told to it.

One trained candidate gives several measured variants (exports x runtimes x threads). The trial the
sampler asked for is told the variant matching the export/runtime/threads it suggested; the other
variants are added as finished trials (`study.add_trial`) with their own export/runtime/threads
parameters, so the sampler and the Pareto front see every measurement without retraining anything.
A variant whose exported file is below the accuracy floor is not profiled (no device time spent)
and is stored as PRUNED with its accuracy: Optuna has no objective values for it, so it cannot be
a COMPLETE trial.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgedeploy.errors import UsageError

# objective -> (direction, user attribute holding the measured value)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": ("maximize", "accuracy"),
    "latency": ("minimize", "p50_ms"),
    "size": ("minimize", "size_bytes"),
    "peak_memory": ("minimize", "peak_rss_mb"),
    "energy": ("minimize", "energy_mj"),
}
STUDY_FILE = "study.db"
SAMPLERS = ("auto", "nsga2", "tpe", "random")


def parse_objectives(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in OBJECTIVES]
    if not names or bad:
        raise UsageError(f"--objectives {text!r}: expected a comma-separated list of {', '.join(OBJECTIVES)}")
    return list(dict.fromkeys(names))


def open_study(directory: Path, name: str, objectives: list[str], seed: int, sampler: str = "auto") -> Any:
    """Create or load the study `name` in DIR/study.db (an interrupted tune resumes from it).
    `sampler`: auto (= tpe), tpe (TPE; multi-objective TPE for several objectives), nsga2, or random
    (Optuna's RandomSampler: the baseline a guided search has to beat).

    Why TPE by default: `tune` trains few candidates (8-30) and adds each candidate's cheap variants
    (exports x runtimes x threads) as finished trials. TPE learns from every finished trial, added
    ones included, once `n_startup_trials` exist (after the first candidate); NSGA-II samples its
    whole first generation at random and does not count added trials towards it, so at or below
    its population it asked, with the same seed, for exactly the candidates random search asked
    for (bench/tune.py, docs/tune.md)."""
    import optuna

    if sampler not in SAMPLERS:
        raise UsageError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = [OBJECTIVES[o][0] for o in objectives]
    if sampler == "auto":
        sampler = "tpe"
    chosen = {
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=8),
        # multivariate: the training axes interact (a pruning amount is fine with distillation and
        # longer fine-tuning, not without), which independent per-axis TPE cannot model.
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=4, multivariate=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }[sampler]()
    storage = f"sqlite:///{(directory / STUDY_FILE).resolve()}"
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, directions=directions, sampler=chosen, load_if_exists=True
        )
    except ValueError as err:
        raise UsageError(f"study {name!r} in {directory / STUDY_FILE}: {err}") from err
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in directions]:
        stored = study.user_attrs.get("objectives")
        raise UsageError(
            f"study {name!r} in {directory / STUDY_FILE} was started with --objectives "
            f"{','.join(stored) if stored else '(other)'}: resume with the same, or give another --study"
        )
    study.set_user_attr("objectives", objectives)
    return study


def fail_stale(study: Any) -> list[int]:
    """Trials left RUNNING by an interrupted tune: marked FAIL so the study can go on."""
    from optuna.trial import TrialState

    stale = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for number in stale:
        study.tell(number, state=TrialState.FAIL)
    return stale


def values_of(attrs: dict[str, Any], objectives: list[str]) -> list[float] | None:
    """Objective values from a variant's measured attributes (None when one is not measured)."""
    values = []
    for objective in objectives:
        value = attrs.get(OBJECTIVES[objective][1])
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return None
        values.append(float(value))
    return values


def add_variant(
    study: Any,
    training_params: dict[str, Any],
    training_dists: dict[str, Any],
    variant: dict[str, Any],
    choices: dict[str, list[Any]],
    objectives: list[str],
) -> None:
    """Store a measured (or pruned / failed) variant of a candidate as a finished trial. `choices`:
    the space's values of each cheap axis (export, runtime, threads); a variant sets those it has
    (a pruned one was never measured, so it has no runtime or threads)."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    value_of = {"export": "export", "runtime": "requested_runtime", "threads": "threads"}
    params, dists = dict(training_params), dict(training_dists)
    for axis, values in choices.items():
        if variant.get(value_of[axis]) is not None:
            params[axis] = variant[value_of[axis]]
            dists[axis] = CategoricalDistribution(values)
    state, values = variant_state(variant, objectives)
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            params=params,
            distributions=dists,
            values=values,
            user_attrs=variant,
        )
    )


def variant_state(variant: dict[str, Any], objectives: list[str]) -> tuple[Any, list[float] | None]:
    from optuna.trial import TrialState

    if variant.get("status") == "pruned":
        return TrialState.PRUNED, None
    values = values_of(variant, objectives) if variant.get("status") == "measured" else None
    return (TrialState.COMPLETE, values) if values is not None else (TrialState.FAIL, None)
