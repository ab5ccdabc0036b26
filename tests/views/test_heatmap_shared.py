"""Heatmaps of immutable tensors share their overview and whole-extent picture; others never.

A checkpoint opened by ``dlviz_gpu.models`` is a read-only memory map: every
session of a served dashboard showing one of its tensors gets the same colour
limits and first picture, computed once.  Numbers must be exactly those of a
view that computes them itself.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

pytest.importorskip("holoviews")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import dlviz_gpu as dv  # noqa: E402
from dlviz_gpu import models  # noqa: E402
from dlviz_gpu.views.zoom import ZoomView  # noqa: E402
from dlviz_gpu.tensors import as_matrix  # noqa: E402
from dlviz_gpu.views import matrix as M  # noqa: E402

NAME = "w"


@pytest.fixture
def ckpt(tmp_path, rng):
    a = rng.standard_normal((300, 500)).astype(np.float32)
    a[7, 11] = np.nan
    path = tmp_path / "m.safetensors"
    safetensors_numpy.save_file({NAME: a, "b": np.ones(4, np.float32)}, str(path))
    return path, a


@pytest.fixture(autouse=True)
def fresh_cache():
    M.SHARED.forget()
    yield
    M.SHARED.forget()


def _mapped(path):
    cat = models.open(str(path))
    return cat, cat.matrix(NAME, "auto")


def test_views_of_a_mapped_tensor_share_overview_and_whole_picture(ckpt):
    path, a = ckpt
    cat, m = _mapped(path)
    assert M.immutable_root(m) is not None
    first = dv.heatmap(m, width=120, height=80)
    frame1 = first[()]
    assert not first.view.last["shared"]
    hits = M.SHARED.hits
    second = dv.heatmap(cat.matrix(NAME, "auto"), width=120, height=80)  # another session
    frame2 = second[()]
    assert M.SHARED.hits == hits + 2      # the overview and the whole picture
    assert second.view.last["shared"]
    assert second.view.clim == first.view.clim
    assert second.view.total_nonfinite == first.view.total_nonfinite == 1
    # exactly what a view of a private copy computes
    own = dv.heatmap(a.copy(), width=120, height=80)
    frame3 = own[()]
    assert not own.view.last["shared"]
    for name in ("colour", "count", "mean", "min", "max", "std", "nan_count"):
        np.testing.assert_array_equal(frame2.dimension_values(name),
                                      frame3.dimension_values(name))
        np.testing.assert_array_equal(frame1.dimension_values(name),
                                      frame2.dimension_values(name))
    planes = second.view.planes()["planes"]
    assert all(not p.flags.writeable for p in planes.values())


def test_a_zoomed_window_is_computed_by_each_view(ckpt):
    path, _ = ckpt
    cat, m = _mapped(path)
    view = dv.heatmap(m, width=120, height=80).view
    n = len(M.SHARED)
    res = view.planes((10, 60), (20, 50), 120, 80)
    assert not view.last["shared"] and len(M.SHARED) == n
    assert all(p.flags.writeable for p in res["planes"].values())
    again = dv.heatmap(cat.matrix(NAME, "auto"), width=120, height=80).view
    again.planes((10, 60), (20, 50), 120, 80)
    assert not again.last["shared"]


def test_settings_that_change_the_picture_are_not_shared(ckpt):
    path, a = ckpt
    cat, m = _mapped(path)
    mean = dv.heatmap(m, width=120, height=80)
    mean[()]
    other = dv.heatmap(cat.matrix(NAME, "auto"), agg="std", norm="symlog", width=120, height=80)
    frame = other[()]
    assert not other.view.last["shared"]
    own = dv.heatmap(a.copy(), agg="std", norm="symlog", width=120, height=80)
    np.testing.assert_array_equal(frame.dimension_values("colour"),
                                  own[()].dimension_values("colour"))
    assert other.view.clim == own.view.clim and other.view.signed is False
    smaller = dv.heatmap(cat.matrix(NAME, "auto"), width=60, height=40)
    smaller[()]
    assert not smaller.view.last["shared"] and smaller.view.last["canvas"] == (60, 40)


def test_writeable_arrays_are_never_shared(rng):
    a = rng.standard_normal((64, 64)).astype(np.float32)
    first = dv.heatmap(a, width=32, height=32)
    f1 = first[()]
    a *= 10  # the data changes under the views: a new view sees the new values
    second = dv.heatmap(a, width=32, height=32)
    f2 = second[()]
    assert not second.view.last["shared"] and len(M.SHARED) == 0
    np.testing.assert_allclose(f2.dimension_values("mean"), 10 * f1.dimension_values("mean"),
                               rtol=1e-4, atol=1e-5)
    assert second.view.clim[1] == pytest.approx(10 * first.view.clim[1], rel=1e-5)
    ro = a.copy()
    ro.flags.writeable = False  # read-only, but another array may own and write it
    assert M.immutable_root(as_matrix(ro)) is None


def test_entries_go_with_their_memory_map(ckpt):
    path, _ = ckpt
    cat, m = _mapped(path)
    dmap = dv.heatmap(m, width=120, height=80)
    dmap[()]
    assert len(M.SHARED) == 2
    del cat, m, dmap
    gc.collect()
    assert len(M.SHARED) == 0 and M.SHARED.nbytes == 0


def test_the_byte_budget_drops_the_least_recently_used():
    cache = M.SharedWindows(max_bytes=100)

    class Root:  # stands for a memory map (anything weakly referenceable)
        pass

    root = Root()
    cache._roots[id(root)] = __import__("weakref").ref(root)
    keys = [(id(root), "m", k) for k in range(3)]
    cache.put(keys[0], "a", 40)
    cache.put(keys[1], "b", 40)
    assert cache.get(keys[0]) == "a"       # now the most recently used
    cache.put(keys[2], "c", 40)            # over 100: the least recently used goes
    assert cache.get(keys[1]) is None and cache.get(keys[0]) == "a" and cache.nbytes == 80
    cache.put((id(root), "m", "huge"), "x", 1000)  # larger than the budget: not kept
    assert cache.get((id(root), "m", "huge")) is None


def test_zooms_reach_the_server_promptly():
    """BokehJS sends a zoom's range 150 ms after the last wheel notch, not 500."""
    import holoviews as hv

    renderer = hv.renderer("bokeh").instance(mode="server")
    heat = renderer.get_plot(dv.heatmap(np.eye(40, dtype=np.float32)))
    assert heat.state.lod_timeout == M.ZOOM_LOD["timeout"] == 150
    # and the server computes it when it arrives, not 100 ms later
    ranges = [c for c in heat.callbacks if type(c).__name__ == "RangeXYCallback"]
    assert ranges and all(c.debounce is None for c in ranges)
    pts = np.random.default_rng(0).random((200, 2))
    for view in (dv.scatter(pts), dv.scatter(pts, category=np.arange(200) % 3)):
        plot = renderer.get_plot(view)
        assert plot.state.lod_timeout == 150
        ranges = [c for c in plot.callbacks if type(c).__name__ == "RangeXYCallback"]
        assert ranges and all(c.debounce is None for c in ranges)


