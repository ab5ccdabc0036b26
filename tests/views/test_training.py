"""Training views (dlviz_gpu.views.training) on small real runs written with the store's
RunWriter: every number drawn is checked against the numbers written."""

import io

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")

import dlviz_gpu as dv  # noqa: E402
from dlviz_gpu.views import style  # noqa: E402
from dlviz_gpu.views.training import (REFERENCE_RATIO, alerts, alerts_table,  # noqa: E402
                                      distributions, gradient_flow, snapshot_diff,
                                      training_curves, update_ratios, weight_evolution)
from dlviz_gpu.watch.store import (STAT_NAMES, ParamInfo, RunWriter, StepRecord,  # noqa: E402
                                   open_run)

NS = len(STAT_NAMES)
S = {n: i for i, n in enumerate(STAT_NAMES)}
W, G, U = 0, 1, 2
B = 8
NAMES = ["enc.weight", "enc.bias", "dec.weight", "frozen.weight"]
RECORDED = np.arange(0, 100, 10)            # 10 recorded steps
SNAP_STEPS = (0, 30, 60, 90)
NAN_STEP = 50                               # dec.weight's gradient holds 5 NaN here
ZERO_STEP = 90                              # dec.weight's gradient norm is exactly 0 here
LOSS_NAN = 37                               # a non-finite loss
RATIOS = {"enc.weight": 1e-3, "enc.bias": 1e-1, "dec.weight": 1e-6}


def grad_norm(p: int, k: int) -> float:
    """The gradient norm written for parameter ``p`` at its ``k``-th recorded step."""
    if p == 0:
        return 0.5 ** k                     # vanishing
    if p == 1:
        return 10.0 * 0.5 ** k              # ten times enc.weight's
    if p == 2:
        step = RECORDED[k]
        # the norm of the finite elements, as the recorder stores it (NaN counted apart)
        return 0.0 if step == ZERO_STEP else 2.0
    return np.nan                           # frozen: no gradient


def hist_counts(p: int, kind: int, k: int) -> np.ndarray:
    return (np.arange(B) + 1 + p + 3 * kind + k).astype(np.int64)


def hist_range(p: int, kind: int, k: int) -> tuple[float, float]:
    return (-1.0 - k - p, 2.0 + k + kind)


def snap(step: int) -> np.ndarray:
    """enc.weight's 'mean' snapshot (4 x 6 pixels of its 8 x 12 matrix) at ``step``."""
    base = np.arange(24, dtype=np.float32).reshape(4, 6) - 11.5
    return (base * (1.0 + step / 100.0)).astype(np.float32)


def build_run(path):
    params = [ParamInfo("enc.weight", (8, 12), "float32", 96, "enc", False, 8, 12),
              ParamInfo("enc.bias", (12,), "float32", 12, "enc", False),
              ParamInfo("dec.weight", (4, 8), "float32", 32, "dec", False, 4, 8),
              ParamInfo("frozen.weight", (3, 3), "float32", 9, "frozen", True, 3, 3)]
    P = len(params)
    records = []
    for step in range(100):
        loss = np.nan if step == LOSS_NAN else 2.0 / (1.0 + step)
        rec = StepRecord(step=step, time=1000.0 + step,
                         scalars={"loss": loss, "lr": 0.1 * 0.99 ** step})
        if step in RECORDED:
            k = int(np.flatnonzero(RECORDED == step)[0])
            stats = np.full((P, 3, NS), np.nan)
            for p, info in enumerate(params):
                stats[p, W, :] = 0.0
                stats[p, W, S["numel"]] = info.numel
                stats[p, W, S["norm"]] = 1.0 + p
                stats[p, W, S["mean"]] = 0.1 * p
                if p < 3:
                    stats[p, G, :] = 0.0
                    stats[p, G, S["numel"]] = info.numel
                    stats[p, G, S["norm"]] = grad_norm(p, k)
                    stats[p, G, S["mean"]] = -0.5 if p == 1 else 0.25
                    if p == 2 and step == NAN_STEP:
                        stats[p, G, S["nan"]] = 5
            updates = np.full((P, 3), np.nan)
            for p, name in enumerate(NAMES[:3]):
                updates[p] = (RATIOS[name] * (1.0 + p), RATIOS[name], 0.0)
            counts = np.zeros((P, 2, B), np.int64)
            ranges = np.full((P, 2, 2), np.nan)
            for p in range(P):
                for kind in (W, G):
                    if kind == G and p == 3:
                        continue
                    counts[p, kind] = hist_counts(p, kind, k)
                    ranges[p, kind] = hist_range(p, kind, k)
            rec.recorded = True
            rec.stats, rec.updates = stats, updates
            rec.hist_counts, rec.hist_range = counts, ranges
            if step in SNAP_STEPS:
                rec.snapshots = [(0, "mean", snap(step)),
                                 (0, "extremum", snap(step) * 2.0)]
        if step == NAN_STEP:
            rec.alerts = [(2, "nan", "dec.weight: 5 NaN in the gradient")]
        if step == LOSS_NAN:
            rec.alerts = [(None, "loss", "non-finite loss: nan")]
        records.append(rec)
    with RunWriter(path, config={"every": 10, "bins": B}) as w:
        w.define_params(params)
        w.write(records)
    return path


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("runs") / "exp1")


