"""`profiles report`: one self-contained HTML file with embedded plots; rendered by headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from edgedeploy.errors import UsageError
from edgedeploy.profiles.report import pareto_front, write_report
from edgedeploy.profiles.store import write_profile
from tests.support.cli import run_cli
from tests.support.fleet import profile_doc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VARIANTS = [  # name, size bytes, accuracy, p50 ms
    ("lenet_fp32", 1_070_000, 0.981, 0.90),
    ("lenet_int8", 270_000, 0.979, 0.35),
    ("lenet_pruned_int8", 90_000, 0.975, 0.30),
    ("lenet_dominated", 500_000, 0.950, 0.80),
]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "profiles"
    for t, (target, emulated) in enumerate((("pi5", False), ("qemu-arm64", True))):
        for i, (name, size, acc, p50) in enumerate(VARIANTS):
            doc = profile_doc(
                f"2026-06-0{t + 1}T10:00:0{i}.000000Z",
                target,
                name,
                p50=p50 * (3 if emulated else 1),
                emulated=emulated,
                model={"size_bytes": size},
                quality={"accuracy": acc},
                power={"source": "estimated" if emulated else "measured"},
                thermal={"throttled_now": True} if (target, name) == ("pi5", "lenet_int8") else None,
            )
            write_profile(doc, root)
    # a variant without accuracy on a third target, and a corrupt file
    mystery = profile_doc("2026-06-03T10:00:00.000000Z", "jetson", "mystery", thermal={"zones": {}})
    write_profile(mystery, root)
    (root / "jetson" / "broken.json").write_text("{nope")
    return root


def test_pareto_front_on_size_latency_and_accuracy() -> None:
    points = [(v[1], v[3], v[2]) for v in VARIANTS]
    assert pareto_front(points) == [0, 1, 2]  # fp32 stays: nothing is as accurate
    # without accuracy for every variant the front is on size and latency only
    assert pareto_front([(p[0], p[1], None) for p in points]) == [2]
    assert pareto_front([(1.0, 1.0, None), (1.0, 1.0, None)]) == [0, 1]  # ties dominate nothing


def test_report_is_self_contained_with_every_section(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = write_report(store, tmp_path / "out" / "report.html", png_dir=tmp_path / "png")
    page = out.read_text()
    assert f"skipped corrupt profile {store / 'jetson' / 'broken.json'}" in capsys.readouterr().err
    for heading in (
        "Latency distribution per target and variant",
        "Pareto front across variants",
        "Memory and energy per inference",
        "Throttle and thermal flags",
    ):
        assert heading in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert not re.search(r'(src|href)="(https?:|//|file:)', page), "the report must not load anything"
    assert "Emulated targets:</b> qemu-arm64" in page and page.count('class="emu"') >= 4
    assert "THROTTLED</span> thermal.throttled_now=True" in page
    assert "no thermal data recorded" in page and "no throttling seen" in page
    assert "1 of 9 variants carry no accuracy" in page
    assert "estimated</span>" in page
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert pngs == ["latency_distribution.png", "memory_energy.png", "pareto_size_accuracy_latency.png"]
    assert all((tmp_path / "png" / p).read_bytes().startswith(PNG_MAGIC) for p in pngs)


def test_filters_and_empty_selection(store: Path, tmp_path: Path) -> None:
    page = write_report(store, tmp_path / "pi5.html", target="pi5").read_text()
    assert "qemu-arm64" not in page and "lenet_pruned_int8" in page
    with pytest.raises(UsageError, match="no profiles under .* match target=nowhere"):
        write_report(store, tmp_path / "none.html", target="nowhere")
    assert not (tmp_path / "none.html").exists()


def test_cli_report(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    proc = run_cli("profiles", "report", "--dir", str(store), "-o", str(out), "--model", "lenet_int8")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"report written: {out}"
    assert "lenet_int8" in out.read_text() and "lenet_fp32" not in out.read_text()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(store: Path, tmp_path: Path) -> None:
    import matplotlib.image

    report = write_report(store, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile_dir:
        subprocess.run(
            [
                str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile_dir}", f"--screenshot={shot}",
                "--window-size=1280,2400", report.resolve().as_uri(),
            ],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip
    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[:2] == (2400, 1280)
    # Rendered content, not a blank page: plenty of non-white pixels, and the red EMULATED badge.
    rgb = pixels[..., :3]
    assert (rgb.mean(axis=2) < 0.9).mean() > 0.05
    badge = (rgb[..., 0] > 0.6) & (rgb[..., 1] < 0.1) & (rgb[..., 2] < 0.2)
    assert badge.sum() > 100
