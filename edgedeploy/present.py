"""Everything the `edgedeploy` command prints on stdout: one function per verb's result.

The CLI calls a job (through `edgedeploy.api` where a script can call the verb too), gets a typed
result from `edgedeploy.results`, and hands it to the function here: `json_doc(result.to_dict())`
for `--json`, the verb's own function for the tables. Jobs and packages print nothing on stdout;
what they say while they work (progress bars, one-line steps) goes to stderr through the
`progress`/`say` callback the CLI gives them, so that stdout is always exactly the result.

Rich is imported inside each function: importing this module costs nothing, and `--help` stays
instant.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgedeploy.results import (
        Comparison,
        CompressResult,
        ConvertResult,
        EmulatorInstance,
        EmulatorStopped,
        FleetResult,
        ModelInfo,
        Profile,
        ProfilesExport,
        ProfileSummary,
        ProvisionResult,
        PushResult,
        QuickstartResult,
        RunResult,
        TargetFacts,
        TargetInfo,
        TargetRow,
        TuneResult,
    )


Say = Callable[[str], None]
"""How a job reports progress: one call per line, shown on stderr (never on stdout)."""


def json_doc(doc: Any) -> None:
    """The `--json` output of every verb: one document, indented."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")


def line(text: str) -> None:
    """One plain line on stdout (a path written, an instance stopped)."""
    sys.stdout.write(text + "\n")


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _acc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# --------------------------------------------------------------------------------------------------
# compress / convert / inspect
# --------------------------------------------------------------------------------------------------