@pytest.fixture(scope="module")
def run(run_path):
    r = open_run(run_path)
    yield r
    r.close()


def flow_planes(overlay):
    """(colour image, marks image) of a gradient-flow overlay, planes with row 0 = param 0."""
    img, marks = overlay.values()
    names = [d.name for d in img.vdims]
    data = np.asarray(img.data)
    planes = {n: data[::-1, :, i] for i, n in enumerate(names)}
    return img, marks, planes


def render(obj):
    return hv.renderer("bokeh").get_plot(obj)


# --------------------------------------------------------------------------
# gradient flow
# --------------------------------------------------------------------------

def test_gradient_flow_cells_are_the_written_norms(run):
    ov = gradient_flow(run)
    img, marks, planes = flow_planes(ov)
    assert planes["max"].shape == (4, RECORDED.size)
    expect = np.array([[grad_norm(p, k) for k in range(RECORDED.size)] for p in range(4)])
    np.testing.assert_array_equal(planes["max"][:3], expect[:3])
    # enc.bias's norm is ten times enc.weight's at every step
    np.testing.assert_allclose(planes["max"][1] / planes["max"][0], 10.0)
    # one column per recorded step, centred on the step
    x0, y0, x1, y1 = img.bounds.lbrt()
    assert (x0, x1) == (-5.0, 95.0) and (y0, y1) == (0.0, 4.0)
    np.testing.assert_array_equal(planes["first"][0], RECORDED)
    np.testing.assert_array_equal(planes["steps"][:3], 1)
    # the frozen parameter has no gradient: an empty (NaN) row, named in the title
    assert np.isnan(planes["max"][3]).all() and (planes["steps"][3] == 0).all()
    title = hv.Store.lookup_options("bokeh", img, "plot").kwargs["title"]
    assert "no grad: frozen.weight" in title


def test_gradient_flow_marks_nan_and_zero_steps(run):
    ov = gradient_flow(run)
    img, marks, planes = flow_planes(ov)
    nan_col = int(np.flatnonzero(RECORDED == NAN_STEP)[0])
    zero_col = int(np.flatnonzero(RECORDED == ZERO_STEP)[0])
    mark = np.asarray(marks.data)[::-1]
    assert np.argwhere(mark == 1).tolist() == [[2, nan_col]]
    assert planes["nonfinite"][2, nan_col] == 1 and planes["nonfinite"].sum() == 1
    assert planes["max"][2, nan_col] == 2.0       # the hover still gives the finite norm
    # an exact zero is below the log scale's low limit: the mapper's low (grey) colour
    assert planes["max"][2, zero_col] == 0.0
    opts = hv.Store.lookup_options("bokeh", img, "style").kwargs
    plot_opts = hv.Store.lookup_options("bokeh", img, "plot").kwargs
    lo, hi = plot_opts["clim"]
    assert planes["value"][2, zero_col] < lo and lo == pytest.approx(0.5 ** 9)
    assert hi == 10.0
    assert opts.get("cmap") or plot_opts.get("cmap")
    title = plot_opts["title"]
    assert "1 NaN/inf (green) in dec.weight" in title and "1 exactly 0 (grey)" in title
    # the marks are drawn in the NaN colour; the bokeh mapper is log with grey low colour
    plot = render(ov)
    mappers = [sp.handles["color_mapper"] for sp in plot.subplots.values()]
    assert type(mappers[0]).__name__ == "LogColorMapper"
    assert mappers[0].low_color == "#9e9e9e"
    assert set(mappers[1].palette) == {style.NAN_COLOR}


