"""The `edgedeploy` command line: parses options, calls the Python API (`edgedeploy.api`) or a job, prints.

Keep this file thin and its imports cheap: every heavy framework is imported inside the command
that needs it, so `edgedeploy --help` answers instantly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from edgedeploy import present
from edgedeploy.errors import EdgeDeployError
from edgedeploy.options import (
    CompressOptions,
    ConvertOptions,
    DataOptions,
    FleetProfileOptions,
    ProfileOptions,
    PushOptions,
    RunOptions,
)
from edgedeploy.runner import provisionable_runtimes, supported_runtimes
from edgedeploy.shapes import shapes_by_name

app = typer.Typer(
    help="Compress, convert, push and profile neural networks on edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
targets_app = typer.Typer(help="List, show and probe deployment targets.", no_args_is_help=True)
fleet_app = typer.Typer(help="Profile models on many targets at once.", no_args_is_help=True)
profiles_app = typer.Typer(
    help="Query, compare, export and report stored device profiles.", no_args_is_help=True
)
emulator_app = typer.Typer(
    help="Build and run a QEMU arm64 Debian emulator as a target.", no_args_is_help=True
)
app.add_typer(targets_app, name="targets")
app.add_typer(fleet_app, name="fleet")
app.add_typer(profiles_app, name="profiles")
app.add_typer(emulator_app, name="emulator")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help="Target host or group from the inventory.")]
InventoryOpt = Annotated[
    Path | None,
    typer.Option("--inventory", "-i", help="Inventory YAML (Ansible style); merged over targets/."),
]
TrustNewOpt = Annotated[
    bool, typer.Option("--trust-new", help="Accept and record an unknown SSH host key (refused otherwise).")
]


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# --------------------------------------------------------------------------------------------------
# compress / convert / inspect
# --------------------------------------------------------------------------------------------------


@app.command()
def compress(
    model: Annotated[
        str, typer.Argument(help="Torch model: module:factory, TorchScript, .pt2 or state_dict file.")
    ],
    recipe: Annotated[
        Path | None,
        typer.Option("--recipe", "-r", help="Recipe YAML (default: prune -> distill -> cluster -> QAT)."),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for the compressed model and report.")
    ] = CompressOptions.output,
    arch: Annotated[
        str | None, typer.Option(help="Architecture name for a state_dict file (e.g. lenet300).")
    ] = None,
    dataset: Annotated[
        str,
        typer.Option(
            "--data",
            "--dataset",
            help="Training/validation data: mnist, fashion-mnist, digits; a folder of images "
            "(train/<class>/*.png and val/<class>/..., or <class>/... split by --val-fraction; images "
            "without class folders are unlabelled, for distillation only); an .npz with x_train, y_train, "
            "x_val, y_val; or module:factory returning (train, val) torch Datasets or DataLoaders.",
        ),
    ] = CompressOptions.data,
    train_samples: Annotated[int | None, typer.Option(help="Use only this many training samples.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = CompressOptions.seed,
    repeats: Annotated[
        int, typer.Option(help="Repeat the recipe N times; report mean and std accuracy.")
    ] = CompressOptions.repeats,
    teacher: Annotated[
        str | None,
        typer.Option(help="Distillation teacher (same forms as MODEL); default: the input model."),
    ] = None,
    teacher_arch: Annotated[
        str | None, typer.Option(help="Architecture name for a teacher state_dict file.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = CompressOptions.batch_size,
    workers: Annotated[
        int, typer.Option(help="DataLoader worker processes decoding images (0: in this process).")
    ] = CompressOptions.workers,
    input_size: Annotated[
        str | None,
        typer.Option(help="Image folders: resize every image to H,W (default: the first image's size)."),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(help="Image folders: 1 (grayscale) or 3 (RGB) (default: 1 if the first image is gray)."),
    ] = None,
    mean: Annotated[
        str | None,
        typer.Option(
            help="Normalise inputs as (x - mean) / std, one value or one per channel, e.g. "
            "0.485,0.456,0.406 (default: none, inputs are [0, 1] pixels). Give the values the model "
            "was trained with; the compressed model then expects normalised inputs too."
        ),
    ] = None,
    std: Annotated[
        str | None, typer.Option(help="Normalisation std, with --mean (e.g. 0.229,0.224,0.225).")
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Share held out for validation when the data has no val split.")
    ] = CompressOptions.val_fraction,
    latency_target: Annotated[
        str,
        typer.Option(
            help="Time the input's and each stage's exported ONNX file on this target with the runner "
            "(default: local, this host); 'none' skips timing."
        ),
    ] = str(CompressOptions.latency_target),  # the flag spells None as 'none'
    inventory: InventoryOpt = None,
    trust_new: TrustNewOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Compress a trained PyTorch model stage by stage (prune, distill, cluster, quantize, low-rank)."""
    from edgedeploy import api, compress_job

    options = CompressOptions(
        output=output,
        recipe=recipe,
        data=dataset,
        arch=arch,
        train_samples=train_samples,
        seed=seed,
        repeats=repeats,
        teacher=teacher,
        teacher_arch=teacher_arch,
        batch_size=batch_size,
        workers=workers,
        input_size=compress_job.parse_size(input_size),
        channels=channels,
        mean=compress_job.parse_floats(mean, "--mean"),
        std=compress_job.parse_floats(std, "--std"),
        val_fraction=val_fraction,
        latency_target=None if latency_target.lower() == "none" else latency_target,
        inventory=inventory,
        trust_new=trust_new,
        progress=not as_json,
    )
    result = api.compress(model, options=options)
    if as_json:
        present.json_doc(result.to_dict())
    else:
        present.compress(result)