def compress(compressed: CompressResult) -> None:
    from rich.console import Console
    from rich.table import Table

    result = compressed.to_dict()
    console = Console()
    table = Table(title=f"compress {result['model']}")
    for column in ("stage", "seconds", "accuracy", "params", "non-zeros", "MACs", "unique (max)"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    # Measured on each stage's exported ONNX file (output/stages/), not on the torch model.
    files = Table(title="each stage's exported ONNX file")
    for column in ("stage", "file bytes", "DC bytes", "accuracy", "p50 ms"):
        files.add_column(column, justify="left" if column == "stage" else "right")
    start = result["summary"]["input_file"]
    latency = result.get("latency") or {}
    rows = [("input", start, latency.get("input_ms_p50"))]
    for report in result["stages"]:
        table.add_row(
            report["stage"],
            f"{report['seconds']:.1f}",
            f"{_acc(report['accuracy_before'])} -> {_acc(report['accuracy_after'])}",
            f"{report['params_after']:,}",
            f"{report['nonzeros_after']:,}",
            f"{report['macs_after']:,}",
            str(max((layer["unique"] for layer in report["layers"]), default=0)),
        )
        rows.append((report["stage"], report, report.get("latency_ms_p50")))
    for name, entry, p50 in rows:
        files.add_row(
            name,
            f"{entry['file_bytes']:,}",
            f"{entry['deep_compression_bytes']:,}",
            _acc(entry["file_accuracy"]),
            "-" if p50 is None else f"{p50:.3f}",
        )
    console.print(table)
    console.print(files)
    s = result["summary"]
    console.print(
        f"fp32 {s['fp32_bytes']:,} B -> Deep-Compression format {s['deep_compression_bytes']:,} B: "
        f"[bold]{s['rate']:.1f}x[/bold] ({s['rate_definition']})"
    )
    console.print(
        f"deployable ONNX {s['deployable_bytes']:,} B, zipped {s['zipped_bytes']:,} B "
        f"({s['zipped_rate']:.1f}x); weight sparsity {s['weight_sparsity']:.1%}"
    )
    console.print(f"exported ONNX: {s['survival']['onnx']['verdict']}")
    if result.get("latency"):
        lat = result["latency"]
        console.print(
            f"latency p50 {lat['input_ms_p50']:.3f} ms (input) -> {lat['final_ms_p50']:.3f} ms "
            f"({lat['where']})"
        )
    r = result["repeats"]
    if r["n"] > 1 and r["accuracy_mean"] is not None:
        console.print(
            f"final accuracy over {r['n']} runs: {r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f}"
        )
    else:
        console.print(f"accuracy {_acc(s['accuracy_before'])} -> {_acc(s['accuracy_after'])}")
    console.print("files: " + ", ".join(result["files"].values()))
    for warning in result.get("warnings", []):
        console.print(f"[yellow]note: {warning}[/yellow]")


def convert(converted: ConvertResult) -> None:
    from rich.console import Console
    from rich.table import Table

    result = converted.to_dict()
    verification = result["verification"]
    table = Table(title=f"{result['source']} -> {result['output']}", show_header=False)
    table.add_row(
        "format",
        f"{result['format']} {result['precision']}"
        + (f" ({result['int8_format']})" if "int8_format" in result else ""),
    )
    table.add_row(
        "size",
        f"{result['size_bytes'] / 1024:.1f} KiB"
        + (f" (fp32 {result['fp32_size_bytes'] / 1024:.1f} KiB)" if result.get("fp32_size_bytes") else ""),
    )
    for item in result["inputs"]:
        table.add_row(f"input {item['name']}", str(item["shape"]))
    table.add_row("layout", result["layout"])
    table.add_row("verified on", f"{verification['samples']} inputs: {verification['inputs']}")
    table.add_row("verify metric", f"{verification['metric']} ({verification['metric_reason']})")
    table.add_row("passes when", verification.get("criterion", "-"))
    table.add_row(
        "max / mean abs error",
        f"{verification['max_abs_error']:.4g} / {verification['mean_abs_error']:.4g}"
        f" (tolerance {verification['tolerance']:.4g})",
    )
    if verification.get("top1_agreement") is not None:
        table.add_row("top-1 agreement", f"{verification['top1_agreement']:.1%}")
    if "accuracy" in verification:
        table.add_row(
            "accuracy", f"{verification['accuracy']:.1%} (source {verification['source_accuracy']:.1%})"
        )
    for key, label in (
        ("top5_agreement", "top-5 agreement"),
        ("iou", "IoU (thresholded map)"),
        ("psnr_db", "PSNR dB"),
        ("step_agreement", "per-step agreement"),
        ("relative_error", "relative error"),
    ):
        if verification.get(key) is not None:
            table.add_row(label, f"{verification[key]:.4g}")
    if "opset_upgrade" in result:
        upgrade = result["opset_upgrade"]
        table.add_row("opset", f"upgraded {upgrade['from']} -> {upgrade['to']} before quantizing")
    if "int8_selection" in result:
        label = "precision choice" if result.get("precision_requested") == "auto" else "int8 format choice"
        table.add_row(label, result["int8_selection"]["reason"])
    for warning in result.get("warnings", []):
        table.add_row("[bold red]WARNING[/]", warning)
    checked = result["preflight"]
    table.add_row(
        "pre-flight",
        f"{checked['ops_checked']} op types checked against {checked['converter']}: all supported",
    )
    table.add_row(
        "time", ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in result["seconds"].items())
    )
    for note in result["notes"]:
        table.add_row("note", note)
    Console().print(table)


def inspect(model: ModelInfo) -> None:
    from rich.console import Console
    from rich.table import Table

    info = model.to_dict()
    console = Console()
    summary = Table(title=f"{info['file']} ({info['format']})", show_header=False)
    summary.add_row("size", f"{info['size_bytes']:,} bytes, zipped {info['zipped_bytes']:,}")
    summary.add_row(
        "parameters",
        f"{info['parameters']:,} ({info['nonzero_parameters']:,} non-zero, sparsity {info['sparsity']:.1%})",
    )
    summary.add_row(
        "unique values",
        f"{info['unique_values']:,} (at most {info['max_unique_values_per_tensor']:,} in one tensor)",
    )
    if info.get("macs") is not None:
        summary.add_row("MACs / FLOPs", f"{info['macs']:,} / {info['flops']:,} ({info['macs_note']})")
    elif info.get("macs_note"):
        summary.add_row("MACs / FLOPs", info["macs_note"])
    summary.add_row("layout", str(info["layout"]))
    quant = info["quantization"]
    per_channel = "yes" if quant["per_channel"] else "no"
    summary.add_row(
        "quantization", f"{quant['scheme']}; per-channel: {per_channel}; weights {quant['weight_dtypes']}"
    )
    for runtime, verdict in info["runtimes"].items():
        summary.add_row(f"runtime {runtime}", verdict)
    console.print(summary)
    io_table = Table(title="inputs / outputs")
    for column in ("", "name", "shape", "dtype"):
        io_table.add_column(column)
    for role in ("inputs", "outputs"):
        for item in info[role]:
            io_table.add_row(role[:-1], str(item["name"]), str(item["shape"]), str(item["dtype"]))
    console.print(io_table)
    if info["ops"]:
        op_table = Table(title="ops")
        op_table.add_column("op")
        op_table.add_column("count", justify="right")
        for op, count in info["ops"].items():
            op_table.add_row(op, str(count))
        console.print(op_table)


