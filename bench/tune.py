"""`edgedeploy tune` against fixed recipes and against random search, on the MobileNetV2 (Fashion-MNIST)
of bench/cnn_compression.py (issue 16).

    python -m bench.tune [--quick] [--group] [--trials N] [--seed N] [--train-samples N] ...

One run, one process, every latency through the stand-alone runner:

1. the MobileNetV2 of the CNN compression bench (its factory arguments, data loading and training
   schedule, imported from bench/cnn_compression.py) trained fp32 on a Fashion-MNIST training subset;
2. baselines, each measured at every thread count of the space and reported at its fastest:
   `fp32` (ONNX fp32), `int8_ptq` (ONNX int8 static PTQ, convert's QDQ/QOperator choice),
   `default_recipe` (edgedeploy's default compress recipe, epochs scaled as `config` says, then
   ONNX int8), `structured_only` (prune_structured, fine-tuned, ONNX fp32); with TFLite exports in the
   space the baselines are exported to TFLite too and the faster file counts;
3. `tune` (its default sampler: multi-objective TPE, after its start-up candidates: each structured
   amount at the space's best budget) with `--trials` trained candidates,
   the config's `objectives` (accuracy,latency in the full run), `--max-accuracy-drop 1`:
   `best_under_1pt` is its recommended model;
4. the same study with Optuna's RandomSampler and the same number of trials;
5. the contenders (each baseline's file, tune's and random search's best) timed again side by side in
   one runner session per thread count, interleaved rounds: the goal figures come from there, so a
   load change on the host between steps cannot favour one of them.

Every accuracy is measured on the exported file over the same validation images (Fashion-MNIST test
images). Goals: tune's best within 1 pt of fp32 >= 1.3x faster than the best baseline within 1 pt;
it beats random search's best under the same constraint; the whole run <= 60 min on the 2-core
machine (`--quick` is a smoke run for the tests: its figures mean nothing).

`--group`: the target is a group of two emulated devices, each a real sshd in its own network
namespace with its own CPU cap (bench/fleet.py's devices; loopback sshd without a cap where this host
cannot make namespaces, said in `group.emulation`); the JSON reports how many measurements each device
made and whether both were used. Their timings are not device timings.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from bench.support.training import MODELS, fashion_mnist
from edgedeploy import tune_job
from edgedeploy.compress.pipeline import DEFAULT_RECIPE, compress_model
from edgedeploy.compress_job import load_compression_data
from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.deploy.runner_client import time_models
from edgedeploy.deploy.transports.connect import open_transport
from edgedeploy.models import zoo
from edgedeploy.options import DataOptions, ProfileOptions
from edgedeploy.profile_job import profile_model
from edgedeploy.train import seed_everything, train
from edgedeploy.tune.candidate import CandidateJob, export_file

ARCH = "mobilenetv2"
GOAL_SPEEDUP = 1.3
GOAL_MAX_DROP_PT = 1.0
GOAL_SECONDS = 3600
# Two latencies closer than this are a tie, not a win: same-file timings on this host differ by a
# few per cent from session to session (docs/runner.md: run-to-run CV up to ~2-3%).
TIE_MARGIN = 0.03
GROUP_DEVICE_CPUS = 0.8  # two devices x 0.8 CPU stay below a 2-core host with room for the driver


def config(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        cfg: dict[str, Any] = {
            "train_samples": 256,
            "eval_samples": 128,
            "baseline_epochs": 0.3,
            "batch_size": 32,
            "trials": 2,
            "runs": 5,
            "rounds": 1,
            "calibration_samples": 32,
            "default_recipe_epoch_scale": 0.02,
            "structured_only": {"amount": 0.5, "epochs": 0.1},
            "objectives": "accuracy,latency,size",
            "space": {
                "training": {"structured_amount": [0.0, 0.5], "epochs": [0.1]},
                "exports": ["onnx-fp32", "onnx-int8-dynamic"],
                "runtimes": ["auto"],
                "threads": [1],
            },
        }
    else:
        cfg = {
            "train_samples": 6000,
            "eval_samples": 1000,
            "baseline_epochs": 4,
            # Small batches: a training subset this size gives few steps per epoch at 128.
            "batch_size": 32,
            "trials": 8,
            "runs": 50,
            # Side-by-side rounds per file: its fastest round counts (runner_client.time_models).
            "rounds": 5,
            "calibration_samples": 256,
            # The default recipe makes 4 passes over the data (2 + 1 + 0.5 + 0.5 epochs): scaled to
            # one pass here, as each candidate of the search gets at most one epoch per stage.
            "default_recipe_epoch_scale": 0.25,
            "structured_only": {"amount": 0.5, "epochs": 1.0},
            # The bench's goal is the fastest model within 1 pt, so both studies search accuracy and
            # latency (size is still reported); with size as a third objective the sampler also
            # chases clustering and sparsity, which shrink files but do not speed up dense runtimes.
            "objectives": "accuracy,latency",
            "space": {
                "training": {
                    # 0.625 and 0.75 were dropped: no candidate pruned that far came within 1 pt in
                    # the earlier runs, and 0.5 with distillation and 8 epochs was still 0.5 pt short
                    # (docs/tune.md). One or two passes were 3-5 pt short at 0.25; with distillation
                    # 4 epochs gave 0.25 83.8% (0.2 pt inside the floor) and 0.375 83.2%: 5 is the
                    # largest budget that keeps both studies within the hour.
                    "structured_amount": [0.0, 0.25, 0.375, 0.5],
                    "sparsity": [0.0, 0.5],
                    "cluster": [0, 32],
                    "distill": [False, True],
                    "epochs": [1.0, 2.0, 5.0],
                },
                "exports": [
                    "onnx-fp32",
                    "onnx-int8-qdq",
                    "onnx-int8-qoperator",
                    "onnx-int8-dynamic",
                    "tflite-fp32",
                    "tflite-int8",
                ],  # fmt: skip
                "runtimes": ["onnxruntime", "ai-edge-litert"],
                "threads": [1, 2],
            },
        }
    # What the command line changed from the config above: the JSON says what a run reduced.
    overrides: dict[str, Any] = {}
    for key in ("train_samples", "eval_samples", "trials", "baseline_epochs", "runs"):
        if getattr(args, key, None) is not None:
            overrides[key] = cfg[key] = getattr(args, key)
    if args.exports:
        overrides["exports"] = cfg["space"]["exports"] = args.exports.split(",")
    if args.epochs:
        overrides["epochs"] = cfg["space"]["training"]["epochs"] = [float(v) for v in args.epochs.split(",")]
    if args.structured:
        amounts = [float(v) for v in args.structured.split(",")]
        overrides["structured_amount"] = cfg["space"]["training"]["structured_amount"] = amounts
    cfg["overridden_on_the_command_line"] = overrides
    return cfg


def train_fp32(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: float, seed: int, batch: int
) -> None:
    """bench/cnn_compression.py's schedule (Adam, learning rate stepped down), at `batch` per step."""
    for index, (share, lr) in enumerate([(0.6, 2e-3), (0.25, 7e-4), (0.15, 2e-4)]):
        train(
            model, x, y, epochs=epochs * share, lr=lr, seed=seed + index, batch_size=batch, channels_last=True
        )


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def devices(root: Path, group: bool) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(inventory, target, what emulates the devices): `local`, or a group of two sshd devices built
    as bench/fleet.py builds them (own network namespace and CPU cap each, where this host can)."""
    root.mkdir(parents=True, exist_ok=True)
    inventory = root / "inventory.yml"
    if not group:
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"local": {"ansible_connection": "local"}}}}))
        yield inventory, "local", {"target": "local", "emulation": None}
        return
    from tests.support import isolation as fleet  # the same emulated devices as bench/fleet.py
    from tests.support.isolation import IsolationUnavailable

    emulation = (
        f"two real sshd devices, each in its own network namespace with a {GROUP_DEVICE_CPUS} CPU "
        "cgroup cap (bench/fleet.py); timings are NOT device timings"
    )
    with contextlib.ExitStack() as stack:
        try:
            servers = stack.enter_context(fleet.ssh_servers(root / "isolated", 2, GROUP_DEVICE_CPUS))
        except IsolationUnavailable as exc:
            emulation = f"two loopback sshd devices without a CPU cap (namespaces unavailable: {exc})"
            servers = stack.enter_context(fleet.ssh_servers(root / "loopback", 2, None))
        hosts = fleet.ssh_hosts(servers)
        groups = {"pair": {"hosts": {name: None for name in hosts}}}
        inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts, "children": groups}}))
        yield inventory, "pair", {"target": "pair", "emulation": emulation, "devices": sorted(hosts)}


def measure_file(
    path: Path, accuracy: float, target: str, inventory: Path, cfg: dict, store: Path, name: str
) -> dict[str, Any]:
    """Profile one file at every thread count of the space; its fastest is its figure."""
    by_threads = {}
    for threads in cfg["space"]["threads"]:
        settings = ProfileOptions.counted(
            runs=cfg["runs"], warmup=5, threads=threads, inventory=inventory, profiles_dir=store
        )
        profile = profile_model(path, target, settings, accuracy=accuracy, tags={"bench": name})
        by_threads[threads] = profile.p50_ms
    threads = min(by_threads, key=lambda t: by_threads[t])
    return {
        "accuracy": accuracy,
        "p50_ms": by_threads[threads],
        "size_bytes": path.stat().st_size,
        "threads": threads,
        "p50_ms_by_threads": by_threads,
        "file": str(path),
    }


def baseline(
    name: str, model: torch.nn.Module, precision: str, ctx: dict[str, Any], cfg: dict
) -> dict[str, Any]:
    """Export (verified) to ONNX, and TFLite when the space has TFLite exports; the faster file."""
    formats = ["onnx"] + (["tflite"] if any(e.startswith("tflite") for e in cfg["space"]["exports"]) else [])
    measured = {}
    for fmt in formats:
        export = f"{fmt}-{precision}"
        job = CandidateJob(
            model, None, [], 0, [export], ctx["example"], ctx["calibration"], ctx["eval_x"], ctx["eval_y"],
            stem=f"baseline-{name}", log=ctx["folder"] / "convert.log",
        )  # fmt: skip
        try:
            path, accuracy = export_file(
                model.eval(), export, job, ctx["folder"], ctx["folder"] / "convert.log"
            )
        except Exception as err:  # noqa: BLE001 - a failed export is a result to report
            measured[export] = {"error": str(err).splitlines()[0]}
            continue
        measured[export] = measure_file(
            path, accuracy, ctx["target"], ctx["inventory"], cfg, ctx["store"], name
        )
    ok = {e: m for e, m in measured.items() if "error" not in m}
    if not ok:
        return {"error": "; ".join(f"{e}: {m['error']}" for e, m in measured.items())}
    export = min(ok, key=lambda e: ok[e]["p50_ms"])
    others = {e: {k: m.get(k) for k in ("accuracy", "p50_ms", "error")} for e, m in measured.items()}
    progress(f"baseline {name}: {export} acc {ok[export]['accuracy']:.4f} p50 {ok[export]['p50_ms']:.3f} ms")
    return {**ok[export], "export": export, "all_exports": others}


def scaled_default_recipe(scale: float) -> list[dict[str, Any]]:
    stages = yaml.safe_load(Path(DEFAULT_RECIPE).read_text())["stages"]
    return [{**s, "epochs": s["epochs"] * scale} for s in stages]


def run_study(
    name: str, sampler: str, model_file: Path, data_file: Path, root: Path, cfg: dict,
    args: argparse.Namespace, target: str, inventory: Path, space_file: Path,
) -> dict[str, Any]:  # fmt: skip
    opts = tune_job.TuneOptions(
        model=str(model_file), data=str(data_file), target=target, output=root / name, trials=cfg["trials"],
        max_accuracy_drop=GOAL_MAX_DROP_PT, space=space_file, study=name, seed=args.seed, runs=cfg["runs"],
        eval_samples=cfg["eval_samples"], inventory=inventory, sampler=sampler, say=progress,
        data_options=DataOptions(batch_size=cfg["batch_size"]), objectives=cfg["objectives"],
    )  # fmt: skip
    started = time.perf_counter()
    try:
        result = tune_job.run(opts).to_dict()
    except tune_job.NothingMeetsFloor:
        result = json.loads((root / name / "tune.json").read_text())
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    return result


def slim(trial: dict[str, Any] | None) -> dict[str, Any] | None:
    if trial is None:
        return None
    keys = (
        "accuracy",
        "p50_ms",
        "size_bytes",
        "settings",
        "export",
        "runtime",
        "threads",
        "device",
        "number",
    )
    return {k: trial.get(k) for k in keys}


def candidate_accuracy(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each trained candidate of a study, in order: its settings and the best accuracy of its exported
    files (what decides whether any of them is within the floor)."""
    best: dict[str, dict[str, Any]] = {}
    for trial in result.get("trials", []):
        name, accuracy = trial.get("candidate"), trial.get("accuracy")
        if not name or accuracy is None:
            continue
        entry = best.setdefault(
            name, {"candidate": name, "settings": trial.get("settings"), "accuracy": accuracy}
        )
        entry["accuracy"] = max(entry["accuracy"], accuracy)
        if trial.get("startup"):
            entry["startup"] = True  # one of the guided search's start-up candidates
    return [best[name] for name in sorted(best)]