@app.command()
def convert(
    model: Annotated[
        str, typer.Argument(help="Source model: torch (module:factory or file), .onnx, .keras/.h5, .tflite.")
    ],
    to: Annotated[str, typer.Option("--to", help="onnx or tflite.")] = ConvertOptions.to,
    precision: Annotated[
        str,
        typer.Option(
            help="fp32, fp16, int8-dynamic, int8, or auto (ONNX: int8 when faster than fp32 where timed, "
            "else fp32)."
        ),
    ] = ConvertOptions.precision,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file.")] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="Calibration data for int8: a .npy file or a directory of .npy files.")
    ] = None,
    int8_format: Annotated[
        str, typer.Option(help="ONNX int8 format: qdq, qoperator or auto.")
    ] = ConvertOptions.int8_format,
    arch: Annotated[str | None, typer.Option(help="Architecture name for a state_dict file.")] = None,
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            # --shape as on inspect, run and profile; --input-shape still accepted (its old name).
            "--shape",
            "--input-shape",
            help="Input shape, e.g. 1,3,224,224; NAME=1,3,224,224 per input (repeatable) for several.",
        ),
    ] = None,
    tolerance: Annotated[float | None, typer.Option(help="Max abs error allowed in verification.")] = None,
    verify_metric: Annotated[
        str,
        typer.Option(
            help="auto (inferred from the output), abs, classification, dense, sequence or regression."
        ),
    ] = ConvertOptions.verify_metric,
    verify_samples: Annotated[
        int, typer.Option(help="Inputs used to verify the conversion.")
    ] = ConvertOptions.verify_samples,
    threads: Annotated[
        int | None, typer.Option(help="Threads for timing the int8 auto candidates (default: all).")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", help="Time the int8 auto candidates on this target (default: here)."),
    ] = None,
    inventory: InventoryOpt = None,
    trust_new: TrustNewOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert to ONNX or TFLite and verify the result against the source model."""
    from edgedeploy import api

    options = ConvertOptions(
        to=to,
        precision=precision,
        output=output,
        calibration=calibration,
        int8_format=int8_format,
        arch=arch,
        input_shape=tuple(input_shape or ()),
        tolerance=tolerance,
        verify_metric=verify_metric,
        verify_samples=verify_samples,
        threads=threads,
        target=target,
        inventory=inventory,
        trust_new=trust_new,
    )
    result = api.convert(model, options=options)
    if as_json:
        present.json_doc(result.to_dict())
    else:
        present.convert(result)


@app.command()
def inspect(
    model: Annotated[Path, typer.Argument(help="A .onnx, .tflite or torch file.")],
    as_json: JsonOpt = False,
    shape: Annotated[
        list[str] | None,
        typer.Option("--shape", help="Input shape for MAC counts: NAME=1,1,512 (repeatable)."),
    ] = None,
) -> None:
    """Describe a model: inputs/outputs, ops, parameters, sparsity, sizes, quantization, runtimes."""
    from edgedeploy import api

    info = api.inspect(model, shapes_by_name(shape or []))
    if as_json:
        present.json_doc(info.to_dict())
    else:
        present.inspect(info)


# --------------------------------------------------------------------------------------------------
# targets / push / run / profile / provision
# --------------------------------------------------------------------------------------------------


@targets_app.command("list")
def targets_list(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:
    """List the targets and groups of the inventory."""
    from edgedeploy import targets_job

    rows = targets_job.list_targets(inventory)
    if as_json:
        present.json_doc([row.to_dict() for row in rows])
    else:
        present.targets(rows)


@targets_app.command("show")
def targets_show(name: str, inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:
    """Show one target's variables and cached facts."""
    from edgedeploy import targets_job

    info = targets_job.show_target(name, inventory)
    if as_json:
        present.json_doc(info.to_dict())
    else:
        present.target(info)