def _surface():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(1).random((100, 2))
    y = (X[:, 0] > X[:, 1]).astype(int)
    return dv.decision_surface(LogisticRegression().fit(X, y), X, y, width=60, height=40)


def _tree():
    pytest.importorskip("sklearn")
    from sklearn.tree import DecisionTreeClassifier

    X = np.random.default_rng(1).random((100, 2))
    return dv.tree(DecisionTreeClassifier(max_depth=4).fit(X, X[:, 0] > 0.5))


@pytest.mark.parametrize("make", [
    lambda: dv.heatmap(np.random.default_rng(1).random((200, 300)), width=60, height=40),
    lambda: dv.scatter(np.random.default_rng(1).random((5000, 2)), width=60, height=40),
    lambda: dv.curve(np.random.default_rng(1).random(5000), width=60, height=40),
    _surface, _tree,
], ids=["heatmap", "scatter", "curve", "decision_surface", "tree"])
def test_a_zoomable_view_keeps_only_its_current_frame(make):
    """Every zoom's planes used to stay in the DynamicMap's cache (500 frames by default)."""
    import holoviews as hv

    dmap = make()
    hv.renderer("bokeh").get_plot(dmap)
    rng = next(s for s in dmap.streams if isinstance(s, (hv.streams.RangeXY, hv.streams.RangeX)))
    for k in range(6):
        window = {"x_range": (0.01 * k, 0.5 + 0.01 * k)}
        if isinstance(rng, hv.streams.RangeXY):
            window["y_range"] = (0.02 * k, 0.4 + 0.02 * k)
        rng.event(**window)
    assert dmap.view.updates >= 6
    assert len(dmap.data) <= 1
    assert isinstance(dmap.view, ZoomView)


def _run_apart(coroutine_function):
    """Run a coroutine to its end on a thread of its own.

    A browser test earlier in the session may leave an event loop running on
    this thread (Playwright's sync API), where ``asyncio.run`` refuses.
    """
    import asyncio
    import threading

    failure = []

    def main():
        try:
            asyncio.run(coroutine_function())
        except BaseException as exc:            # re-raised on the test's thread
            failure.append(exc)

    worker = threading.Thread(target=main)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the coroutine did not finish within 30 s"
    if failure:
        raise failure[0]


def test_a_sessions_next_zoom_waits_until_its_browser_took_the_last_picture(monkeypatch):
    """A browser slower than the server gets one picture at a time, the latest range's."""
    import holoviews as hv

    renderer = hv.renderer("bokeh").instance(mode="server")
    plot = renderer.get_plot(dv.heatmap(np.eye(40, dtype=np.float32)))
    (cb,) = [c for c in plot.callbacks if type(c).__name__ == "RangeXYCallback"]
    wrapped = cb.process_on_event
    M.prompt_ranges(plot)                       # a second hook call wraps nothing again
    assert cb.process_on_event is wrapped and cb._dlviz_paced
    assert M.receiving(plot) is False           # no server session: nothing to wait for

    seen = []
    writing = iter([True, True, True, False])   # the socket drains after three looks
    monkeypatch.setattr(M, "receiving", lambda p: seen.append(p) or next(writing))
    processed = []

    async def process(*args, **kwargs):
        processed.append(len(seen))

    paced = M._paced(cb, process)
    _run_apart(paced)
    assert processed == [4] and all(p is plot for p in seen)

    # a browser that never drains: the zoom is computed after PACE_MAX_S all the same
    monkeypatch.setattr(M, "PACE_MAX_S", 0.05)
    monkeypatch.setattr(M, "receiving", lambda p: True)
    processed.clear()
    _run_apart(M._paced(cb, process))
    assert processed == [4]
