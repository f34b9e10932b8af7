"""`profiles report`: one self-contained HTML file (plots embedded as base64 PNG) people can look at.

Sections: a summary table of the latest profile per (target, variant, runtime); latency distribution
per target and variant; the size / accuracy / latency Pareto front across compression variants per
target; memory and energy per inference (estimated energy hatched and labelled); throttle and thermal
flags. Emulated targets are marked everywhere ("EMULATED": their timings are not device timings).
`--png DIR` also writes each plot as a PNG file.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedeploy.errors import UsageError
from edgedeploy.fileinfo import write_bytes_atomic
from edgedeploy.profiles.index import list_profiles
from edgedeploy.profiles.store import (
    accuracy_of,
    profiles_root,
    read_profile_file,
    throttle_flags,
    warn,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EMULATED_MARK = " [EMULATED]"


@dataclass(frozen=True)
class Entry:
    """The latest profile of one (target, variant, runtime), with what the report needs from it."""

    doc: dict[str, Any]
    count: int  # how many stored profiles of this (target, variant, runtime) there are

    @property
    def target(self) -> str:
        return str(self.doc["target"]["name"])

    @property
    def variant(self) -> str:
        return str(self.doc["model"]["name"])

    @property
    def runtime(self) -> str:
        return str((self.doc.get("runtime") or {}).get("name") or "?")

    @property
    def emulated(self) -> bool:
        return bool(self.doc.get("emulated") or self.doc["target"].get("emulated"))

    @property
    def target_label(self) -> str:
        return self.target + (EMULATED_MARK if self.emulated else "")

    @property
    def label(self) -> str:
        return f"{self.target_label} · {self.variant} ({self.runtime})"

    @property
    def latency(self) -> dict[str, Any]:
        return self.doc.get("latency_ms") or {}

    @property
    def size_kib(self) -> float | None:
        size = self.doc["model"].get("size_bytes")
        return size / 1024 if size else None

    @property
    def accuracy(self) -> float | None:
        return accuracy_of(self.doc)

    @property
    def peak_rss_mb(self) -> float | None:
        return (self.doc.get("memory") or {}).get("peak_rss_mb")

    @property
    def power(self) -> dict[str, Any]:
        return self.doc.get("power") or {}


def latest_entries(rows: list[dict[str, Any]]) -> list[Entry]:
    """Group summary rows by (target, variant, runtime); load the newest file of each group."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:  # rows come oldest first
        groups.setdefault((row["target"], row["model"], row["runtime"] or "?"), []).append(row)
    entries = []
    for key in sorted(groups):
        newest = groups[key][-1]
        try:
            doc = read_profile_file(Path(newest["path"]))
        except ValueError as exc:  # changed since indexed
            warn(f"skipped corrupt profile {newest['path']}: {exc} (file left in place)")
            continue
        entries.append(Entry(doc, len(groups[key])))
    return entries


def pareto_front(points: Sequence[tuple[float, float, float | None]]) -> list[int]:
    """Indices of the points no other point dominates: smaller size, lower latency, higher accuracy.

    Accuracy takes part only when every point has one; otherwise the front is on size and latency.
    """
    use_accuracy = all(p[2] is not None for p in points)

    def dominates(a: tuple[float, float, float | None], b: tuple[float, float, float | None]) -> bool:
        no_worse = a[0] <= b[0] and a[1] <= b[1]
        better = a[0] < b[0] or a[1] < b[1]
        if use_accuracy:
            assert a[2] is not None and b[2] is not None
            no_worse = no_worse and a[2] >= b[2]
            better = better or a[2] > b[2]
        return no_worse and better

    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points if q is not p)]


# --------------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------------


def new_figure(width: float, height: float) -> Figure:
    # Figure() without pyplot: no global state, no GUI backend, safe in any thread.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def colors_for(names: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _style_emulated_ticks(ax: Any) -> None:
    for tick in ax.get_yticklabels():
        if EMULATED_MARK.strip() in tick.get_text():
            tick.set_color("#b00020")