def test_gradient_flow_hover_names_param_step_value(run):
    plot = render(gradient_flow(run))
    sub = next(iter(plot.subplots.values()))
    hover = sub.handles["hover"]
    tips = dict(hover.tooltips)
    assert tips["param"] == "$y{custom}" and tips["step"] == "@{first}"
    assert tips["grad norm"].startswith("@{max}") and "NaN/inf steps" in tips
    assert list(hover.formatters["$y"].args["names"]) == NAMES
    src = sub.handles["source"].data
    assert {"max", "first", "nonfinite"} <= set(src)
    yt = hv.Store.lookup_options("bokeh", sub.hmap.last, "plot").kwargs["yticks"]
    assert yt == [(p + 0.5, n) for p, n in enumerate(NAMES)]


def test_gradient_flow_columns_hold_several_steps_when_narrow(run):
    ov = gradient_flow(run, width=4)
    img, _, planes = flow_planes(ov)
    x0, x1 = -5.0, 95.0
    col = np.floor((RECORDED - x0) * 4 / (x1 - x0)).astype(int)
    norms = np.array([grad_norm(0, k) for k in range(RECORDED.size)])
    for c in range(4):
        sel = col == c
        assert planes["max"][0, c] == norms[sel].max()
        assert planes["min"][0, c] == norms[sel].min()
        assert planes["first"][0, c] == RECORDED[sel].min()
        assert planes["last"][0, c] == RECORDED[sel].max()
        assert planes["steps"][0, c] == sel.sum()
    tips = dict(render(ov).subplots[next(iter(render(ov).subplots))].handles["hover"].tooltips)
    assert "@{first} to @{last}" in tips["steps"]


