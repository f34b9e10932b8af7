"""The `tune` HTML report (edgedeploy/tune/report.py): self-contained, inline SVG, rendered by real
headless Chromium. Torch-free: it is built from a `tune` result document, as the job returns it."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from edgedeploy.tune.report import write_html

SETTINGS_OFF = {"structured_amount": 0.0, "sparsity": 0.0, "cluster": 0, "distill": False, "epochs": 1.0}


def _trial(number: int, export: str, accuracy: float, p50: float | None, size: int, **extra: Any) -> dict:
    state = "COMPLETE" if p50 is not None else "PRUNED"
    trial = {
        "number": number,
        "state": state,
        "candidate": f"c{number // 4:03d}",
        "export": export,
        "accuracy": accuracy,
        "size_bytes": size,
        "settings": {**SETTINGS_OFF, "structured_amount": 0.25 * (number // 4)},
        "recipe": [],
    }
    if p50 is not None:
        trial.update(
            p50_ms=p50, p90_ms=p50 * 1.1, threads=1, device="dev-a", runtime="onnxruntime", peak_rss_mb=40.0
        )
    else:
        trial["reason"] = f"accuracy {accuracy:.4f} < floor 0.9000"
    trial.update(extra)
    return trial


def sample_result() -> dict[str, Any]:
    trials = [
        _trial(0, "onnx-fp32", 0.93, 2.0, 900_000),
        _trial(1, "onnx-int8-qdq", 0.925, 0.9, 260_000),
        _trial(2, "tflite-int8", 0.92, 0.7, 250_000, device="dev-b", emulated=True, runtime="ai-edge-litert"),
        _trial(3, "onnx-fp16", 0.93, 3.5, 450_000),  # dominated by trial 0 (slower, bigger, no better)
        _trial(4, "onnx-int8-dynamic", 0.85, None, 240_000),  # below the floor: pruned, not measured
        {"number": 5, "state": "FAIL", "error": "training failed: cannot prune this graph", "settings": {}},
    ]
    front = [trials[2], trials[1], trials[0]]
    return {
        "model": "zoo:mobilenetv2",
        "data": "fashion-mnist (1000 train / 200 val)",
        "target": "pair",
        "devices": {"used": {"dev-a": 3, "dev-b": 1}, "set_aside": {"dev-dead": "unreachable"}},
        "study": {"name": "tune", "storage": "study.db", "interrupted_trials": []},
        "objectives": ["accuracy", "latency", "size"],
        "input_model": {"accuracy": 0.93, "size_bytes": 900_000},
        "accuracy_floor": 0.92,
        "max_accuracy_drop_pct": 1.0,
        "seconds": 12.5,
        "counts": {"COMPLETE": 4, "PRUNED": 1, "FAIL": 1},
        "pareto": front,
        "recommended": trials[2],
        "recommended_files": {"model": "out/recommended.tflite"},
        "messages": ["device dev-dead set aside: unreachable"],
        "trials": trials,
    }


def test_report_is_self_contained_inline_svg(tmp_path: Path) -> None:
    page = write_html(sample_result(), tmp_path / "report.html").read_text()
    assert page.count("<svg") == 1 and "data:image" not in page
    assert not re.search(r'(src|href)="(https?:|//|file:)', page), "the report must not load anything"
    assert "<script" not in page
    # Every measured trial is a point, the front ringed, the recommended one starred; the pruned
    # and failed trials are in the table with their reason.
    assert sorted(re.findall(r'<g id="trial-(\d+)"', page)) == ["0", "1", "2", "3"]
    assert sorted(re.findall(r'<g id="front-(\d+)"', page)) == ["0", "1", "2"]
    assert re.findall(r'<g id="recommended-(\d+)"', page) == ["2"]
    assert "accuracy 0.8500 &lt; floor" in page and "cannot prune this graph" in page
    assert "Emulated targets:</b> dev-b" in page and "dev-dead (unreachable)" in page
    assert "marker area ∝ file size" in page  # svg.fonttype none: the chart's text stays text


def test_report_with_nothing_measured_still_lists_the_trials(tmp_path: Path) -> None:
    result = sample_result()
    result["trials"] = [t for t in result["trials"] if t["state"] != "COMPLETE"]
    result.update(pareto=[], recommended=None, recommended_files={})
    page = write_html(result, tmp_path / "report.html").read_text()
    assert "no trial was measured" in page and "No measured model is within the accuracy floor" in page
    assert '<tr class="pruned">' in page and '<tr class="fail">' in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_dom(page: Path) -> str:
    """The DOM after real headless Chromium loaded and laid out the page (--dump-dom)."""
    with tempfile.TemporaryDirectory() as profile_dir:
        proc = subprocess.run(
            [
                str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile_dir}", "--dump-dom", page.resolve().as_uri(),
            ],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    return proc.stdout


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    report = write_html(sample_result(), tmp_path / "report.html")
    dom = chromium_dom(report)
    # Chromium parsed the inline SVG as SVG (its serializer writes the namespace on the element) and
    # the points, rings, star and tables are in the live document.
    assert re.search(r'<svg[^>]*xmlns="http://www.w3.org/2000/svg"', dom)
    assert sorted(re.findall(r'<g id="trial-(\d+)"', dom)) == ["0", "1", "2", "3"]
    assert sorted(re.findall(r'<g id="front-(\d+)"', dom)) == ["0", "1", "2"]
    assert re.findall(r'<g id="recommended-(\d+)"', dom) == ["2"]
    assert len(re.findall(r'<tr id="front-row-\d+"', dom)) == 3
    assert dom.count('<tr class="complete">') == 4
    assert "<title>edgedeploy tune report</title>" in dom
