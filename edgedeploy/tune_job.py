"""`edgedeploy tune`: search compression recipes, export formats and thread counts together, measured
on the target, for the models that are best on accuracy, latency and size at once.

Each trial: the search (Optuna, multi-objective) picks training settings -> a recipe trained by the
compress pipeline -> every export of the space converted and verified (the convert path) -> accuracy
of the exported file on the validation data -> profiled on a free device of the target by the runner
(the profile path), one profile stored per export and thread count with its accuracy.

Files under -o DIR: `study.db` (the Optuna study: resume with the same --study), `trials/` (every
exported file), `profiles/` (every trial's profile, unless --profiles-dir), `tune.json` (this result),
`recommended.<ext>` and `recommended.profile.json` (the fastest model within the accuracy floor).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.errors import EdgeDeployError, TargetError, UsageError
from edgedeploy.results import TuneResult

DEFAULT_STUDY = "tune"
# Trial parameters explored on each trained candidate without retraining (see tune/search.py).
CHEAP_AXES = ("export", "runtime", "threads")
EXIT_NOTHING_MEETS_FLOOR = 3
# How the runner says the device lacks the runtime asked for (its exit code 3, `no-runtime`).
NO_RUNTIME = "no runtime for"


@dataclass
class TuneOptions:
    model: str
    data: str
    target: str
    output: Path
    trials: int = 10
    max_accuracy_drop: float = 1.0
    objectives: str = "accuracy,latency,size"
    space: Path | None = None
    study: str = DEFAULT_STUDY
    arch: str | None = None
    seed: int = 0
    runs: int = 50
    eval_samples: int = 2000
    train_samples: int | None = None
    inventory: Path | None = None
    trust_new: bool = False
    profiles_dir: Path | None = None
    ray: str | None = None
    """None: candidates train in this process; `local` or a Ray address: as Ray tasks there."""
    ray_parallel: int | None = None
    sampler: str = "auto"
    """Optuna sampler: auto (= tpe, multi-objective TPE), tpe, nsga2, random."""
    data_options: Any = None
    say: Callable[[str], None] = field(default=lambda _m: None)


class NothingMeetsFloor(EdgeDeployError):
    """No measured variant is within the accuracy floor; the message says the best found."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=EXIT_NOTHING_MEETS_FLOOR)