def test_gradient_flow_since_and_signed_stat_and_path(run, run_path):
    _, _, planes = flow_planes(gradient_flow(run_path, since=50))
    np.testing.assert_array_equal(planes["first"][0], RECORDED[RECORDED >= 50])
    # a signed statistic gets a linear diverging scale with the column extremum
    img, _, planes = flow_planes(gradient_flow(run, stat="mean"))
    lo, hi = hv.Store.lookup_options("bokeh", img, "plot").kwargs["clim"]
    assert lo == -hi == -0.5
    np.testing.assert_array_equal(planes["value"][1], -0.5)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(stat="bogus"), ValueError, r"stat: expected one of numel, mean"),
    (dict(kind="grads"), ValueError, r"kind: expected one of grad, weight, update; got 'grads'"),
    (dict(stat="mean", norm="log"), ValueError, r"norm: a log colour scale needs non-negative"),
    (dict(norm="symlog"), ValueError, r"norm: expected one of log, linear"),
    (dict(since=1.5), TypeError, r"since: expected a step number"),
    (dict(width=0), ValueError, r"width"),
])
def test_gradient_flow_refuses_bad_arguments(run, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gradient_flow(run, **kwargs)


def test_views_refuse_what_is_not_a_run(tmp_path):
    with pytest.raises(TypeError, match=r"run: expected a Run .* got int"):
        gradient_flow(42)
    with pytest.raises(FileNotFoundError):
        gradient_flow(tmp_path / "nowhere")


# --------------------------------------------------------------------------
# distributions
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind, k_", [("weight", W), ("grad", G)])
def test_distributions_are_the_written_histograms(run, kind, k_):
    ov = distributions(run, "enc.bias", kind=kind, percentiles=())
    rects = ov.values()[0]
    d = {c: rects.dimension_values(c) for c in ("x0", "y0", "y1", "count", "at_step")}
    for k, step in enumerate(RECORDED):
        sel = d["at_step"] == step
        np.testing.assert_array_equal(d["count"][sel], hist_counts(1, k_, k))
        lo, hi = hist_range(1, k_, k)
        edges = np.linspace(lo, hi, B + 1)
        np.testing.assert_allclose(d["y0"][sel], edges[:-1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(d["y1"][sel], edges[1:], rtol=0, atol=1e-12)
    title = hv.Store.lookup_options("bokeh", ov, "plot").kwargs["title"]
    assert title.startswith(f"enc.bias {kind}: 10 steps x {B} bins")


def test_distributions_since_and_errors(run):
    ov = distributions(run, "enc.weight", since=60, percentiles=())
    assert sorted(set(ov.values()[0].dimension_values("at_step"))) == [60, 70, 80, 90]
    with pytest.raises(ValueError, match=r"param: .*nope"):
        distributions(run, "nope")
    with pytest.raises(ValueError, match=r"kind: expected one of weight, grad; got 'update'"):
        distributions(run, "enc.weight", kind="update")
    with pytest.raises(ValueError, match=r"param: the run holds no grad histograms of "
                                         r"'frozen.weight'"):
        distributions(run, "frozen.weight", kind="grad")


# --------------------------------------------------------------------------
# update ratios
# --------------------------------------------------------------------------

def test_update_ratios_lines_and_reference(run):
    ov = update_ratios(run)
    curves = [el for el in ov.values() if isinstance(el, hv.Curve)]
    assert [c.label for c in curves] == NAMES[:3]
    for c in curves:
        np.testing.assert_array_equal(c.dimension_values("step"), RECORDED)
        np.testing.assert_array_equal(c.dimension_values("ratio"), RATIOS[c.label])
        assert set(c.dimension_values("param")) == {c.label}
    hline = next(el for el in ov.values() if isinstance(el, hv.HLine))
    assert hline.data == REFERENCE_RATIO
    text = next(el for el in ov.values() if isinstance(el, hv.Text))
    assert "rule of thumb" in text.text and text.y == REFERENCE_RATIO
    opts = hv.Store.lookup_options("bokeh", curves[0], "plot").kwargs
    assert opts["logy"] is True
    title = hv.Store.lookup_options("bokeh", ov, "plot").kwargs["title"]
    assert "no update: frozen.weight" in title
    tips = dict(hv.Store.lookup_options("bokeh", curves[0], "plot").kwargs["hover_tooltips"])
    assert tips["param"] == "@{param}" and tips["ratio"].startswith("@{ratio}")


def test_update_ratios_top_k_in_colour_rest_faint(run):
    ov = update_ratios(run, top=2)
    curves = [el for el in ov.values() if isinstance(el, hv.Curve)]
    # furthest from 1e-3: dec.weight (1e-6, 3 decades) and enc.bias (1e-1, 2 decades)
    assert sorted(c.label for c in curves) == ["dec.weight", "enc.bias"]
    path = next(el for el in ov.values() if isinstance(el, hv.Path))
    (line,) = path.split()
    np.testing.assert_array_equal(line.dimension_values(1), RATIOS["enc.weight"])
    with pytest.raises(ValueError, match=r"top: expected a positive integer; got 0"):
        update_ratios(run, top=0)
    with pytest.raises(ValueError, match=r"reference: expected a positive finite ratio"):
        update_ratios(run, reference=-1.0)


# --------------------------------------------------------------------------
# loss and learning rate
# --------------------------------------------------------------------------

def test_training_curves_loss_and_lr(run):
    lay = training_curves(run, dynamic=False)
    loss, lr = lay.values()
    steps = np.arange(100)
    expect = np.where(steps == LOSS_NAN, np.nan, 2.0 / (1.0 + steps))
    raw = loss.values()[0]
    keep = steps != LOSS_NAN
    np.testing.assert_array_equal(raw.dimension_values("step"), steps[keep])
    np.testing.assert_allclose(raw.dimension_values("y"), expect[keep], rtol=1e-15)
    # smoothing on the loss, none on the learning rate (a schedule is exact)
    assert len([el for el in loss.values() if isinstance(el, hv.Curve)]) == 2
    assert [el for el in lr.values() if isinstance(el, hv.Curve)][0].dimension_values(
        "y") == pytest.approx(0.1 * 0.99 ** steps, rel=1e-12)
    assert len([el for el in lr.values() if isinstance(el, hv.Curve)]) == 1
    # the NaN loss is marked
    marks = next(el for el in loss.values() if isinstance(el, hv.VLines))
    assert marks.dimension_values(0) == pytest.approx([LOSS_NAN], abs=0.2)
    # y axes stay independent: the value dimensions carry different labels
    assert raw.vdims[0].label != lr.values()[0].vdims[0].label


def test_training_curves_dynamic_and_errors(run):
    lay = training_curves(run, names=["lr"], smoothing=0.9)
    (dm,) = lay.values()
    assert isinstance(dm, hv.DynamicMap) and dm.view.smoothing == 0.0
    lay = training_curves(run, names="loss", smoothing={"loss": 0.9})
    assert lay.values()[0].view.smoothing == 0.9
    with pytest.raises(ValueError, match=r"names: 'acc' not recorded in this run; known "
                                         r"scalars: loss, lr"):
        training_curves(run, names=("loss", "acc"))
    with pytest.raises(ValueError, match=r"smoothing: expected a weight in \[0, 1\)"):
        training_curves(run, smoothing=1.5)


# --------------------------------------------------------------------------
# alerts
# --------------------------------------------------------------------------

def test_alerts_and_table(run):
    got = alerts(run)
    assert got == [{"step": LOSS_NAN, "param": None, "kind": "loss",
                    "message": "non-finite loss: nan"},
                   {"step": NAN_STEP, "param": "dec.weight", "kind": "nan",
                    "message": "dec.weight: 5 NaN in the gradient"}]
    assert alerts(run, since=40) == got[1:]
    table = alerts_table(run)
    assert list(table.dimension_values("step")) == [LOSS_NAN, NAN_STEP]
    assert list(table.dimension_values("parameter")) == ["", "dec.weight"]
    assert list(table.dimension_values("kind")) == ["loss", "nan"]
    assert table.label == "2 alerts"
    assert alerts_table(run, since=60).label == "no alerts"


# --------------------------------------------------------------------------
# weight snapshots
# --------------------------------------------------------------------------

def test_weight_evolution_frames_are_the_snapshots(run):
    hm = weight_evolution(run, "enc.weight")
    assert isinstance(hm, hv.HoloMap) and hm.kdims[0].name == "step"
    assert list(hm.keys()) == list(SNAP_STEPS)
    for s in SNAP_STEPS:
        img = hm[s]
        np.testing.assert_array_equal(np.asarray(img.data)[::-1], snap(s))
        assert img.bounds.lbrt() == (0.0, 0.0, 12.0, 8.0)   # the matrix's own coordinates
    clims = {hv.Store.lookup_options("bokeh", hm[s], "plot").kwargs["clim"] for s in SNAP_STEPS}
    assert len(clims) == 1                                   # one colour scale for all frames
    lo, hi = clims.pop()
    assert lo == -hi                                         # signed weights: centred at 0
    ext = weight_evolution(run, "enc.weight", stat="extremum", max_frames=2)
    assert list(ext.keys()) == [0, 90]
    np.testing.assert_array_equal(np.asarray(ext[90].data)[::-1], snap(90) * 2.0)
    assert list(weight_evolution(run, 0, steps=[30]).keys()) == [30]


def test_snapshot_diff_is_a_minus_b(run):
    img = snapshot_diff(run, "enc.weight", 90, 30)
    data = np.asarray(img.data)[::-1]
    a, b = snap(90).astype(np.float64), snap(30).astype(np.float64)
    np.testing.assert_array_equal(data[..., 0], a - b)
    np.testing.assert_array_equal(data[..., 1], a)
    np.testing.assert_array_equal(data[..., 2], b)
    opts = hv.Store.lookup_options("bokeh", img, "plot").kwargs
    lo, hi = opts["clim"]
    assert lo == -hi > -np.abs(a - b).max() * 1.0001        # centred at 0
    assert "max |diff| " in opts["title"]
    plot = render(img)
    assert type(plot.handles["color_mapper"]).__name__ == "LinearColorMapper"
    tips = dict(plot.handles["hover"].tooltips)
    assert tips["a - b"].startswith("@{diff}") and "step 90" in tips


@pytest.mark.parametrize("call, exc, match", [
    (lambda r: snapshot_diff(r, "enc.weight", 90, 40), ValueError,
     r"step_b: step 40 has no snapshot; stored: 0, 30, 60, 90"),
    (lambda r: snapshot_diff(r, "enc.weight", "90", 30), TypeError, r"step_a: expected"),
    (lambda r: snapshot_diff(r, "enc.weight", 90, 30, stat="max"), ValueError,
     r"stat: expected one of mean, extremum"),
    (lambda r: weight_evolution(r, "enc.bias"), ValueError,
     r"param: the run holds no 'mean' weight snapshots of 'enc.bias'"),
    (lambda r: weight_evolution(r, "enc.weight", steps=[10]), ValueError,
     r"steps: \[10\] are not snapshot steps"),
    (lambda r: weight_evolution(r, "enc.weigth"), ValueError, r"param: .*'enc.weigth'"),
])
def test_snapshot_views_refuse_bad_input(run, call, exc, match):
    with pytest.raises(exc, match=match):
        call(run)


# --------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------

def test_gradient_flow_saves_to_html_and_png(run, tmp_path):
    from PIL import Image

    ov = gradient_flow(run)
    html = dv.save(ov, tmp_path / "flow.html").read_text(encoding="utf-8")
    assert "frozen.weight" in html and "grad norm" in html
    png = dv.save(ov + update_ratios(run), tmp_path / "flow.png").read_bytes()
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    green = np.array([int(style.NAN_COLOR[i:i + 2], 16) for i in (1, 3, 5)])
    # the NaN cell is drawn in the NaN colour
    assert (np.abs(img - green).sum(-1) < 30).sum() > 20