@targets_app.command("check")
def targets_check(
    name: str, inventory: InventoryOpt = None, trust_new: TrustNewOpt = False, as_json: JsonOpt = False
) -> None:
    """Connect to a target and probe arch, ISA features, RAM, disk, Python, runtimes, thermal, power."""
    from edgedeploy import targets_job

    facts = targets_job.check_target(name, inventory, trust_new=trust_new)
    if as_json:
        present.json_doc(facts.to_dict())
    else:
        present.facts(facts)


ChecksumOpt = Annotated[
    bool,
    typer.Option(
        "--checksum",
        help="Hash the device's copy to decide it is unchanged (as rsync -c), not its size and mtime.",
    ),
]


@app.command()
def push(
    file: Annotated[Path, typer.Argument(help="File to send (a model).")],
    target: TargetOpt = "local",
    inventory: InventoryOpt = None,
    trust_new: TrustNewOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would move, move nothing.")] = False,
    as_json: JsonOpt = False,
    checksum: ChecksumOpt = False,
) -> None:
    """Send a model (and the runner) to a target's work directory, verified by sha256."""
    from edgedeploy import api

    options = PushOptions(
        inventory=inventory, trust_new=trust_new, dry_run=dry_run, checksum=checksum, progress=not as_json
    )
    result = api.push(file, target, options)
    if as_json:
        present.json_doc(result.to_dict())
    else:
        present.push(result)
    if not result.ok:  # a group push where some target failed
        raise typer.Exit(1)


ShapeOpt = Annotated[
    list[str] | None, typer.Option("--shape", help="Fix a dynamic input shape: NAME=1,3,48,192 (repeatable).")
]


def _listed(names: list[str], last: str) -> str:
    """Names as one phrase for a help string: "a, b or c" when `last` is "or"."""
    return f"{', '.join(names[:-1])} {last} {names[-1]}" if len(names) > 1 else names[0]


RuntimeOpt = Annotated[
    str, typer.Option("--runtime", help=f"auto, {_listed(list(supported_runtimes()), 'or')}.")
]


