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