def side_by_side(contenders: dict[str, Path], target: str, inventory: Path, cfg: dict) -> dict[str, Any]:
    """Every contender file timed in one runner session per thread count, interleaved rounds (the
    runner's `time_models`: the p50 of each file's fastest round); each contender's figure is its
    fastest thread count. The medians of the rounds are kept beside (`p50_ms_median_by_threads`)."""
    device = load_inventory(inventory).get(
        target if target == "local" else sorted(t.name for t in load_inventory(inventory).resolve(target))[0]
    )
    by_threads: dict[int, dict[str, float]] = {}
    medians: dict[int, dict[str, float]] = {}
    with open_transport(device) as transport:
        for threads in cfg["space"]["threads"]:
            timed = time_models(transport, device, contenders, threads=threads, rounds=cfg["rounds"])
            by_threads[threads] = {name: float(ms) for name, ms in timed["p50_ms"].items()}
            medians[threads] = {name: float(ms) for name, ms in timed["p50_ms_median"].items()}
    best = {
        name: min((by_threads[t][name], t) for t in by_threads if name in by_threads[t])
        for name in contenders
    }
    return {
        "device": device.name,
        "p50_ms": {name: ms for name, (ms, _t) in best.items()},
        "threads": {name: t for name, (_ms, t) in best.items()},
        "p50_ms_by_threads": by_threads,
        "statistic": f"p50 of the fastest of {cfg['rounds']} rounds",
        "p50_ms_median_by_threads": medians,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on a few hundred images")
    parser.add_argument("--group", action="store_true", help="target: a group of two emulated sshd devices")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, help="trained candidates per study")
    parser.add_argument("--train-samples", dest="train_samples", type=int)
    parser.add_argument("--eval-samples", dest="eval_samples", type=int)
    parser.add_argument("--baseline-epochs", dest="baseline_epochs", type=float)
    parser.add_argument("--runs", type=int, help="timed inferences per profile")
    parser.add_argument("--exports", help="comma-separated exports of the space (default: the config's)")
    parser.add_argument("--structured", help="comma-separated structured_amount choices of the space")
    parser.add_argument("--epochs", help="comma-separated fine-tuning epochs choices of the space")
    args = parser.parse_args()
    # The converters print progress on stdout (some from C++): send fd 1 to stderr until the JSON.
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    started = time.perf_counter()
    torch.set_num_threads(2)
    cfg = config(args)
    load_before = os.getloadavg()[0]
    train_x, train_y, test_x, test_y = fashion_mnist()
    rng = np.random.default_rng(args.seed)
    pick = rng.permutation(len(train_y))[: cfg["train_samples"]]
    arrays = {
        "x_train": train_x[pick],
        "y_train": train_y[pick],
        "x_val": test_x[: cfg["eval_samples"]],
        "y_val": test_y[: cfg["eval_samples"]],
    }
    with tempfile.TemporaryDirectory(prefix="bench-tune-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(root / "cache")  # runner journals stay inside the temp dir
        # The same arrays for the baselines and for `tune` (its --data .npz): same training subset,
        # same validation images.
        data_file = root / "fashion_subset.npz"
        np.savez(data_file, **arrays)
        data = load_compression_data(
            str(data_file), DataOptions(batch_size=cfg["batch_size"]), None, args.seed
        )
        space_file = root / "space.yaml"
        space_file.write_text(yaml.safe_dump(cfg["space"]))

        seed_everything(args.seed)
        model = getattr(zoo, ARCH)(**MODELS[ARCH])
        progress(f"training the fp32 {ARCH} on {len(pick)} images, {cfg['baseline_epochs']} epochs")
        train_fp32(
            model, arrays["x_train"], arrays["y_train"], cfg["baseline_epochs"], args.seed, cfg["batch_size"]
        )
        model.eval()
        model_file = root / f"{ARCH}.pt"
        torch.save(model, model_file)
        trained_s = time.perf_counter() - started

        with devices(root / "devices", args.group) as (inventory, target, device_info):
            folder = root / "baselines"
            folder.mkdir()
            ctx = {
                "example": arrays["x_val"][:1],
                "calibration": arrays["x_train"][: cfg["calibration_samples"]],
                "eval_x": arrays["x_val"],
                "eval_y": arrays["y_val"],
                "folder": folder,
                "target": target if not args.group else device_info["devices"][0],
                "inventory": inventory,
                "store": root / "profiles",
            }
            baselines: dict[str, Any] = {}
            baselines["fp32"] = baseline("fp32", model, "fp32", ctx, cfg)
            baselines["int8_ptq"] = baseline("int8_ptq", model, "int8", ctx, cfg)
            progress("default recipe (prune 90% -> distill -> cluster 32 -> qat), epochs scaled")
            recipe = scaled_default_recipe(cfg["default_recipe_epoch_scale"])
            default = compress_model(model, recipe, data=data, seed=args.seed).model
            baselines["default_recipe"] = baseline("default_recipe", default, "int8", ctx, cfg)
            so = cfg["structured_only"]
            structured = compress_model(
                model, [{"stage": "prune_structured", **so}], data=data, seed=args.seed
            ).model
            baselines["structured_only"] = baseline("structured_only", structured, "fp32", ctx, cfg)
            baselines_s = time.perf_counter() - started - trained_s

            progress(f"tune (TPE, the default sampler), {cfg['trials']} trials")
            tuned = run_study(
                "tuned", "auto", model_file, data_file, root, cfg, args, target, inventory, space_file
            )
            progress(f"random search (RandomSampler), {cfg['trials']} trials")
            random = run_study(
                "random", "random", model_file, data_file, root, cfg, args, target, inventory, space_file
            )

            contenders = {n: Path(b["file"]) for n, b in baselines.items() if "file" in b}
            for name, result in (("tuned", tuned), ("random", random)):
                if result.get("recommended"):
                    contenders[name] = Path(result["recommended"]["file"])
            # The same bytes are the same model: their two timings differ by noise only, never a win.
            digests = {n: hashlib.sha256(f.read_bytes()).hexdigest() for n, f in contenders.items()}
            same_file = "tuned" in digests and digests.get("tuned") == digests.get("random")
            progress(f"timing {len(contenders)} contenders side by side")
            final = side_by_side(contenders, target, inventory, cfg)

    fp32_acc = baselines["fp32"].get("accuracy")

    def within(entry: dict[str, Any] | None) -> bool:
        return (
            bool(entry)
            and fp32_acc is not None
            and 100 * (fp32_acc - entry["accuracy"]) <= GOAL_MAX_DROP_PT + 1e-9
        )

    def final_of(name: str, entry: dict[str, Any] | None) -> dict[str, Any] | None:
        if not entry or name not in final["p50_ms"]:
            return entry
        return entry | {"p50_ms_study": entry["p50_ms"], "p50_ms": final["p50_ms"][name],
                        "threads": final["threads"][name]}  # fmt: skip

    best = final_of("tuned", slim(tuned.get("recommended")))
    rand = final_of("random", slim(random.get("recommended")))
    base_out = {}
    for name, entry in baselines.items():
        figures = final_of(name, entry) if "file" in entry else entry
        base_out[name] = {k: v for k, v in figures.items() if k != "file"} | {"within_1pt": within(entry)}
    eligible = {n: b for n, b in base_out.items() if b.get("within_1pt") and b.get("p50_ms")}
    best_baseline = min(eligible, key=lambda n: eligible[n]["p50_ms"], default=None)
    speedup = (
        round(eligible[best_baseline]["p50_ms"] / best["p50_ms"], 3)
        if best and best_baseline and within(best)
        else None
    )
    seconds = round(time.perf_counter() - started, 1)
    tuned_devices = tuned.get("devices", {}).get("used", {})
    doc: dict[str, Any] = {
        "benchmark": "tune",
        "quick": args.quick,
        "config": cfg
        | {
            "model": {"factory": f"edgedeploy.models.zoo:{ARCH}", **MODELS[ARCH]},
            "data": f"fashion-mnist: {len(arrays['y_train'])} training images (seeded subset), "
            f"the first {len(arrays['y_val'])} test images as validation",
            "target": device_info["target"],
            "max_accuracy_drop_pt": GOAL_MAX_DROP_PT,
        },
        "trials": cfg["trials"],
        "seconds": seconds,
        "seconds_by_step": {
            "train_fp32": round(trained_s, 1),
            "baselines": round(baselines_s, 1),
            "tune": tuned.get("bench_seconds"),
            "random_search": random.get("bench_seconds"),
        },
        "pareto": [slim(t) for t in tuned.get("pareto", [])],
        "best_under_1pt": best,
        "baselines": base_out,
        "random_search_best_under_1pt": rand,
        "side_by_side": final,
        "studies": {
            name: {
                "counts": r.get("counts"),
                "accuracy_floor": r.get("accuracy_floor"),
                "input_model": r.get("input_model"),
                "devices_used": r.get("devices", {}).get("used"),
                "messages": r.get("messages"),
                "candidates": sorted({t["candidate"] for t in r.get("trials", []) if t.get("candidate")}),
                "candidate_accuracy": candidate_accuracy(r),
            }
            for name, r in (("tuned", tuned), ("random", random))
        },
        "goals": {
            "speedup_vs_best_baseline_within_1pt": speedup,
            "best_baseline_within_1pt": best_baseline,
            "speedup_goal": GOAL_SPEEDUP,
            "speedup_met": speedup is not None and speedup >= GOAL_SPEEDUP,
            # Under the same constraint: faster by more than the tie margin (or random found nothing).
            "beats_random_search": bool(best and within(best))
            and not same_file
            and (not rand or not within(rand) or best["p50_ms"] < rand["p50_ms"] * (1 - TIE_MARGIN)),
            "tie_margin": TIE_MARGIN,
            "tuned_and_random_same_file": same_file,
            "random_over_tuned_p50": round(rand["p50_ms"] / best["p50_ms"], 3) if best and rand else None,
            "seconds_met": seconds <= GOAL_SECONDS,
        },
        "host_cpu_cores": os.cpu_count(),
        "host_loadavg_1m_before": round(load_before, 2),
        "host_loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    if args.group:
        doc["group"] = {
            **device_info,
            "measurements_per_device": tuned_devices,
            "both_devices_used": len([n for n, c in tuned_devices.items() if c > 0]) == 2,
        }
    json_out.write(json.dumps(doc, indent=2, default=str) + "\n")
    json_out.flush()


if __name__ == "__main__":
    main()