def _npy_inputs(ctx: typer.Context, inputs: list[Path] | None) -> list[Path]:
    """`--inputs a.npy b.npy` as the interface reads: click options take one value each, so the files
    after the first arrive as extra arguments (in order)."""
    extra = [Path(arg) for arg in ctx.args]
    if extra and not inputs:
        fail(f"unexpected argument(s) {' '.join(ctx.args)} (inputs go after --inputs)")
    return [*(inputs or []), *extra]


EXTRA_ARGS = {"allow_extra_args": True}


@app.command(context_settings=EXTRA_ARGS)
def run(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A .onnx or .tflite model.")],
    target: TargetOpt = "local",
    inputs: Annotated[
        list[Path] | None,
        typer.Option("--inputs", help=".npy inputs in the model's input order: --inputs a.npy b.npy"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write each output as DIR/<output-name>.npy.")
    ] = None,
    runtime: RuntimeOpt = RunOptions.runtime,
    threads: Annotated[int | None, typer.Option(help="Inference threads (default: the target's).")] = None,
    shape: ShapeOpt = None,
    inventory: InventoryOpt = None,
    trust_new: TrustNewOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a model once on a target and fetch its outputs."""
    from edgedeploy import api

    options = RunOptions(
        inputs=_npy_inputs(ctx, inputs),
        out_dir=out,
        runtime=runtime,
        threads=threads,
        shapes=shapes_by_name(shape or []),
        inventory=inventory,
        trust_new=trust_new,
    )
    result = api.run(model, target, options)
    if as_json:
        present.json_doc(result.to_dict())
    else:
        present.run(result)


@app.command(context_settings=EXTRA_ARGS)
def profile(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A .onnx or .tflite model.")],
    target: TargetOpt = "local",
    runs: Annotated[int, typer.Option(help="Timed inferences (at least).")] = ProfileOptions.runs,
    warmup: Annotated[
        int, typer.Option(help="Untimed warm-up inferences (at least).")
    ] = ProfileOptions.warmup,
    min_seconds: Annotated[
        float, typer.Option(help="Keep timing past --runs until this long has passed (0: exactly --runs).")
    ] = ProfileOptions.min_seconds,
    warmup_seconds: Annotated[
        float, typer.Option(help="Keep warming up past --warmup this long.")
    ] = ProfileOptions.warmup_seconds,
    duration: Annotated[
        float | None, typer.Option(help="Run for this many seconds instead of --runs.")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Inference threads (default: the target's).")] = None,
    runtime: RuntimeOpt = ProfileOptions.runtime,
    repeats: Annotated[
        int, typer.Option(help="Repeat the whole measurement K times (fresh processes) and report spread.")
    ] = ProfileOptions.repeats,
    cores: Annotated[str | None, typer.Option(help="Pin to these cores, e.g. 0,1.")] = None,
    cooldown: Annotated[
        float, typer.Option(help="Seconds to rest between repeats.")
    ] = ProfileOptions.cooldown,
    inputs: Annotated[
        list[Path] | None, typer.Option("--inputs", help=".npy inputs instead of random ones.")
    ] = None,
    shape: ShapeOpt = None,
    raw: Annotated[bool, typer.Option("--raw", help="Keep every latency sample in the profile.")] = False,
    inventory: InventoryOpt = None,
    trust_new: TrustNewOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure latency, memory, thermal state and power on a target; store a device profile."""
    from edgedeploy import api

    options = ProfileOptions(
        runs=runs,
        warmup=warmup,
        min_seconds=min_seconds,
        warmup_seconds=warmup_seconds,
        duration=duration,
        threads=threads,
        runtime=runtime,
        repeats=repeats,
        cores=cores,
        cooldown=cooldown,
        inputs=_npy_inputs(ctx, inputs),
        shapes=shapes_by_name(shape or []),
        raw_samples=raw,
        inventory=inventory,
        trust_new=trust_new,
        progress=not as_json,
    )
    result = api.profile(model, target, options)
    if as_json:
        present.json_doc(result.to_dict())
    else:
        present.measured(result)


@app.command()
def provision(
    target: TargetOpt,
    runtime: Annotated[
        list[str] | None,
        typer.Option("--runtime", help=f"{_listed(list(provisionable_runtimes()), 'and/or')}."),
    ] = None,
    inventory: InventoryOpt = None,
    trust_new: TrustNewOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Install runtimes on a device WITHOUT internet: wheels fetched on the host, installed offline there."""
    from edgedeploy import provision_job

    result = provision_job.provision(
        target,
        runtime or list(provisionable_runtimes()),
        inventory=inventory,
        trust_new=trust_new,
    )
    if as_json:
        present.json_doc(result.to_dict())
    else:
        present.provision(result)


# --------------------------------------------------------------------------------------------------
# fleet / profiles
# --------------------------------------------------------------------------------------------------


@fleet_app.command("profile")
def fleet_profile(
    models: Annotated[list[Path], typer.Argument(help="Models to profile on every target.")],
    target: TargetOpt = "all",
    inventory: InventoryOpt = None,
    workers: Annotated[int, typer.Option(help="Targets worked on at once.")] = FleetProfileOptions.workers,
    runs: Annotated[int, typer.Option(help="Timed inferences per profile.")] = FleetProfileOptions.runs,
    warmup: Annotated[int, typer.Option(help="Warm-up inferences per profile.")] = FleetProfileOptions.warmup,
    timeout: Annotated[
        float, typer.Option(help="Seconds allowed per (target, model) job.")
    ] = FleetProfileOptions.timeout,
    retries: Annotated[
        int, typer.Option(help="Retries per job on transient failures.")
    ] = FleetProfileOptions.retries,
    resume: Annotated[str | None, typer.Option(help="Resume an interrupted fleet run by its id.")] = None,
    trust_new: TrustNewOpt = False,
    root: ProfilesDirOpt = None,
    as_json: JsonOpt = False,
    checksum: ChecksumOpt = False,
) -> None:
    """Profile every model on every target of a group, concurrently, isolating failures."""
    from edgedeploy import api

    options = FleetProfileOptions(
        inventory=inventory,
        workers=workers,
        runs=runs,
        warmup=warmup,
        timeout=timeout,
        retries=retries,
        resume=resume,
        trust_new=trust_new,
        profiles_dir=root,
        checksum=checksum,
        progress=not as_json,
    )
    result = api.fleet_profile(models, target, options)
    if as_json:
        present.json_doc(result.to_dict())
    else:
        present.fleet(result)
    raise typer.Exit(0 if not result.failures else 1)


ProfilesDirOpt = Annotated[
    Path | None,
    typer.Option("--dir", help="Profile store root (default: ./profiles or $EDGEDEPLOY_PROFILES)."),
]


@profiles_app.command("list")
def profiles_list(
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model (stem or sha256 prefix).")] = None,
    runtime: Annotated[str | None, typer.Option(help="Only this runtime.")] = None,
    since: Annotated[str | None, typer.Option(help="Only profiles at or after this ISO date/time.")] = None,
    root: ProfilesDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored profiles."""
    from edgedeploy import api

    found = api.list_profiles(root, target=target, model=model, runtime=runtime, since=since)
    if as_json:
        present.json_doc([row.to_dict() for row in found])
    else:
        present.profiles(found)


@profiles_app.command("show")
def profiles_show(profile_id: str, root: ProfilesDirOpt = None, as_json: JsonOpt = False) -> None:
    """Show one stored profile."""
    from edgedeploy import api

    profile = api.load_profile(profile_id, root)
    if as_json:
        present.json_doc(profile.to_dict())
    else:
        present.stored_profile(profile)


@profiles_app.command("compare")
def profiles_compare(a: str, b: str, root: ProfilesDirOpt = None, as_json: JsonOpt = False) -> None:
    """Compare two profiles; differences smaller than the measured spread are flagged as noise."""
    from edgedeploy import api

    compared = api.compare_profiles(a, b, root)
    if as_json:
        present.json_doc(compared.to_dict())
    else:
        present.comparison(compared)


@profiles_app.command("export")
def profiles_export(
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write a CSV file ('-' for stdout).")] = None,
    root: ProfilesDirOpt = None,
) -> None:
    """Export profiles as CSV."""
    from edgedeploy import profiles_job

    if csv_out is None:
        fail("profiles export needs --csv FILE (or --csv - for stdout)")
    present.exported(profiles_job.export_csv(root, csv_out))


@profiles_app.command("report")
def profiles_report(
    output: Annotated[Path, typer.Option("--output", "-o", help="Self-contained HTML report.")] = Path(
        "report.html"
    ),
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    png_dir: Annotated[
        Path | None, typer.Option("--png", help="Also write the plots as PNG files here.")
    ] = None,
    root: ProfilesDirOpt = None,
) -> None:
    """Write one self-contained HTML report with tables and plots."""
    from edgedeploy import profiles_job

    path = profiles_job.write_report(root, output, target=target, model=model, png_dir=png_dir)
    present.line(f"report written: {path}")


# --------------------------------------------------------------------------------------------------
# emulator / quickstart
# --------------------------------------------------------------------------------------------------


@emulator_app.command("build")
def emulator_build(
    suite: Annotated[str, typer.Option(help="Debian suite.")] = "bookworm",
    force: Annotated[bool, typer.Option(help="Rebuild even if a cached image exists.")] = False,
) -> None:
    """Build (or reuse) a bootable Debian arm64 disk image with sshd and python3."""
    from edgedeploy import emulator_job

    present.line(str(emulator_job.build(suite=suite, force=force)))


@emulator_app.command("start")
def emulator_start(
    name: Annotated[str, typer.Option(help="Instance name (also its target name).")] = "qemu-arm64",
    cpus: Annotated[int, typer.Option(help="Virtual CPUs.")] = 2,
    memory: Annotated[int, typer.Option(help="Memory in MiB.")] = 2048,
    suite: Annotated[str, typer.Option(help="Debian suite of the image.")] = "bookworm",
    kind: Annotated[
        str,
        typer.Option(
            help="vm: qemu-system-aarch64; chroot: the image's rootfs under qemu-user (SSH in ~2 s)."
        ),
    ] = "vm",
) -> None:
    """Boot an emulated arm64 device and add it to the inventory as a target."""
    from edgedeploy import emulator_job

    started = emulator_job.start(name, cpus=cpus, memory=memory, suite=suite, kind=kind)
    present.json_doc(started.to_dict())


@emulator_app.command("stop")
def emulator_stop(name: Annotated[str, typer.Option(help="Instance name.")] = "qemu-arm64") -> None:
    """Shut an emulator down (SSH poweroff, then kill by PID if needed)."""
    from edgedeploy import emulator_job

    present.emulator_stopped(emulator_job.stop(name))


@emulator_app.command("status")
def emulator_status(as_json: JsonOpt = False) -> None:
    """List emulator instances."""
    from edgedeploy import emulator_job

    rows = emulator_job.status()
    if as_json:
        present.json_doc([row.to_dict() for row in rows])
    else:
        present.emulator_instances(rows)


@app.command()
def quickstart(
    epochs: Annotated[int, typer.Option(help="Training epochs for the LeNet-300-100 baseline.")] = 10,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where models are written.")] = Path(
        "out/quickstart"
    ),
    target: TargetOpt = "local",
    runs: Annotated[int, typer.Option(help="Timed inferences per variant.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    train_samples: Annotated[
        int | None, typer.Option(help="Train on this many MNIST images (default: all 60k).")
    ] = None,
    inventory: InventoryOpt = None,
) -> None:
    """The whole path on one target: train LeNet-300-100 on MNIST, compress, convert, profile, report."""
    from edgedeploy import quickstart as quickstart_mod

    result = quickstart_mod.run(
        epochs=epochs,
        output=output,
        target=target,
        runs=runs,
        seed=seed,
        train_samples=train_samples,
        inventory=inventory,
    )
    present.quickstart(result)


@app.command()
def tune(
    model: Annotated[str, typer.Argument(help="Torch model: module:factory or state_dict/module file.")],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Labelled training/validation data, as `compress --data` takes it (mnist, fashion-mnist, "
            "digits, an image folder, an .npz, module:factory).",
        ),
    ],
    target: TargetOpt = "local",
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Tune directory: study, trial files, recommended model.")
    ] = Path("out/tune"),
    trials: Annotated[
        int, typer.Option(help="Trained candidates in the study (a resumed study counts what it holds).")
    ] = 10,
    max_accuracy_drop: Annotated[
        float,
        typer.Option(help="Accuracy points the recommended model may lose against the input model."),
    ] = 1.0,
    objectives: Annotated[
        str, typer.Option(help="Comma-separated: accuracy, latency, size, peak_memory, energy.")
    ] = "accuracy,latency,size",
    space: Annotated[
        Path | None, typer.Option(help="Search space YAML (default: edgedeploy/tune/default_space.yaml).")
    ] = None,
    study: Annotated[
        str, typer.Option(help="Study name in DIR/study.db; the same name resumes an interrupted tune.")
    ] = "tune",
    arch: Annotated[str | None, typer.Option(help="Architecture name for a state_dict file.")] = None,
    runs: Annotated[int, typer.Option(help="Timed inferences per profile.")] = 50,
    eval_samples: Annotated[
        int, typer.Option(help="Validation inputs each exported file is scored on.")
    ] = 2000,
    train_samples: Annotated[int | None, typer.Option(help="Use only this many training samples.")] = None,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = DataOptions.batch_size,
    seed: Annotated[int, typer.Option(help="Random seed (sampler and training).")] = 0,
    profiles_dir: Annotated[
        Path | None, typer.Option(help="Profile store for every trial's profile (default: DIR/profiles).")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(help="Train candidates as Ray tasks: `local` (a Ray instance here) or an address."),
    ] = None,
    ray_parallel: Annotated[
        int | None, typer.Option(help="With --ray: candidates training at once (default: cluster CPUs).")
    ] = None,
    sampler: Annotated[
        str, typer.Option(help="Optuna sampler: auto (= tpe: multi-objective TPE), tpe, nsga2, random.")
    ] = "auto",
    inventory: InventoryOpt = None,
    trust_new: TrustNewOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Search recipes, export formats and threads for the best accuracy/latency/size on the target."""
    from edgedeploy import tune_job

    say = present.stderr_lines() if not as_json else (lambda _m: None)
    tuned = tune_job.run(
        tune_job.TuneOptions(
            model=model, data=data, target=target, output=output, trials=trials,
            max_accuracy_drop=max_accuracy_drop, objectives=objectives, space=space, study=study,
            arch=arch, seed=seed, runs=runs, eval_samples=eval_samples, train_samples=train_samples,
            inventory=inventory, trust_new=trust_new, profiles_dir=profiles_dir, ray=ray,
            ray_parallel=ray_parallel, sampler=sampler,
            data_options=DataOptions(batch_size=batch_size), say=say,
        )
    )  # fmt: skip
    if as_json:
        present.json_doc({k: v for k, v in tuned.to_dict().items() if k != "trials"})
    else:
        present.tune(tuned)


def main() -> None:
    """Console entry point: every user-facing failure becomes one line on stderr and an exit code."""
    try:
        app()
    except EdgeDeployError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - last line of defence against tracebacks
        if os.environ.get("EDGEDEPLOY_DEBUG"):
            raise
        typer.echo(f"error: {type(err).__name__}: {err} (set EDGEDEPLOY_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)