# --------------------------------------------------------------------------------------------------
# targets / push / run / profile / provision
# --------------------------------------------------------------------------------------------------


def targets(rows: list[TargetRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="targets")
    for column in ("name", "connection", "address", "groups", "arch", "runtime", "threads", "checked"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name + (" (emulated)" if row.emulated else ""),
            row.connection,
            row.address,
            ", ".join(row.groups),
            row.arch or "?",
            row.runtime,
            str(row.threads or "-"),
            row.checked_at or "never",
        )
    Console().print(table)


def target(info: TargetInfo) -> None:
    from rich.console import Console
    from rich.table import Table

    doc = info.to_dict()
    table = Table(title=f"target {doc['name']}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key in ("connection", "address", "python", "workdir"):
        table.add_row(key, str(doc[key]))
    table.add_row("groups", ", ".join(doc["groups"]))
    for key, value in doc["vars"].items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    Console().print(table)
    if info.facts is not None:
        facts(info.facts)
    else:
        line(f"no facts cached yet: run `edgedeploy targets check {doc['name']}`")


def facts(checked: TargetFacts) -> None:
    from rich.console import Console
    from rich.table import Table

    facts = checked.to_dict()
    isa = ", ".join(k for k, v in facts.get("isa", {}).items() if v) or "none of the tracked ones"
    runtimes = ", ".join(
        f"{name} {info['version']}"
        for name, info in facts.get("runtimes", {}).items()
        if info.get("available")
    )
    zones = facts.get("thermal_zones") or []
    thermal = ", ".join(f"{z['type']} {z['temp_c']:.0f}°C" for z in zones if z.get("temp_c") is not None)
    power = ", ".join(s.get("name") or s["kind"] for s in facts.get("power_sensors") or [])
    cpufreq = facts.get("cpufreq") or {}
    rows = [
        ("arch", facts.get("arch")),
        ("cpu", facts.get("cpu_model")),
        ("isa features", isa),
        ("cores", f"{facts.get('cores')} ({facts.get('cores_usable')} usable)"),
        ("ram", f"{facts.get('ram_mb')} MiB ({facts.get('ram_available_mb')} MiB available)"),
        ("free disk", f"{facts.get('disk_free_mb')} MiB in {facts.get('workdir')}"),
        ("os", f"{facts.get('os')} (kernel {facts.get('kernel')})"),
        ("python", f"{facts.get('python')} ({facts.get('python_path')})"),
        ("runtimes", runtimes or "none importable: see `edgedeploy provision`"),
        ("governor", ", ".join(cpufreq.get("governors") or []) or "n/a"),
        ("thermal", thermal or "no thermal zones"),
        ("power sensors", power or "none (power will be estimated)"),
    ]
    table = Table(title=f"facts: {facts.get('target')} ({facts.get('checked_at')})", show_header=False)
    table.add_column("fact", style="bold")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


def push(pushed: PushResult) -> None:
    _push_doc(pushed.to_dict())


def _push_doc(result: dict[str, Any]) -> None:
    if "group" in result:
        for row in result["targets"]:
            print(f"[{row['target']}] ", end="")
            if "error" in row:
                print(f"error: {row['error']}")
            else:
                _push_doc(row)
        return
    if result.get("dry_run"):
        if result["skipped"]:
            print(f"unchanged, would skip: {result['remote_path']} (sha256 {result['sha256'][:12]})")
        else:
            resume = f", resuming after {result['resume_from']} bytes" if result["resume_from"] else ""
            print(f"would send {result['would_send_bytes']} bytes -> {result['remote_path']}{resume}")
        runner = result.get("runner")
        if runner:
            print(f"runner: {'unchanged' if runner['skipped'] else 'would send'} {runner['remote_path']}")
        return
    if result["skipped"]:
        print(f"unchanged: {result['remote_path']} (0 bytes sent)")
    else:
        resumed = f", resumed after {result['resumed_from']} bytes" if result.get("resumed_from") else ""
        print(
            f"pushed {result['sent_bytes']} bytes -> {result['remote_path']} "
            f"(sha256 {result['sha256'][:12]} verified on the device{resumed})"
        )
    if "manifest" in result:
        print(f"manifest: {result['manifest']}")


def run(result: RunResult) -> None:
    from rich.console import Console

    doc = result.to_dict()
    console = Console()
    console.print(f"[bold]{doc['model']['path']}[/] on {doc['target']['name']} with {doc['runtime']['name']}")
    for out in doc["outputs"]:
        where = doc["written"].get(out["name"], "(not written; use --out DIR)")
        console.print(f"  {out['name']}: shape {out['shape']} {out['dtype']} -> {where}")


def measured(profile: Profile) -> None:
    """The `profile` verb's summary of the measurement it just made (one row of statistics, the
    repeats' spread, power, and every reason the numbers may not be clean)."""
    from rich.console import Console
    from rich.table import Table

    doc = profile.to_dict()
    lat = doc["latency_ms"]
    table = Table(title=f"{doc['model']['name']} on {doc['target']['name']} ({doc['runtime'].get('name')})")
    for col in ("n", "mean", "std", "p50", "p90", "p99", "init", "first", "peak RSS", "energy/inf"):
        table.add_column(col, justify="right")
    power = doc["power"]
    energy = (
        f"{power['energy_per_inference_mj']:.3f} mJ ({power['source']})"
        if "energy_per_inference_mj" in power
        else "n/a"
    )
    table.add_row(
        str(lat["n"]),
        *(f"{lat[k]:.3f} ms" for k in ("mean", "std", "p50", "p90", "p99")),
        f"{doc['init_ms']:.1f} ms",
        f"{doc['first_inference_ms']:.2f} ms",
        f"{doc['memory']['peak_rss_mb']:.1f} MB",
        energy,
    )
    console = Console()
    console.print(table)
    spread = doc.get("repeat_spread")
    if spread:
        console.print(
            f"{spread['repeats']} repeats: p50 {spread['p50_mean_ms']:.3f} ms +- {spread['p50_std_ms']:.3f} "
            f"(CV {spread['p50_cv']:.1%}, range {spread['p50_min_ms']:.3f}-{spread['p50_max_ms']:.3f} ms)"
        )
    console.print(f"power: {power['source']} ({power['method']})")
    for note in doc.get("notes") or []:
        console.print(f"note: {note}")
    if doc.get("contended"):
        waiting = ((doc.get("cpu") or {}).get("scheduler") or {}).get("waiting_fraction", 0)
        console.print(
            "[yellow]other processes held the CPU during the runs (waited "
            f"{waiting:.0%} of the time in the representative repeat): "
            "latency includes that wait; cpu_time_ms does not[/]"
        )
    if doc.get("throttled"):
        reasons = "; ".join((doc.get("thermal") or {}).get("reasons") or ["in another repeat"])
        console.print(f"[red]the device was throttling during the runs: {reasons}[/]")
    if doc.get("emulated"):
        console.print("[yellow]emulated target: these timings are NOT device timings[/]")
    console.print(f"profile: {doc['path']}")


def provision(provisioned: ProvisionResult) -> None:
    result = provisioned.to_dict()
    sent_mb = result["sent_bytes"] / 1e6
    platforms = ", ".join(result["platforms"])
    line(f"{result['target']}: {result['arch']}, Python {result['python']} ({platforms})")
    line(f"  wheels: {len(result['wheels'])} ({sent_mb:.1f} MB sent, unchanged ones skipped)")
    for name, version in result["installed"].items():
        line(f"  {name} {version}")
    line(f"  interpreter: {result['interpreter']} (recorded as ansible_python_interpreter)")
    line("  seconds: " + ", ".join(f"{k} {v}" for k, v in result["seconds"].items()))


# --------------------------------------------------------------------------------------------------
# fleet / profiles
# --------------------------------------------------------------------------------------------------


def fleet(result: FleetResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fleet run {result.run_id} on {result.group}")
    for col in ("target", "model", "status", "p50 ms", "time s", "profile / error"):
        table.add_column(col, overflow="fold")
    for row in result.rows:
        status = "[green]ok[/]" if row.ok else "[red]error[/]"
        if row.resumed:
            status += " (resumed)"
        table.add_row(
            row.target + (" [yellow](emulated)[/]" if row.emulated else ""),
            Path(row.model).name,
            status,
            f"{row.p50_ms:.3f}" if isinstance(row.p50_ms, float) else "-",
            f"{row.seconds:.1f}",
            row.profile_path or row.error or "",
        )
    console = Console()
    console.print(table)
    summary = f"{result.succeeded} ok, {result.failed} failed in {result.wall_s:.1f} s"
    console.print(f"{summary}; journal {result.journal}")


def profiles(rows: list[ProfileSummary]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("no profiles")
        return
    table = Table(title=f"{len(rows)} profiles")
    table.add_column("id", overflow="fold")  # ids are typed back into `show`: wrap, never cut
    for col in ("runtime", "size", "p50 ms", "p99 ms", "peak RSS MB", "energy mJ", "flags"):
        table.add_column(col, justify="right")
    for row in rows:
        flags = [f for f, on in (("emulated", row.emulated), ("throttled", row.throttled)) if on]
        table.add_row(
            row.id,
            _fmt(row.runtime),
            f"{row.size_bytes / 1024:.1f} KiB" if row.size_bytes else "-",
            _fmt(row.p50_ms),
            _fmt(row.p99_ms),
            _fmt(row.peak_rss_mb, ".1f"),
            _fmt(row.energy_mj) + (" (est.)" if row.power_source == "estimated" else ""),
            ", ".join(flags),
        )
    console.print(table)


def stored_profile(profile: Profile) -> None:
    """`profiles show`: every field of one stored profile, one per row."""
    from rich.console import Console
    from rich.table import Table

    from edgedeploy.profiles.store import throttle_flags

    doc = profile.to_dict()
    console = Console()
    lat = doc.get("latency_ms") or {}
    runtime = doc.get("runtime") or {}
    title = f"{doc['model']['name']} on {doc['target']['name']} ({runtime.get('name', '?')})"
    table = Table(title=title, show_header=False)
    table.add_column("field")
    table.add_column("value")
    model = doc["model"]
    rows: list[tuple[str, Any]] = [
        ("created", doc.get("created")),
        ("model", f"{model.get('path')} ({model.get('format')}, {model.get('size_bytes')} B)"),
        ("sha256", doc["model"].get("sha256")),
        ("runtime", f"{runtime.get('name')} {runtime.get('version')} threads={runtime.get('threads')}"),
        ("accuracy", profile.accuracy),
        ("init / first", f"{_fmt(doc.get('init_ms'))} ms / {_fmt(doc.get('first_inference_ms'))} ms"),
    ]
    stats = ("n", "mean", "std", "min", "p50", "p90", "p99", "max")
    rows += [(f"latency {k} (ms)" if k != "n" else "latency n", _fmt(lat.get(k))) for k in stats]
    power = doc.get("power") or {}
    rows += [
        ("peak RSS MB", _fmt((doc.get("memory") or {}).get("peak_rss_mb"), ".1f")),
        ("energy/inf mJ", f"{_fmt(power.get('energy_per_inference_mj'))} ({power.get('source', 'n/a')})"),
        ("throttle flags", ", ".join(throttle_flags(doc)) or "none seen"),
        ("path", doc.get("path")),
    ]
    for key, value in rows:
        table.add_row(key, _fmt(value))
    console.print(table)
    if doc.get("emulated"):
        console.print("[yellow]emulated target: these timings are NOT device timings[/]")


def comparison(compared: Comparison) -> None:
    from rich.console import Console
    from rich.table import Table

    doc = compared.to_dict()
    console = Console()
    console.print(f"A: {doc['a']['path']}\nB: {doc['b']['path']}")
    for note in doc["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    table = Table(title="B relative to A")
    for col in ("metric", "A", "B", "delta", "delta %", "spread", "verdict"):
        table.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
    for row in doc["metrics"]:
        if row["noise"] is True:
            verdict = "[dim]noise (within spread)[/]"
        elif row["better"] is None:
            verdict = "same"
        else:
            verdict = f"[green]{row['better'].upper()} better[/]"
            if row["noise"] is None:
                verdict += " [dim](no spread measured)[/]"
        pct = row["delta_pct"]
        table.add_row(
            f"{row['metric']} ({row['unit']})" if row["unit"] else row["metric"],
            f"{row['a']:.4g}",
            f"{row['b']:.4g}",
            f"{row['delta']:+.4g}",
            f"{pct:+.1f}%" if pct is not None else "-",
            f"±{row['spread']:.3g}" if row["spread"] is not None else "-",
            verdict,
        )
    console.print(table)


def exported(export: ProfilesExport) -> None:
    """`profiles export`: the CSV itself on stdout for `--csv -`, else a count on stderr (stdout
    stays empty, as for a file written by a redirect)."""
    if export.text is not None:
        sys.stdout.write(export.text)
    else:
        sys.stderr.write(f"{export.rows} profiles -> {export.path}\n")


# --------------------------------------------------------------------------------------------------
# emulator / tune
# --------------------------------------------------------------------------------------------------


def emulator_instances(rows: list[EmulatorInstance]) -> None:
    if not rows:
        line("no emulator instances (start one: edgedeploy emulator start)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="emulator instances (timings on these targets are emulated, not device timings)")
    columns = [
        "name",
        "kind",
        "state",
        "pid",
        "ssh",
        "cpus",
        "memory_mb",
        "suite",
        "started_at",
        "boot_seconds",
    ]
    for column in columns:
        table.add_column(column)
    for row in rows:
        doc = row.to_dict()
        table.add_row(*("" if doc[c] is None else str(doc[c]) for c in columns))
    Console().print(table)


def emulator_stopped(stopped: EmulatorStopped) -> None:
    line(f"{stopped.name}: {stopped.how}")


def tune(tuned: TuneResult) -> None:
    """The Pareto front as a table, the counts, the recommended model and where the report is."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edgedeploy.tune.space import describe_settings

    result = tuned.to_dict()
    # Piped into a file or a CI log, rich would wrap the settings column at 80 characters.
    console = Console(width=None if sys.stdout.isatty() else 180)
    for message in result["messages"]:
        # escape: a message's own brackets ("[trial 3]") would otherwise be taken as rich markup
        console.print(f"[yellow]{escape(message)}[/]", highlight=False)
    table = Table(title=f"Pareto front on {result['target']} ({', '.join(result['objectives'])})")
    columns = (
        "trial", "accuracy", "p50 ms", "size KB", "peak MB", "export", "runtime", "threads", "device",
        "settings",
    )  # fmt: skip
    for column in columns:
        left = column in ("export", "runtime", "device", "settings")
        table.add_column(column, justify="left" if left else "right")
    for t in result["pareto"]:
        table.add_row(
            str(t["number"]),
            f"{t['accuracy']:.4f}",
            f"{t['p50_ms']:.3f}",
            f"{t['size_bytes'] / 1000:.1f}",
            "n/a" if t.get("peak_rss_mb") is None else f"{t['peak_rss_mb']:.1f}",
            t["export"],
            str(t.get("runtime") or "auto"),
            str(t["threads"]),
            t["device"] + (" (emulated)" if t.get("emulated") else ""),
            describe_settings(t["settings"]),
        )
    console.print(table)
    counts = result["counts"]
    console.print(
        f"{counts['COMPLETE']} measured, {counts['PRUNED']} pruned (below accuracy floor "
        f"{result['accuracy_floor']:.4f}), {counts['FAIL']} failed; devices used: "
        + ", ".join(f"{name} x{n}" for name, n in result["devices"]["used"].items())
    )
    rec = result["recommended"]
    console.print(
        f"recommended: trial {rec['number']} {rec['export']} ({rec.get('runtime') or 'auto'}) at "
        f"{rec['threads']} threads, accuracy {rec['accuracy']:.4f} (input "
        f"{result['input_model']['accuracy']:.4f}), p50 {rec['p50_ms']:.3f} ms, {rec['size_bytes']:,} B "
        f"-> {result['recommended_files']['model']}"
    )
    recheck = result.get("recheck") or {}
    if recheck.get("chosen") is not None:
        console.print(
            f"chosen after re-timing the {len(recheck['p50_ms'])} fastest variants side by side on "
            f"{recheck['device']} ({recheck['statistic']}): "
            + ", ".join(f"trial {n} {ms:.3f} ms" for n, ms in recheck["p50_ms"].items())
        )
    elif recheck.get("skipped"):
        console.print(f"recheck: {recheck['skipped']}")
    if result.get("report"):
        console.print(f"report: {result['report']}")


def quickstart(result: QuickstartResult) -> None:
    """The quickstart's closing table, its compression figures and where everything went."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows, summary = result.variants, result.doc["compression"]
    table = Table(title=f"LeNet-300-100 on '{result.target}' (batch 1, 1 thread)", box=box.SIMPLE_HEAD)
    for col in ("variant", "KB", "zip KB", "accuracy", "p50 µs", "p95 µs", "RSS MB"):
        table.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    for row in rows:
        table.add_row(
            row["variant"],
            f"{row['size_bytes'] / 1024:,.1f}",
            f"{row['zipped_bytes'] / 1024:,.1f}",
            f"{row['accuracy']:.2%}" if row["accuracy"] is not None else "n/a",
            f"{row['latency_p50_ms'] * 1000:,.1f}",
            f"{row['latency_p95_ms'] * 1000:,.1f}",
            f"{row['peak_rss_mb']:.0f}",
        )
    console.print(table)
    console.print("base = trained model, comp = after the compression recipe; KB = file size")
    if any(r["emulated"] for r in rows):
        console.print("[yellow]emulated target: timings are not device timings[/]")
    # The Deep-Compression-style storage figures, with the rate's definition stated.
    survived = all(v.get("survived", False) for v in (summary.get("survival") or {}).values())
    console.print(
        f"compression: {summary['fp32_bytes'] / 1024:,.1f} KB fp32 -> "
        f"{summary['deep_compression_bytes'] / 1024:,.1f} KB in Deep-Compression format "
        f"= {summary['rate']:.1f}x ({summary['rate_definition']}); "
        f"sparsity {summary['weight_sparsity']:.0%}, "
        f"accuracy (validation) {summary['accuracy_before']:.2%} -> {summary['accuracy_after']:.2%}; "
        f"sparsity and clusters {'survived' if survived else 'did NOT survive'} in the exported ONNX weights"
    )
    profiles = Path(rows[0]["profile"]).parents[2]
    console.print(f"models and summary in {result.output}/, profiles under {profiles}/")
    console.print(f"finished in {result.doc['timings_s']['total_s']:.0f} s")


# --------------------------------------------------------------------------------------------------
# stderr: what a job says while it works (stdout stays the result)
# --------------------------------------------------------------------------------------------------


def stderr_lines() -> Say:
    """Progress as plain lines on stderr (tune's steps, fleet's run id, the emulator's build)."""

    def say(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    return say


def dim_lines() -> Say:
    """Progress as dimmed lines on stderr (compress's stages and epochs)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    return lambda message: console.print(f"[dim]{escape(message)}[/dim]", highlight=False)


@contextmanager
def transfer_bar(description: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (bytes, throughput, time left) fed by (done, total) calls; gone when
    the transfer ends."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)


class TargetsProgress:
    """One progress line per target on stderr (fleet): a bar of its jobs and its current status."""

    def __init__(self, totals: dict[str, int], done: dict[str, int]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description:<20}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(stderr=True),
        )
        self._tasks = {
            name: self._progress.add_task(name, total=total, completed=done.get(name, 0), status="queued")
            for name, total in totals.items()
        }

    def status(self, target: str, text: str) -> None:
        self._progress.update(self._tasks[target], status=text)

    def advance(self, target: str) -> None:
        self._progress.advance(self._tasks[target])

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()
