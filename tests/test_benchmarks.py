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


@pytest.mark.slow
def test_checkpoint_benchmark_on_a_tiny_file(tmp_path):
    import math

    st_torch = pytest.importorskip("safetensors.torch")
    from benchmarks.checkpoint import DRAWN, header_bytes, layer_plan
    from dlviz_gpu.models import SafetensorsFile, bf16_to_float32

    kept, out = tmp_path / "tiny.safetensors", tmp_path / "out"
    stdout, result = _run(["checkpoint", "--quick", "--size-gib", "0.004", "--shape", "64x172",
                           "--repeats", "1", "--keep", str(kept)], out)
    rows = {row["name"]: row for row in result["rows"]}
    assert all(row["error"] is None for row in result["rows"]), result["rows"]
    for row in result["rows"]:
        for key in ("time_s", "value", "gbps"):
            if row[key] is not None:   # NaN / inf would have been written as null
                assert math.isfinite(row[key]), row
        if row["time_s"] is not None:
            assert row["time_s"] > 0, row

    plan = layer_plan(0.004, (64, 172))
    prefix, data = header_bytes(plan)
    largest = max(2 * math.prod(t["shape"]) for t in plan)
    cfg = result["config"]
    assert cfg["file_bytes"] == len(prefix) + data == kept.stat().st_size >= 0.004 * 2 ** 30
    assert cfg["limit_mib"] == pytest.approx(largest / 2 ** 20 + 300)
    for label in ("bf16 matrix", "bf16 matrix, heatmap first"):
        open_row = rows[f"{label}: open catalog"]
        # opening reads the header, not the 4 MiB of tensors
        assert open_row["extra"]["tensors"] == len(plan)
        assert open_row["extra"]["rchar"] < 2 ** 20
        peak = rows[f"{label}: peak RSS of the subprocess"]
        assert peak["value"] > 0 and peak["goal"] == {"op": "<", "value": cfg["limit_mib"]}
        assert peak["passed"] in (True, False)
        assert rows[f"{label}: time to first picture"]["time_s"] > 0
    for name in ("first picture: rasterize 800x600 all stats", "  rasterize again (pages cached)",
                 "compile kernels (8 x 8 bf16 warm-up)", "1% zoom window: rasterize",
                 "1% zoom window: heatmap element", "first picture: dv.heatmap(dynamic=False)"):
        assert f"bf16 matrix: {name}" in rows, name
    zoom = rows["bf16 matrix: 1% zoom window: rasterize"]["extra"]
    # 10 % of each side from 45 %, snapped outwards to whole cells (fewer than the pixels)
    assert zoom["canvas"] == [math.ceil(0.45 * 172 + 17.2) - math.floor(0.45 * 172),
                              math.ceil(0.45 * 64 + 6.4) - math.floor(0.45 * 64)]
    assert "torch bf16: open catalog" not in rows          # --quick: no torch scenario
    assert "peak RSS" in stdout and "time to first picture" in stdout

    # the streamed file is a valid safetensors file: the reference reader agrees with ours
    ref = st_torch.load_file(str(kept))
    assert set(ref) == {t["name"] for t in plan}
    ours = SafetensorsFile(kept)
    for name in (DRAWN, "model.layers.0.input_layernorm.weight", "lm_head.weight"):
        expect = ref[name].float().numpy()
        got = bf16_to_float32(ours.bits(name))
        assert got.shape == expect.shape and (got == expect).all()
    down = ref[DRAWN].float().numpy()
    assert down.shape == (64, 172) and 0.005 < down.std() < 0.1 and abs(down.mean()) < 0.01
    norm = ref["model.layers.0.input_layernorm.weight"].float().numpy()
    assert abs(norm.mean() - 1) < 0.05

    # a second run reuses the kept file instead of writing it again
    _, again = _run(["checkpoint", "--quick", "--size-gib", "0.004", "--shape", "64x172",
                     "--repeats", "1", "--keep", str(kept)], tmp_path / "out2")
    assert again["rows"][0]["name"] == "synthetic file (reused)"