def run(opts: TuneOptions) -> TuneResult:
    """The `tune` verb: search, measure, write tune.json and report.html; returns the study's result
    (its document is tune.json)."""
    from edgedeploy.extras import require_compress

    require_compress("tune", ("torch", "onnxscript", "torch_pruning", "optuna"))
    from edgedeploy.compress_job import load_compression_data
    from edgedeploy.deploy.inventory import load_inventory
    from edgedeploy.models.loading import load_torch_model
    from edgedeploy.options import DataOptions
    from edgedeploy.tune.pool import DevicePool
    from edgedeploy.tune.search import SAMPLERS, open_study, parse_objectives
    from edgedeploy.tune.space import load_space

    # Everything the user can get wrong is checked before any training starts.
    if opts.trials < 1:
        raise UsageError("--trials must be >= 1")
    if not 0 <= opts.max_accuracy_drop <= 100:
        raise UsageError("--max-accuracy-drop is in accuracy points, 0..100 (e.g. 1 for one point)")
    if opts.output.exists() and not opts.output.is_dir():
        raise UsageError(f"--output {opts.output} exists and is not a directory")
    objectives = parse_objectives(opts.objectives)
    if opts.sampler not in SAMPLERS:
        raise UsageError(f"--sampler {opts.sampler!r}: expected one of {', '.join(SAMPLERS)}")
    space = load_space(opts.space)
    targets = load_inventory(opts.inventory).resolve(opts.target)
    model = load_torch_model(opts.model, opts.arch)
    data = load_compression_data(opts.data, opts.data_options or DataOptions(), opts.train_samples, opts.seed)
    if not data.labelled:
        raise UsageError(f"--data {opts.data}: tune needs labelled validation data to measure accuracy")

    out = opts.output
    out.mkdir(parents=True, exist_ok=True)
    store_root = opts.profiles_dir or out / "profiles"
    pool = DevicePool(targets, out / "locks")
    eval_x, eval_y = _eval_arrays(data, opts.eval_samples)
    calibration = data.train_inputs(256).numpy()
    example = data.example().numpy()
    for note in space.notes:
        opts.say(note)

    opts.say(f"baseline: exporting {opts.model} to ONNX fp32, accuracy on {len(eval_y)} validation inputs")
    baseline = _baseline(model, data, space, example, calibration, eval_x, eval_y, opts)
    floor = baseline["accuracy"] - opts.max_accuracy_drop / 100.0
    study = open_study(out, opts.study, objectives, opts.seed, opts.sampler)
    from edgedeploy.tune.search import fail_stale

    stale = fail_stale(study)
    if stale:
        opts.say(f"study {opts.study}: trials {stale} were interrupted; marked failed, resuming")
    context = _Context(
        opts, space, objectives, model, data, pool, store_root, example, calibration, eval_x, eval_y, floor
    )
    done = _candidates_done(study)
    context.trained = {
        recipe_key(t.user_attrs["recipe"]): t.number
        for t in study.trials
        if t.user_attrs.get("asked") and "recipe" in t.user_attrs
    }
    points = space.distinct_recipes()
    input_point = space.input_model_point()
    startup: list[dict[str, Any]] = []
    if not study.trials:
        if input_point is not None:
            # The input model as it is, first: the reference every compressed candidate is judged against.
            study.enqueue_trial(input_point)
        if opts.sampler != "random":
            # A guided search starts from each structured amount at its best budget (space.py says
            # why), up to half the trials with the input model; random search stays random.
            startup = space.startup_points(opts.trials // 2 - (input_point is not None))
            for point in startup:
                study.enqueue_trial(point, user_attrs={"startup": True})
    started = time.perf_counter()
    messages: list[str] = []
    if startup:
        from edgedeploy.tune.space import describe_settings

        messages.append(
            "start-up candidates (each structured amount at its best budget): "
            + "; ".join(describe_settings(point) for point in startup)
        )
    messages += _search(study, context, done, points)
    trials = _trial_docs(study)
    # The one step after the search that uses a device: kept out of _result, which only assembles.
    recheck = _recheck(context, _feasible(trials, context.floor))
    seconds = time.perf_counter() - started
    result = _result(study, context, baseline, messages, seconds, stale, trials, recheck)
    from edgedeploy.tune.report import write_html

    # Written also when nothing meets the floor: every trial is in it, which is what to look at then.
    result["report"] = str(write_html(result, out / "report.html"))
    (out / "tune.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if result["recommended"] is None and not pool.healthy():
        reasons = "; ".join(f"{name}: {why}" for name, why in pool.failed.items())
        raise TargetError(
            f"no device of target {opts.target!r} could measure ({reasons}); the trained candidates "
            f"are in {out / 'trials'}, rerun with the same --study to resume"
        )
    if result["recommended"] is None:
        best = result["best_found"]
        detail = (
            f"best found: accuracy {best['accuracy']:.4f} ({best['export']}, trial {best['trial']})"
            if best
            else "no trial produced a measured model"
        )
        raise NothingMeetsFloor(
            f"no model within --max-accuracy-drop {opts.max_accuracy_drop:g} (accuracy >= {floor:.4f}, "
            f"input model {baseline['accuracy']:.4f}); {detail}; all trials in {out / 'tune.json'}"
        )
    return TuneResult.from_doc(result)


@dataclass
class _Context:
    opts: TuneOptions
    space: Any
    objectives: list[str]
    model: Any
    data: Any
    pool: Any
    store_root: Path
    example: np.ndarray
    calibration: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    floor: float
    executor: dict[str, Any] = field(default_factory=dict)
    lacking: dict[str, dict[str, str]] = field(default_factory=dict)
    """Runtime -> {device: why}: devices that do not have that runtime (skipped for it)."""
    reported_lacking: set[str] = field(default_factory=set)
    trained: dict[str, int] = field(default_factory=dict)
    """Recipe (as JSON) -> the trial that trained it: a repeated proposal is not trained again."""


def recipe_key(recipe: list[dict[str, Any]]) -> str:
    return json.dumps(recipe, sort_keys=True)


def _baseline(
    model: Any,
    data: Any,
    space: Any,
    example: np.ndarray,
    calibration: np.ndarray,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    opts: TuneOptions,
) -> dict[str, Any]:
    """The input model's ONNX fp32 file and its accuracy: the reference of the accuracy floor."""
    from edgedeploy.tune.candidate import CandidateJob, export_file

    folder = opts.output / "trials" / f"{opts.study}-input"
    folder.mkdir(parents=True, exist_ok=True)
    job = CandidateJob(
        model, data, [], opts.seed, ["onnx-fp32"], example, calibration, eval_x, eval_y, stem=folder.name
    )
    path, accuracy = export_file(model.eval(), "onnx-fp32", job, folder, opts.output / "convert.log")
    return {"file": str(path), "size_bytes": path.stat().st_size, "accuracy": accuracy}


def _search(study: Any, ctx: _Context, done: int, points: int | None) -> list[str]:
    """Propose, build (here, or as Ray tasks) and finish candidates until the study holds
    --trials of them. With Ray, up to `parallel` candidates train at once on the cluster; their
    device measurements still happen here, one per device at a time (the pool's locks)."""
    from optuna.trial import TrialState

    from edgedeploy.tune.distributed import make_executor

    opts = ctx.opts
    messages: list[str] = []
    executor = make_executor(opts.ray, opts.ray_parallel)
    ctx.executor = {
        "kind": "local" if executor.local else "ray",
        "address": opts.ray,
        "parallel": executor.parallel,
    }
    pending: dict[Any, _Proposal] = {}
    asks = 0
    try:
        while True:
            exhausted = points is not None and len(ctx.trained) >= points
            while not exhausted and done + len(pending) < opts.trials and len(pending) < executor.parallel:
                asks += 1
                if asks > 10 * opts.trials + 20:
                    messages.append("stopped: the sampler keeps proposing recipes already trained")
                    exhausted = True
                    break
                proposal = _propose(study, ctx)
                if proposal is not None:
                    pending[executor.submit(_job(ctx, proposal, log=executor.local))] = proposal
                exhausted = points is not None and len(ctx.trained) >= points
            if not pending:
                if points is not None and len(ctx.trained) >= points and done < opts.trials:
                    messages.append(
                        f"the space holds {points} distinct recipes; all are trained ({done} candidates)"
                    )
                break
            handle, build = executor.wait_one(list(pending))
            proposal = pending.pop(handle)
            messages += _finish(study, ctx, proposal, build)
            done += 1
            if not ctx.pool.healthy():
                messages.append("stopped: no device of the pool is left")
                for rest in pending.values():
                    study.tell(rest.trial, state=TrialState.FAIL)
                break
    finally:
        executor.close()
    return messages


def _candidates_done(study: Any) -> int:
    """Trained candidates already in the study: the trials the sampler asked for (not the added
    variants) that got an outcome; one an interrupted tune left behind is not counted."""
    return sum(
        1 for t in study.trials if t.user_attrs.get("asked") and ({"export", "error"} & set(t.user_attrs))
    )


@dataclass
class _Proposal:
    trial: Any
    settings: dict[str, Any]
    recipe: list[dict[str, Any]]
    name: str
    asked_export: str
    asked_runtime: str
    asked_threads: int
    training_params: dict[str, Any]
    training_dists: dict[str, Any]


def _propose(study: Any, ctx: _Context) -> _Proposal | None:
    """Ask the study for a trial and its training settings; None when it repeats a trained recipe."""
    from optuna.trial import TrialState

    from edgedeploy.tune.space import describe_settings, recipe_for, suggest

    space = ctx.space
    trial = study.ask()
    settings = suggest(trial, space)
    asked_export = trial.suggest_categorical("export", space.exports)
    asked_runtime = trial.suggest_categorical("runtime", space.runtimes)
    asked_threads = trial.suggest_categorical("threads", space.threads)
    recipe = recipe_for(settings)
    trial.set_user_attr("asked", True)
    previous = ctx.trained.get(recipe_key(recipe))
    if previous is not None:
        # Same recipe as a trained candidate (e.g. epochs differ with every stage off): its variants
        # are already in the study, so this proposal is pruned instead of trained and measured again.
        trial.set_user_attr("duplicate_of", previous)
        study.tell(trial, state=TrialState.PRUNED)
        return None
    ctx.trained[recipe_key(recipe)] = trial.number
    ctx.opts.say(f"trial {trial.number}: {describe_settings(settings)}")
    return _Proposal(
        trial=trial,
        settings=settings,
        recipe=recipe,
        name=f"c{trial.number:03d}",
        asked_export=asked_export,
        asked_runtime=asked_runtime,
        asked_threads=asked_threads,
        training_params={k: v for k, v in trial.params.items() if k not in CHEAP_AXES},
        training_dists={k: v for k, v in trial.distributions.items() if k not in CHEAP_AXES},
    )


def _job(ctx: _Context, proposal: _Proposal, log: bool = True) -> Any:
    from edgedeploy.tune.candidate import CandidateJob

    return CandidateJob(
        model=ctx.model,
        data=ctx.data,
        recipe=proposal.recipe,
        seed=ctx.opts.seed + proposal.trial.number,
        exports=ctx.space.exports,
        example=ctx.example,
        calibration=ctx.calibration,
        eval_x=ctx.eval_x,
        eval_y=ctx.eval_y,
        stem=f"{ctx.opts.study}-{proposal.name}",
        log=ctx.opts.output / "convert.log" if log else None,
    )


def _finish(study: Any, ctx: _Context, proposal: _Proposal, build: dict[str, Any]) -> list[str]:
    """Write the candidate's files, measure each within the floor on the pool, tell the study."""
    from optuna.trial import TrialState

    from edgedeploy.tune.search import add_variant, variant_state

    opts, space, trial = ctx.opts, ctx.space, proposal.trial
    base = {
        "candidate": proposal.name,
        "trial": trial.number,
        "settings": proposal.settings,
        "recipe": proposal.recipe,
    }
    if "error" in build:
        trial.set_user_attr("error", build["error"])
        trial.set_user_attr("recipe", proposal.recipe)
        study.tell(trial, state=TrialState.FAIL)
        return [f"trial {trial.number}: training failed: {build['error']}"]
    folder = opts.output / "trials" / f"{opts.study}-{proposal.name}"
    folder.mkdir(parents=True, exist_ok=True)
    messages: list[str] = []
    variants: list[dict[str, Any]] = []
    for export in space.exports:
        exported = build["exports"][export]
        attrs = {
            **base,
            "export": export,
            "train_seconds": round(build["train_seconds"], 2),
            "built_by": build.get("built_by"),
        }
        if "error" in exported:
            messages.append(f"trial {trial.number} {export}: export failed: {exported['error']}")
            variants.append({**attrs, "status": "failed", "error": exported["error"], "threads": None})
            continue
        path = folder / exported["name"]
        path.write_bytes(exported["data"])
        attrs.update(file=str(path), size_bytes=exported["size_bytes"], accuracy=exported["accuracy"])
        if exported["accuracy"] < ctx.floor:
            # Pruned before any device time: it cannot be recommended whatever its latency.
            variants.append(
                {
                    **attrs,
                    "status": "pruned",
                    "threads": None,
                    "reason": f"accuracy {exported['accuracy']:.4f} < floor {ctx.floor:.4f}",
                }
            )
            continue
        for runtime in space.runtimes_for(export):
            for threads in space.threads:
                variant = _measure(ctx, {**attrs, "requested_runtime": runtime, "threads": threads})
                if variant is None:
                    continue  # a runtime no device of the pool has: said once, then skipped
                variants.append(variant)
                if variant.get("error"):
                    messages.append(
                        f"trial {trial.number} {export} {runtime} threads {threads}: {variant['error']}"
                    )
    if not variants:
        trial.set_user_attr("error", "no runtime of the space is on any device of the target")
        trial.set_user_attr("recipe", proposal.recipe)
        study.tell(trial, state=TrialState.FAIL)
        return [
            *messages,
            f"trial {trial.number}: nothing measured: no runtime of the space is on the devices",
        ]

    # The asked trial is told the variant it suggested (or, when that one was pruned or failed, the
    # first measured one, so the sampler learns from a real point); the rest are added.
    def rank(v: dict[str, Any]) -> tuple[bool, bool]:
        return (
            v["export"] != proposal.asked_export
            or v.get("requested_runtime") not in (proposal.asked_runtime, None)
            or v.get("threads") not in (proposal.asked_threads, None),
            v.get("status") != "measured",
        )

    variants.sort(key=rank)
    own, others = variants[0], variants[1:]
    for key, value in own.items():
        trial.set_user_attr(key, value)
    state, values = variant_state(own, ctx.objectives)
    if own.get("threads") is not None and (own["threads"], own.get("requested_runtime")) != (
        proposal.asked_threads,
        proposal.asked_runtime,
    ):
        trial.set_user_attr(
            "note", f"measured with {own.get('requested_runtime')} at {own['threads']} threads"
        )
    study.tell(trial, values=values, state=state) if values else study.tell(trial, state=state)
    for variant in others:
        add_variant(
            study,
            proposal.training_params,
            proposal.training_dists,
            variant,
            {"export": space.exports, "runtime": space.runtimes, "threads": space.threads},
            ctx.objectives,
        )
    return messages


def _measure(ctx: _Context, attrs: dict[str, Any]) -> dict[str, Any] | None:
    """Profile one exported file on a free device of the pool; a failing device is set aside and the
    next free one tried, so an unreachable board fails this measurement, never the study. A device
    without the requested runtime is not set aside: that runtime is skipped on it from then on. When
    no healthy device has it, the first such measurement fails saying so and later ones return None."""
    from edgedeploy.options import ProfileOptions
    from edgedeploy.profile_job import profile_model
    from edgedeploy.tune.pool import NoDeviceLeft

    opts = ctx.opts
    runtime = attrs["requested_runtime"]
    lacking = ctx.lacking.setdefault(runtime, {})
    while True:
        if lacking and all(t.name in lacking for t in ctx.pool.healthy()):
            if runtime in ctx.reported_lacking:
                return None
            ctx.reported_lacking.add(runtime)
            why = "; ".join(f"{name}: {reason}" for name, reason in lacking.items())
            opts.say(f"runtime {runtime} is on no device of the target; skipped from now on ({why})")
            return {**attrs, "status": "failed", "error": f"runtime {runtime} is on no device ({why})"}
        try:
            with ctx.pool.device(skip=frozenset(lacking)) as target:
                try:
                    profile = profile_model(
                        Path(attrs["file"]),
                        target.name,
                        ProfileOptions.counted(
                            runs=opts.runs,
                            warmup=5,
                            threads=attrs["threads"],
                            runtime=runtime,
                            inventory=opts.inventory,
                            trust_new=opts.trust_new,
                            profiles_dir=ctx.store_root,
                        ),
                        accuracy=attrs["accuracy"],
                        tags={
                            "tune": {
                                "study": opts.study,
                                "trial": attrs["trial"],
                                "candidate": attrs["candidate"],
                                "export": attrs["export"],
                                "runtime": runtime,
                                "settings": attrs["settings"],
                                "device": target.name,
                            }
                        },
                    )
                except TargetError as err:
                    if NO_RUNTIME in str(err):
                        # The board is fine, it lacks this runtime (the runner's exit 3 message).
                        lacking[target.name] = str(err)
                        continue
                    ctx.pool.mark_failed(target, str(err))
                    opts.say(f"device {target.name} set aside: {err}")
                    continue
                except UsageError as err:
                    # The runner refused this file (bad input, not a bad device): this variant fails.
                    return {**attrs, "status": "failed", "error": str(err)}
        except NoDeviceLeft as err:
            return {**attrs, "status": "failed", "error": str(err)}
        return {
            **attrs,
            "status": "measured",
            "device": target.name,
            "emulated": profile.emulated,
            "p50_ms": profile.p50_ms,
            "p90_ms": profile.p90_ms,
            "peak_rss_mb": profile.peak_rss_mb,
            "energy_mj": profile.energy_mj,
            "power_source": profile.power_source,
            "runtime": profile.runtime,
            "profile": profile.path,
        }


def _eval_arrays(data: Any, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` validation inputs and labels as arrays (what the exported files are scored on)."""
    import torch

    xs, ys, count = [], [], 0
    for xb, yb in data.splits.val_loader():
        xs.append(torch.as_tensor(xb).numpy().astype(np.float32))
        ys.append(torch.as_tensor(yb).numpy().astype(np.int64))
        count += len(xs[-1])
        if count >= limit:
            break
    return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]


RECHECK_MARGIN = 0.15
"""Feasible variants whose profile p50 is within this fraction of the fastest are timed again side by
side before one is recommended."""
RECHECK_MAX = 4
RECHECK_ROUNDS = 3


def _recheck(ctx: _Context, feasible: list[dict[str, Any]]) -> dict[str, Any]:
    """Time the fastest feasible variants again, interleaved in one session on one device
    (`time_models`: the p50 of each one's fastest round), and name the fastest.

    Why: each variant's profile is one runner process at one moment; the lowest of dozens of such
    figures is biased towards a lucky moment. On the 2-core VM of bench/tune.py the same bytes timed
    0.183 and 0.208 ms in two processes, so near-equal variants are ranked here, not by their profiles.
    When this fails (the device is gone), the profiles decide and the reason is recorded."""
    from edgedeploy.deploy.runner_client import time_models
    from edgedeploy.deploy.transports.connect import open_transport
    from edgedeploy.tune.pool import NoDeviceLeft

    if not feasible:
        return {}
    fastest = min(t["p50_ms"] for t in feasible)
    close = sorted(
        (t for t in feasible if t["p50_ms"] <= fastest * (1 + RECHECK_MARGIN)),
        key=lambda t: (t["p50_ms"], t["size_bytes"]),
    )[:RECHECK_MAX]
    doc: dict[str, Any] = {"margin": RECHECK_MARGIN, "variants": [t["number"] for t in close]}
    if len(close) < 2:
        return doc
    names = {f"trial-{t['number']}": t for t in close}
    # A device that lacks one of their runtimes cannot time them all.
    skip = frozenset(device for t in close for device in ctx.lacking.get(t["requested_runtime"], {}))
    try:
        with ctx.pool.device(skip=skip) as target, open_transport(target) as transport:
            timed = time_models(
                transport,
                target,
                {name: Path(t["file"]) for name, t in names.items()},
                threads=None,
                rounds=RECHECK_ROUNDS,
                remote_prefix="recheck-",
                settings_of={
                    name: {"threads": t["threads"], "runtime": t["requested_runtime"]}
                    for name, t in names.items()
                },
            )
    except (TargetError, UsageError, NoDeviceLeft, OSError) as err:
        doc["skipped"] = f"not re-timed ({err}); the profiles' p50 decided"
        ctx.opts.say(f"recheck of the fastest variants skipped: {err}")
        return doc
    p50 = timed["p50_ms"]
    chosen = min(names, key=lambda n: (p50[n], names[n]["size_bytes"]))
    return doc | {
        "device": target.name,
        "statistic": timed["statistic"],
        "p50_ms": {str(names[n]["number"]): round(p50[n], 4) for n in names},
        "chosen": names[chosen]["number"],
    }


def _trial_docs(study: Any) -> list[dict[str, Any]]:
    """Every trial as tune.json lists it: number, state and what the trial recorded."""
    trials = []
    for t in study.trials:
        attrs = dict(t.user_attrs)
        attrs.pop("asked", None)
        trials.append({"number": t.number, "state": t.state.name, **attrs})
    return trials


def _feasible(trials: list[dict[str, Any]], floor: float) -> list[dict[str, Any]]:
    """The measured trials whose exported file is within the accuracy floor."""
    return [t for t in trials if t["state"] == "COMPLETE" and t["accuracy"] >= floor]


def _result(
    study: Any,
    ctx: _Context,
    baseline: dict[str, Any],
    messages: list[str],
    seconds: float,
    stale: list[int],
    trials: list[dict[str, Any]],
    recheck: dict[str, Any],
) -> dict[str, Any]:
    out = ctx.opts.output
    measured = [t for t in trials if t["state"] == "COMPLETE"]
    front_numbers = {t.number for t in study.best_trials} if measured else set()
    front = sorted(
        (t for t in measured if t["number"] in front_numbers), key=lambda t: (t["p50_ms"], t["size_bytes"])
    )
    feasible = _feasible(trials, ctx.floor)
    scored = [t for t in trials if t.get("accuracy") is not None]
    best_found = max(scored, key=lambda t: t["accuracy"], default=None)
    recommended = min(feasible, key=lambda t: (t["p50_ms"], t["size_bytes"]), default=None)
    if recheck.get("chosen") is not None:
        recommended = next(t for t in feasible if t["number"] == recheck["chosen"])
    files: dict[str, str] = {}
    if recommended is not None:
        source = Path(recommended["file"])
        target_file = out / f"recommended{source.suffix}"
        shutil.copyfile(source, target_file)
        shutil.copyfile(recommended["profile"], out / "recommended.profile.json")
        files = {"model": str(target_file), "profile": str(out / "recommended.profile.json")}
    devices = ctx.pool.used
    return {
        "model": ctx.opts.model,
        "data": ctx.data.splits.describe(),
        "target": ctx.opts.target,
        "devices": {"used": devices, "set_aside": ctx.pool.failed},
        "study": {"name": ctx.opts.study, "storage": str(out / "study.db"), "interrupted_trials": stale},
        "executor": ctx.executor,
        "sampler": ctx.opts.sampler,
        "objectives": ctx.objectives,
        "space": ctx.space.describe(),
        "input_model": {"accuracy": baseline["accuracy"], "size_bytes": baseline["size_bytes"]},
        "accuracy_floor": ctx.floor,
        "max_accuracy_drop_pct": ctx.opts.max_accuracy_drop,
        "eval_samples": len(ctx.eval_y),
        "seconds": round(seconds, 1),
        "counts": {
            state: sum(1 for t in trials if t["state"] == state) for state in ("COMPLETE", "PRUNED", "FAIL")
        },
        "pareto": front,
        "recommended": recommended,
        "recommended_files": files,
        "recheck": recheck,
        "best_found": best_found,
        "messages": messages,
        "trials": trials,
    }