def plot_latency(entries: list[Entry]) -> Figure | None:
    rows = [e for e in entries if e.latency.get("p50") is not None]
    if not rows:
        return None
    rows.sort(key=lambda e: (e.target_label, e.latency["p50"]))
    colors = colors_for(sorted({e.target_label for e in rows}))
    fig = new_figure(10, 1.2 + 0.42 * len(rows))
    ax = fig.add_subplot()
    for y, entry in enumerate(rows):
        lat, color = entry.latency, colors[entry.target_label]
        lo, hi = lat.get("min", lat["p50"]), lat.get("max", lat["p50"])
        ax.plot([lo, hi], [y, y], color=color, linewidth=1)
        ax.plot([lat["p50"], lat.get("p90", lat["p50"])], [y, y], color=color, linewidth=7, alpha=0.6)
        ax.plot(lat["p50"], y, "o", color="black", markersize=4)
        if lat.get("p99") is not None:
            ax.plot(lat["p99"], y, "D", color=color, markeredgecolor="black", markersize=5)
    ax.set_yticks(range(len(rows)), [e.label for e in rows])
    _style_emulated_ticks(ax)
    ax.invert_yaxis()
    values = [v for e in rows for v in (e.latency.get("min"), e.latency.get("max")) if v]
    if values and max(values) / max(min(values), 1e-9) > 30:
        ax.set_xscale("log")
    ax.set_xlabel("latency per inference (ms)")
    ax.set_title("Latency: thin line min–max, thick bar p50–p90, ● p50, ◆ p99")
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_pareto(entries: list[Entry]) -> Figure | None:
    by_target: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.size_kib and entry.latency.get("p50") is not None:
            by_target.setdefault(entry.target_label, []).append(entry)
    if not by_target:
        return None
    accuracies = [e.accuracy for group in by_target.values() for e in group if e.accuracy is not None]
    cols = min(3, len(by_target))
    nrows = -(-len(by_target) // cols)
    fig = new_figure(max(4.6 * cols + 1.2, 8.0), 3.8 * nrows + 0.4)
    axes = fig.subplots(nrows, cols, squeeze=False)
    scatter = None
    for ax, (name, group) in zip(axes.flat, sorted(by_target.items()), strict=False):
        sizes = [e.size_kib or 0.0 for e in group]
        lats = [e.latency["p50"] for e in group]
        accs = [e.accuracy for e in group]
        front = pareto_front(list(zip(sizes, lats, accs, strict=True)))
        known = [i for i, a in enumerate(accs) if a is not None]
        unknown = [i for i, a in enumerate(accs) if a is None]
        if known:
            scatter = ax.scatter(
                [sizes[i] for i in known],
                [lats[i] for i in known],
                c=[accs[i] for i in known],
                cmap="viridis",
                vmin=min(accuracies),
                vmax=max(accuracies),
                s=60,
                zorder=3,
            )
        if unknown:
            ax.scatter(
                [sizes[i] for i in unknown],
                [lats[i] for i in unknown],
                facecolors="none",
                edgecolors="gray",
                s=60,
                zorder=3,
                label="accuracy unknown",
            )
            ax.legend(loc="upper left", fontsize=7)
        ordered = sorted(front, key=lambda i: sizes[i])
        ax.plot([sizes[i] for i in ordered], [lats[i] for i in ordered], "--", color="#d62728", zorder=2)
        ax.scatter(
            [sizes[i] for i in front],
            [lats[i] for i in front],
            s=170,
            facecolors="none",
            edgecolors="#d62728",
            linewidths=1.5,
            zorder=4,
        )
        for i, entry in enumerate(group):
            ax.annotate(
                entry.variant, (sizes[i], lats[i]), xytext=(5, 4), textcoords="offset points", fontsize=7
            )
        ax.set_xscale("log")
        ax.set_xlabel("model size (KiB)")
        ax.set_ylabel("p50 latency (ms)")
        ax.set_title(name, color="#b00020" if EMULATED_MARK in name else "black", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(by_target) :]:
        ax.set_visible(False)
    if scatter is not None:
        fig.colorbar(scatter, ax=axes, label="accuracy", shrink=0.8)
    fig.suptitle(
        "Pareto front (red rings, dashed line):\nno other variant is smaller, faster and more accurate",
        fontsize=10,
    )
    return fig


def plot_memory_energy(entries: list[Entry]) -> Figure | None:
    if not entries:
        return None
    rows = sorted(entries, key=lambda e: (e.target_label, e.variant))
    colors = colors_for(sorted({e.target_label for e in rows}))
    fig = new_figure(11, 1.4 + 0.42 * len(rows))
    mem_ax, energy_ax = fig.subplots(1, 2, sharey=True)
    ys = list(range(len(rows)))
    mem_ax.barh(ys, [e.peak_rss_mb or 0.0 for e in rows], color=[colors[e.target_label] for e in rows])
    mem_ax.set_xlabel("peak RSS (MB)")
    mem_ax.set_title("Memory: peak resident set of the runner")
    for y, entry in zip(ys, rows, strict=True):
        energy = entry.power.get("energy_per_inference_mj")
        if energy is None:
            energy_ax.text(0, y, " n/a (no sensors, no power model)", va="center", fontsize=7, color="gray")
            continue
        estimated = entry.power.get("source") != "measured"
        energy_ax.barh(
            y,
            energy,
            color=colors[entry.target_label],
            hatch="//" if estimated else None,
            edgecolor="black",
            linewidth=0.5,
            alpha=0.6 if estimated else 1.0,
        )
    energy_ax.set_xlabel("mJ per inference (hatched: ESTIMATED)")
    energy_ax.set_title("Energy per inference")
    mem_ax.set_yticks(ys, [e.label for e in rows])
    _style_emulated_ticks(mem_ax)
    mem_ax.invert_yaxis()
    for ax in (mem_ax, energy_ax):
        ax.grid(axis="x", alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def figure_svg(fig: Figure) -> str:
    """The figure as an inline `<svg>` element: text stays text (searchable, selectable) and ids are
    stable from run to run; an artist's `gid` becomes its group's `id`, so a page or a test can find
    the points."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "edgedeploy"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # without the XML prolog and DOCTYPE: it goes inside HTML


def fmt_num(value: Any, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, int | float) and not isinstance(value, bool) else "–"


def _summary_table(entries: list[Entry]) -> str:
    head = (
        "<tr><th>target</th><th>variant</th><th>format</th><th>runtime</th><th>size KiB</th>"
        "<th>accuracy</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>init ms</th>"
        "<th>peak RSS MB</th><th>energy mJ</th><th>profiles</th></tr>"
    )
    body = []
    for e in entries:
        target = html.escape(e.target) + (' <span class="emu">EMULATED</span>' if e.emulated else "")
        energy = fmt_num(e.power.get("energy_per_inference_mj"))
        if e.power.get("source") == "estimated":
            energy += ' <span class="est">estimated</span>'
        body.append(
            "<tr>"
            f'<td class="l">{target}</td><td class="l">{html.escape(e.variant)}</td>'
            f'<td class="l">{html.escape(str(e.doc["model"].get("format")))}</td>'
            f'<td class="l">{html.escape(e.runtime)}</td>'
            f"<td>{fmt_num(e.size_kib, '.1f')}</td><td>{fmt_num(e.accuracy, '.4f')}</td>"
            f"<td>{fmt_num(e.latency.get('p50'))}</td><td>{fmt_num(e.latency.get('p90'))}</td>"
            f"<td>{fmt_num(e.latency.get('p99'))}</td><td>{fmt_num(e.doc.get('init_ms'), '.1f')}</td>"
            f"<td>{fmt_num(e.peak_rss_mb, '.1f')}</td><td>{energy}</td><td>{e.count}</td>"
            "</tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _thermal_table(entries: list[Entry]) -> str:
    rows = []
    for e in entries:
        flags = throttle_flags(e.doc)
        if flags:
            state = '<span class="bad">THROTTLED</span> ' + html.escape(", ".join(flags))
        elif e.doc.get("thermal"):
            state = '<span class="ok">no throttling seen</span>'
        else:
            state = '<span class="na">no thermal data recorded</span>'
        rows.append(f'<tr><td class="l">{html.escape(e.label)}</td><td class="l">{state}</td></tr>')
    head = "<tr><th>target · variant</th><th>throttle / thermal flags</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1200px}
h1{margin-bottom:4px} .meta{color:#666;margin-top:0}
table{border-collapse:collapse;margin:12px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#f4f4f4}
td.l{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:8px 0}
.emu{background:#b00020;color:#fff;border-radius:3px;padding:0 4px;font-size:11px}
.est{color:#8a6d00;font-size:11px} .bad{color:#b00020;font-weight:bold} .ok{color:#2e7d32} .na{color:#888}
.banner{background:#fff3f3;border-left:4px solid #b00020;padding:8px 12px;margin:12px 0}
.note{color:#555;font-size:13px}
"""


def write_report(
    root: Path | None,
    output: Path,
    *,
    target: str | None = None,
    model: str | None = None,
    png_dir: Path | None = None,
) -> Path:
    """Write the HTML report (atomically) for the profiles matching the filters; returns its path."""
    base = profiles_root(root)
    rows = list_profiles(base, target=target, model=model)
    entries = latest_entries(rows)
    if not entries:
        filters = ", ".join(f"{k}={v}" for k, v in (("target", target), ("model", model)) if v)
        raise UsageError(f"no profiles under {base}" + (f" match {filters}" if filters else ""))

    figures = {
        "latency_distribution": plot_latency(entries),
        "pareto_size_accuracy_latency": plot_pareto(entries),
        "memory_energy": plot_memory_energy(entries),
    }
    images = {name: _png(fig) for name, fig in figures.items() if fig is not None}
    if png_dir is not None:
        for name, data in images.items():
            write_bytes_atomic(png_dir / f"{name}.png", data)

    def img(name: str, alt: str) -> str:
        if name not in images:
            return f'<p class="na">{html.escape(alt)}: no data</p>'
        data = base64.b64encode(images[name]).decode()
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    emulated = sorted({e.target for e in entries if e.emulated})
    banner = (
        f'<div class="banner"><b>Emulated targets:</b> {html.escape(", ".join(emulated))}. '
        "Their timings come from an emulator and are NOT device timings; they are marked "
        '<span class="emu">EMULATED</span> in tables and red in plots.</div>'
        if emulated
        else ""
    )
    missing_accuracy = sum(e.accuracy is None for e in entries)
    accuracy_note = (
        f"{missing_accuracy} of {len(entries)} variants carry no accuracy (profiles may add "
        "<code>model.accuracy</code> or a <code>quality</code> dict); where any variant of a target lacks "
        "it, that target's front is on size and latency only."
        if missing_accuracy
        else "Every variant carries an accuracy: the front is on size, latency and accuracy."
    )
    estimated = any(e.power.get("source") == "estimated" for e in entries)
    estimated_note = "Hatched bars are ESTIMATED from the target's power model (no power sensors)."
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgedeploy profile report</title>
<style>{CSS}</style></head><body>
<h1>edgedeploy profile report</h1>
<p class="meta">{len(rows)} profiles under {html.escape(str(base))}; latest of {len(entries)}
(target, variant, runtime) combinations shown; generated {generated}.</p>
{banner}
<h2>Summary</h2>{_summary_table(entries)}
<h2>Latency distribution per target and variant</h2>{img("latency_distribution", "latency distribution")}
<h2>Size vs accuracy vs latency: Pareto front across variants</h2>
<p class="note">{accuracy_note}</p>{img("pareto_size_accuracy_latency", "Pareto front")}
<h2>Memory and energy per inference</h2>
<p class="note">{estimated_note if estimated else ""}</p>{img("memory_energy", "memory and energy")}
<h2>Throttle and thermal flags</h2>{_thermal_table(entries)}
</body></html>
"""
    write_bytes_atomic(output, page.encode())
    return output
