"""How a `tune` result is shown: the Pareto table on the terminal and the HTML report in the tune
directory. The job (`edgedeploy.tune_job`) returns plain data; everything here only presents it.

The HTML report is one self-contained file (nothing loaded from anywhere: the chart is inline SVG
drawn by matplotlib, as `profiles report` draws its charts): a scatter of every measured trial,
accuracy against p50 latency, marker area proportional to the exported file's size, colour by
export; the Pareto front ringed in red, the recommended model starred, the accuracy floor dashed;
then a table of the front with its settings and a table of all trials (pruned and failed ones with
their reason). Each point is an SVG group with id `trial-N` (the front's rings `front-N`, the star
`recommended-N`), so a browser test can find them.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

from edgedeploy.fileinfo import write_bytes_atomic
from edgedeploy.profiles.report import CSS, colors_for, figure_svg, fmt_num, new_figure
from edgedeploy.tune.space import describe_settings

MAX_MARKER_AREA = 700.0  # points^2 of the largest file's marker
MIN_MARKER_AREA = 14.0  # a tiny file stays visible


def _measured(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in result["trials"] if t["state"] == "COMPLETE" and t.get("p50_ms") is not None]


def plot_front(result: dict[str, Any]) -> Any:
    """Accuracy vs p50 latency of every measured trial; None when nothing was measured."""
    from matplotlib.lines import Line2D

    measured = _measured(result)
    if not measured:
        return None
    exports = sorted({t["export"] for t in measured})
    colors = colors_for(exports)
    largest = max(t["size_bytes"] for t in measured)
    front = {t["number"] for t in result["pareto"]}
    recommended = (result.get("recommended") or {}).get("number")
    fig = new_figure(10, 6.2)
    ax = fig.add_subplot()

    def area(size: int) -> float:
        return max(MIN_MARKER_AREA, MAX_MARKER_AREA * size / largest)

    # One artist per trial (its gid becomes the SVG group's id); the largest drawn first so small
    # markers stay on top of big ones.
    for t in sorted(measured, key=lambda t: -t["size_bytes"]):
        ax.scatter(
            t["p50_ms"], 100 * t["accuracy"], s=area(t["size_bytes"]), color=colors[t["export"]],
            alpha=0.55, edgecolors="black", linewidths=0.4, zorder=3, gid=f"trial-{t['number']}",
        )  # fmt: skip
    on_front = sorted((t for t in measured if t["number"] in front), key=lambda t: t["p50_ms"])
    for t in on_front:
        ax.scatter(
            t["p50_ms"], 100 * t["accuracy"], s=area(t["size_bytes"]) + 120, facecolors="none",
            edgecolors="#d62728", linewidths=1.6, zorder=4, gid=f"front-{t['number']}",
        )  # fmt: skip
    if on_front:
        ax.plot(
            [t["p50_ms"] for t in on_front],
            [100 * t["accuracy"] for t in on_front],
            "--",
            color="#d62728",
            linewidth=1,
            zorder=2,
        )
    for t in measured:
        if t["number"] == recommended:
            ax.scatter(
                t["p50_ms"], 100 * t["accuracy"], marker="*", s=260, color="gold", edgecolors="black",
                linewidths=0.8, zorder=5, gid=f"recommended-{t['number']}",
            )  # fmt: skip
            ax.annotate(
                f"recommended (trial {t['number']})", (t["p50_ms"], 100 * t["accuracy"]),
                xytext=(8, -14), textcoords="offset points", fontsize=8,
            )  # fmt: skip
    floor = result.get("accuracy_floor")
    if floor is not None:
        ax.axhline(100 * floor, color="gray", linestyle=":", linewidth=1)
        ax.annotate(
            f"accuracy floor {100 * floor:.2f}%", (0.005, 100 * floor), xycoords=("axes fraction", "data"),
            xytext=(0, 3), textcoords="offset points", fontsize=8, color="gray",
        )  # fmt: skip
    latencies = [t["p50_ms"] for t in measured]
    if min(latencies) > 0 and max(latencies) / min(latencies) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("p50 latency per inference (ms, runner on the target)")
    ax.set_ylabel("accuracy of the exported file (%)")
    ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colors[e], markersize=8, label=e) for e in exports
    ]
    handles += [
        Line2D([], [], marker="o", linestyle="--", color="#d62728", markerfacecolor="none",
               label="Pareto front"),
        Line2D([], [], marker="*", linestyle="", color="gold", markeredgecolor="black", markersize=12,
               label="recommended"),
    ]  # fmt: skip
    ax.legend(
        handles=handles, loc="lower right", fontsize=8, title="marker area ∝ file size", title_fontsize=8
    )
    ax.set_title(
        f"{len(measured)} measured trials on {result['target']}: accuracy vs latency, size as marker area",
        fontsize=10,
    )
    return fig


def _settings_cell(t: dict[str, Any]) -> str:
    return html.escape(describe_settings(t.get("settings") or {}))


def _front_table(result: dict[str, Any]) -> str:
    head = (
        "<tr><th>trial</th><th>accuracy</th><th>p50 ms</th><th>p90 ms</th><th>size KB</th>"
        "<th>peak RSS MB</th><th>export</th><th>runtime</th><th>threads</th><th>device</th>"
        "<th>settings</th></tr>"
    )
    recommended = (result.get("recommended") or {}).get("number")
    rows = []
    for t in result["pareto"]:
        mark = " ★" if t["number"] == recommended else ""
        device = html.escape(str(t.get("device"))) + (
            ' <span class="emu">EMULATED</span>' if t.get("emulated") else ""
        )
        runtime = html.escape(str(t.get("runtime") or "auto"))
        rows.append(
            f'<tr id="front-row-{t["number"]}"><td>{t["number"]}{mark}</td>'
            f"<td>{fmt_num(t['accuracy'], '.4f')}</td>"
            f"<td>{fmt_num(t['p50_ms'])}</td><td>{fmt_num(t.get('p90_ms'))}</td>"
            f"<td>{fmt_num(t['size_bytes'] / 1000, '.1f')}</td>"
            f"<td>{fmt_num(t.get('peak_rss_mb'), '.1f')}</td>"
            f'<td class="l">{html.escape(t["export"])}</td><td class="l">{runtime}</td>'
            f'<td>{t["threads"]}</td><td class="l">{device}</td><td class="l">{_settings_cell(t)}</td></tr>'
        )
    return f'<table id="pareto-table">{head}{"".join(rows)}</table>'


def _all_table(result: dict[str, Any]) -> str:
    head = (
        "<tr><th>trial</th><th>state</th><th>candidate</th><th>export</th><th>runtime</th><th>threads</th>"
        "<th>device</th><th>accuracy</th><th>p50 ms</th><th>size KB</th><th>settings</th><th>note</th></tr>"
    )
    rows = []
    for t in result["trials"]:
        note = (
            t.get("error")
            or t.get("reason")
            or t.get("note")
            or (f"same recipe as trial {t['duplicate_of']}" if "duplicate_of" in t else "")
        )
        size = t.get("size_bytes")
        rows.append(
            f'<tr class="{t["state"].lower()}"><td>{t["number"]}</td><td class="l">{t["state"]}</td>'
            f'<td class="l">{html.escape(str(t.get("candidate") or ""))}</td>'
            f'<td class="l">{html.escape(str(t.get("export") or ""))}</td>'
            f'<td class="l">{html.escape(str(t.get("runtime") or ""))}</td>'
            f"<td>{t.get('threads') if t.get('threads') is not None else ''}</td>"
            f'<td class="l">{html.escape(str(t.get("device") or ""))}</td>'
            f"<td>{fmt_num(t.get('accuracy'), '.4f')}</td><td>{fmt_num(t.get('p50_ms'))}</td>"
            f"<td>{fmt_num(size / 1000 if size else None, '.1f')}</td>"
            f'<td class="l">{_settings_cell(t) if t.get("settings") else ""}</td>'
            f'<td class="l">{html.escape(str(note))}</td></tr>'
        )
    return f'<table id="trials-table">{head}{"".join(rows)}</table>'


def write_html(result: dict[str, Any], output: Path) -> Path:
    """Write the tune report (atomically) for a `tune` result; returns its path."""
    fig = plot_front(result)
    chart = (
        f'<div class="chart">{figure_svg(fig)}</div>'
        if fig is not None
        else '<p class="na">no trial was measured: nothing to plot</p>'
    )
    counts = result["counts"]
    emulated = sorted({str(t.get("device")) for t in _measured(result) if t.get("emulated")})
    banner = (
        f'<div class="banner"><b>Emulated targets:</b> {html.escape(", ".join(emulated))}. Their timings '
        'come from an emulator and are NOT device timings (<span class="emu">EMULATED</span>).</div>'
        if emulated
        else ""
    )
    rec = result.get("recommended")
    recheck = result.get("recheck") or {}
    rechecked = (
        f"; the {len(recheck['p50_ms'])} fastest variants re-timed side by side on "
        f"{html.escape(str(recheck['device']))}, tune.json's <code>recheck</code>"
        if recheck.get("chosen") is not None
        else ""
    )
    recommended = (
        f"<p>Recommended (the lowest p50 within the accuracy floor{rechecked}): "
        f"<b>trial {rec['number']}</b>, "
        f"{html.escape(rec['export'])} at {rec['threads']} threads, accuracy {rec['accuracy']:.4f}, "
        f"p50 {rec['p50_ms']:.3f} ms, {rec['size_bytes']:,} B; written to "
        f"<code>{html.escape(str((result.get('recommended_files') or {}).get('model', '')))}</code>.</p>"
        if rec
        else '<p class="bad">No measured model is within the accuracy floor.</p>'
    )
    used = ", ".join(f"{html.escape(n)} ×{c}" for n, c in result["devices"]["used"].items())
    aside = result["devices"].get("set_aside") or {}
    aside_note = (
        "; set aside: " + "; ".join(f"{html.escape(n)} ({html.escape(w)})" for n, w in aside.items())
        if aside
        else ""
    )
    messages = "".join(f"<li>{html.escape(m)}</li>" for m in result.get("messages") or [])
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    floor = result["accuracy_floor"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgedeploy tune report</title>
<style>{CSS}.chart svg{{max-width:100%;height:auto}} tr.pruned td,tr.fail td{{color:#888}}</style>
</head><body>
<h1>edgedeploy tune report</h1>
<p class="meta">{html.escape(str(result["model"]))} on {html.escape(str(result["target"]))};
data {html.escape(str(result.get("data")))}; objectives {html.escape(", ".join(result["objectives"]))};
study {html.escape(str(result["study"]["name"]))}; {result["seconds"]:g} s; generated {generated}.</p>
{banner}
<p>{counts["COMPLETE"]} measured, {counts["PRUNED"]} pruned (below the accuracy floor {floor:.4f}:
input model {result["input_model"]["accuracy"]:.4f} less {result["max_accuracy_drop_pct"]:g} points,
or a repeated recipe), {counts["FAIL"]} failed. Devices used: {used}{aside_note}.</p>
{recommended}
<h2>Accuracy vs latency (size as marker area)</h2>
<p class="note">Every measured trial; red rings: the Pareto front on
{html.escape(", ".join(result["objectives"]))}; ★ the recommended model. {len(_measured(result))} points.</p>
{chart}
<h2>Pareto front</h2>{_front_table(result)}
<h2>All trials</h2>{_all_table(result)}
{f"<h2>Messages</h2><ul>{messages}</ul>" if messages else ""}
</body></html>
"""
    write_bytes_atomic(output, page.encode())
    return output
