"""The benchmark programs keep running: small smoke runs, results checked, never timings."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import cuda_usable

ROOT = Path(__file__).resolve().parents[1]


def _run(args, out):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", *args, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = list(Path(out).glob("*.json"))
    assert len(files) == 1
    return proc.stdout, json.loads(files[0].read_text())


@pytest.mark.slow
def test_raster_benchmark_runs_and_reports_every_row(tmp_path):
    stdout, result = _run(["raster", "--size", "1280", "--repeats", "1"], tmp_path)
    for row in ("bandwidth probe", "ours mean", "datashader raster mean", "ours all stats",
                "zoom 1% window", "bf16", "float16", "extra memory"):
        assert row in stdout, row
    assert result["rows"] and all(row["error"] is None for row in result["rows"]), result["rows"]


@pytest.mark.slow
@pytest.mark.parametrize("suite,size", [("points", "2000000"), ("series", "200000"),
                                        ("hist", "1000000")])
def test_family_benchmarks_run(tmp_path, suite, size):
    _, result = _run([suite, "--size", size, "--repeats", "1"], tmp_path)
    assert result["rows"] and all(row["error"] is None for row in result["rows"]), result["rows"]


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")
def test_gpu_check_smoke_under_the_simulator(tmp_path):
    stdout, result = _run(["gpu", "--sim-smoke"], tmp_path)
    assert result["status"] == 0, result["errors"]
    assert result["correctness"]["calls"] > 0
    assert result["correctness"]["failed"] == 0
    assert "mismatches" in stdout


@pytest.mark.slow
def test_views_benchmark_reports_latency_and_bytes(tmp_path):
    # dv.scatter lives in dlviz_gpu/views/points.py; without it the scatter rows are skipped
    scatter = (ROOT / "dlviz_gpu" / "views" / "points.py").exists()
    args = ["views", "--size", "512", "--points", "100000", "--repeats", "2"]
    _, result = _run(args + ([] if scatter else ["--no-scatter"]), tmp_path)
    rows = {row["name"]: row for row in result["rows"]}
    assert all(row["error"] is None for row in result["rows"]), result["rows"]
    views = ["heatmap 512^2 full view", "heatmap 1% window (51^2 cells)",
             "heatmap deep zoom (40 x 30 cells)"]
    if scatter:
        views += ["scatter 1e+05 points full view", "scatter 1e+05 points 1% window"]
        assert rows["scatter bytes, 1e+05 vs 1e+04 points full view"]["value"] > 0
    for view in views:
        update = rows[f"{view}: update"]
        assert update["time_s"] > 0 and update["value"] > 0, update
        times = update["extra"]["timing"]["times_s"]
        assert len(times) == 2 and all(t > 0 for t in times)
        split = (rows[f"{view}:   view aggregation"]["time_s"]
                 + rows[f"{view}:   HoloViews + Bokeh"]["time_s"])
        assert 0 < split
        for kind in ("CDS arrays", "PATCH-DOC"):
            b = rows[f"{view}: bytes ({kind})"]
            assert b["extra"]["bytes"] > 0 and b["extra"]["canvas_bytes"] == 800 * 600 * 4
            assert b["value"] == b["extra"]["bytes"] / (800 * 600 * 4)
        # the PATCH-DOC message carries at least the arrays of the source
        assert (rows[f"{view}: bytes (PATCH-DOC)"]["extra"]["bytes"]
                >= rows[f"{view}: bytes (CDS arrays)"]["extra"]["bytes"])
    # deep zoom: an image of the visible cells only (40 x 30), far below the canvas
    deep = rows["heatmap deep zoom (40 x 30 cells): update"]["extra"]["timing"]
    assert deep["canvas"] == [40, 30]
    assert rows["heatmap deep zoom (40 x 30 cells): bytes (CDS arrays)"]["value"] < 0.05
    # the profiled rows say where the time went
    prof = rows["heatmap 512^2 full view: update"]["extra"]["profile"]
    assert prof["events"] == 5 and sum(prof["share_by_module"].values()) == pytest.approx(1.0)
    assert any(k.startswith("kernels/") for k in prof["own_s_per_event_by_module"])
    assert result["loadavg_start"] is not None and result["config"]["size"] == 512