def test_checkpoint_benchmark_refuses_politely(tmp_path, monkeypatch, capsys):
    from benchmarks import checkpoint

    monkeypatch.setattr(checkpoint, "_free_bytes", lambda folder: 10 * 2 ** 20)
    assert checkpoint.run(out_dir=str(tmp_path / "out"), size_gib=0.01, shape=(32, 86)) == 2
    assert "not enough disk space" in capsys.readouterr().err
    other = tmp_path / "mine.safetensors"
    other.write_bytes(b"not the benchmark's file")
    assert checkpoint.run(out_dir=str(tmp_path / "out"), size_gib=0.01, shape=(32, 86),
                          keep=str(other)) == 2
    assert "is not this benchmark's file" in capsys.readouterr().err
    assert other.read_bytes() == b"not the benchmark's file"
    assert checkpoint.run(out_dir=str(tmp_path / "out"), size_gib=0.01, shape=(32, 86),
                          keep=str(tmp_path / "no" / "such.safetensors")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="shape: expected ROWSxCOLS"):
        checkpoint.parse_shape("4096-11008")
    with pytest.raises(ValueError, match="size_gib: expected a positive"):
        checkpoint.layer_plan(0)


@pytest.mark.slow
def test_demo_benchmark_times_the_real_command(tmp_path):
    pytest.importorskip("torch")
    runs = ROOT / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    stdout, result = _run(["demo", "--quick"], tmp_path)
    assert "dlviz demo first page, prepared cache" in stdout
    # the demo's recorded run goes to the benchmark's temporary folder
    assert (set(runs.iterdir()) if runs.exists() else set()) == before
    (row,) = result["rows"]
    assert row["error"] is None, row
    extra = row["extra"]
    assert 0 < extra["ready_s"] < extra["first_page_s"] and extra["prepare_s"] > 0


@pytest.mark.slow
def test_watch_benchmark_reports_overheads_and_store_bytes(tmp_path):
    pytest.importorskip("torch")
    from benchmarks import watch

    assert watch.run(str(tmp_path), quick=True, batch=8, rounds=1, steps=5) == 0
    (path,) = tmp_path.glob("watch-*.json")
    result = json.loads(path.read_text())
    names = [r["name"] for r in result["rows"]]
    assert names == ["baseline step (no watch)", "watch every 10: overhead",
                     "watch every step: overhead"]
    assert result["parameters"] == 10_512_394
    for row in result["rows"][1:]:
        assert row["error"] is None and row["goal"] is not None
        assert row["extra"]["store_bytes_per_recorded_step"] > 0
        assert row["extra"]["store_bytes_per_snapshot_step"] > 4 * 256 * 256  # float32 rasters


def test_gpu_watch_section_logic_on_the_cpu():
    """The GPU check's watch section, run on CPU tensors: the device probe's code path
    (torch reductions) agrees with the Numba kernels on every edge case it feeds."""
    pytest.importorskip("torch")
    from benchmarks import gpu_watch

    assert gpu_watch.compare_probes("cpu") == []
    res = {}
    assert gpu_watch.check_watch(res, sim_smoke=True) == [] and "skipped" in res["watch"]


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")
@pytest.mark.parametrize("module, check, section", [
    ("gpu_describe", "check_describe", "line_sumsq"), ("gpu_moments", "check_moments", "moments")])
def test_gpu_family_sections_under_the_simulator(module, check, section):
    """The GPU check's LINE_SUMSQ and MOMENTS sections compare every case and pass."""
    import importlib

    res = {}
    rows = getattr(importlib.import_module(f"benchmarks.{module}"), check)(res, sim_smoke=True)
    assert res[section]["problems"] == []
    assert [r.passed for r in rows] == [True] and rows[0].metric == "mismatches"


@pytest.mark.slow
def test_models_benchmark_compares_with_decision_boundary_display(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    stdout, result = _run(["models", "--quick", "--grid", "30", "--repeats", "1",
                           "--no-graph"], tmp_path)
    rows = {r["name"]: r for r in result["rows"]}
    for model in ("RBF SVM", "random forest", "torch MLP"):
        same = rows[f"{model}: same class as DecisionBoundaryDisplay"]
        assert same["error"] is None and same["value"] == 1.0, same
    assert any(name.startswith("tree 19,999 nodes") for name in rows)
    assert all(r["error"] is None for r in result["rows"]), [r for r in result["rows"]
                                                             if r["error"]]
