"""Several browser sessions zooming one served checkpoint at once: every wheel turn is
answered with the picture of its range, no session sees another's picture, and the
server gives back the sessions' memory once they close.

It runs ``python -m benchmarks load`` small (3 Chromium sessions, 15 s of zooming a
2048 x 2048 float32 matrix served by the real ``dlviz serve``) and checks what it
measured; the benchmark's module docstring says how each figure is taken.  No time
decides anything here: latencies are reported by the benchmark, not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, _unavailable, chromium_path

#: the server's memory a minute after the pages closed may exceed its memory at rest
#: by this much of what the sessions added, or by FLOOR_MIB, whichever is larger
#: (what the sessions leave behind is freed, not the allocator's every page)
KEEP_FRACTION = 0.5
FLOOR_MIB = 64.0


def _analyse():
    from benchmarks.load import analyse

    return analyse


def _run(tmp_path, *args):
    exe = chromium_path()
    if exe is None:
        _unavailable("no chromium binary at /usr/bin/chromium or on the PATH")
    pytest.importorskip("playwright")
    env = dict(__import__("os").environ, DLVIZ_CHROMIUM=exe)
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "load", *args, "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=1500, env=env)  # a hang guard only
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    files = list(tmp_path.glob("load-*.json"))
    assert len(files) == 1, proc.stdout[-2000:]
    return json.loads(files[0].read_text())["result"], proc.stdout


@pytest.mark.browser
@pytest.mark.slow
def test_three_sessions_zooming_at_once(tmp_path):
    # --answer 300: a picture that comes at all answers its turn (a hang guard, not a
    # time that decides anything); the benchmark's own default is 15 s
    r, out = _run(tmp_path, "--sessions", "3", "--duration", "15", "--size", "2048",
                  "--after", "60", "--answer", "300")
    print(out)
    assert r["failures"] == [], r["failures"]
    assert r["first_page_s"]["loaded"] == 3
    # the sessions really zoomed, and every wheel notch or drag got its picture
    assert r["actions"] >= 9 and r["updates"] >= 3, (r["actions"], r["updates"])
    assert r["unanswered"] == 0, [s["unanswered"] for s in r["sessions_detail"]]
    assert r["wheel_to_picture_s"]["answered"] + r["unchanged"] == r["actions"]
    assert r["final_matches"] == 3
    # isolation: no picture of another session's range, and a zoom in one session
    # left every other session's picture as it was
    assert r["foreign_updates"] == 0
    assert r["isolation"]["ok"] == r["isolation"]["checks"] == 3
    assert r["isolation"]["own_late"] == 0
    assert r["console_errors"] == 0, r["console_error_texts"]
    assert r["server_errors"] == []
    m = r["memory_mib"]
    added = max(m["anon_peak"] - m["anon_rest"], 0.0)
    assert m["anon_after"] - m["anon_rest"] <= max(KEEP_FRACTION * added, FLOOR_MIB), m


def _geometry(x, y, dw, dh, h, w):
    return {"x": x, "y": y, "dw": dw, "dh": dh, "shape": [h, w]}


def test_wheel_turns_are_matched_with_the_pictures_of_their_ranges():
    analyse = _analyse()
    initial = _geometry(0, 0, 100, 100, 50, 80)
    actions = [{"t": 1000.0, "range": [10.2, 60.7, 20.0, 40.5]},   # -> x 10..61, y 20..41
               {"t": 1200.0, "range": [12.0, 50.0, 22.0, 30.0]},
               {"t": 5000.0, "range": [-50.0, 150.0, -10.0, 110.0]},  # out: the whole matrix
               {"t": 9000.0, "range": [-60.0, 160.0, -20.0, 120.0]},  # still the whole
               {"t": 9500.0, "range": [1.0, 9.0, 1.0, 9.0]}]          # never answered
    updates = [dict(_geometry(12, 22, 38, 8, 8, 38), t=1900.0, tp=1950.0),
               dict(_geometry(0, 0, 100, 100, 50, 80), t=5600.0, tp=5700.0)]
    res = analyse(actions, updates, initial, 100, 100, 80, 50, horizon_s=15.0)
    # the first turn is answered by the second's picture (it superseded it)
    assert res["latencies_s"] == pytest.approx([0.95, 0.75, 0.7])
    assert res["to_data_s"] == pytest.approx([0.9, 0.7, 0.6])
    assert res["unchanged"] == 1     # the whole matrix was already shown
    assert res["unanswered"] == 1 and res["never"] == 1 and res["foreign"] == 0
    assert res["final_matches"] is False
    # a picture that comes after the horizon answers too late
    slow = [dict(updates[0], t=20000.0, tp=20100.0)]
    res = analyse(actions[:2], slow, initial, 100, 100, 80, 50, horizon_s=15.0)
    assert res["late"] == 2 and res["unanswered"] == 2 and res["final_matches"] is True
    # a picture of a range this session never had is foreign
    stray = dict(_geometry(3, 3, 5, 5, 5, 5), t=2000.0, tp=2010.0)
    res = analyse(actions[:2], updates[:1] + [stray], initial, 100, 100, 80, 50)
    assert res["foreign"] == 1 and res["final_matches"] is False
    res = analyse(actions[:2], updates[:1], initial, 100, 100, 80, 50)
    assert res["foreign"] == 0 and res["final_matches"] is True and res["unanswered"] == 0


def test_expected_geometry_follows_the_heatmap_window():
    from benchmarks.load import expected_geometry

    import numpy as np

    from dlviz_gpu.views.matrix import MatrixView

    view = MatrixView(np.zeros((300, 500), np.float32))
    for rng in ([10.2, 60.7, 20.0, 40.5], [-5.0, 700.0, 250.5, 400.0], [0.0, 3.0, 0.0, 2.0],
                [100.0, 400.0, 0.0, 300.0]):
        (x0, x1), (y0, y1), w, h = view.window(rng[:2], rng[2:], 120, 80)
        assert expected_geometry(rng, 500, 300, 120, 80) == (x0, y0, x1 - x0, y1 - y0, h, w)
    assert expected_geometry([600.0, 700.0, 0.0, 10.0], 500, 300, 120, 80)[4:] == (1, 1)
