"""The run dashboard (dlviz_gpu.app.runs) on runs recorded by dv.watch from real training loops."""

import urllib.request

import numpy as np
import pytest
import torch

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

import dlviz_gpu as dv  # noqa: E402
from dlviz_gpu.app.runs import RunBoard, RunSession  # noqa: E402


def train(store, steps, lr, seed=0, run=None, start=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 6, generator=g)
    y = x[:, :3].argmax(1)
    own = run is None
    if own:
        run = dv.watch(model, opt, store=store, snapshot_every=3)
    for step in range(start, start + steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        run.log(step, loss=loss)
    if own:
        run.close()
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train(root / "slow", 8, lr=0.01)
    train(root / "fast", 8, lr=0.5, seed=1)
    return root


def pane_object(pane):
    """The HoloViews pane (or the note) a tab's pane shows."""
    found = pane.select(pn.pane.HoloViews) or pane.select(pn.pane.Markdown)
    assert len(found) == 1, pane
    return found[0]


def test_every_tab_draws_its_view(runs):
    s = RunSession([runs / "slow"], title="slow", periodic=False)
    assert [t.name for t in s.tabs] == ["Curves", "Gradient flow", "Update ratio",
                                        "Distributions", "Weights", "Alerts"]
    for pane in (s.curves_pane, s.flow_pane, s.updates_pane, s.dist_pane, s.weights_pane,
                 s.diff_pane, s.alerts_pane):
        assert isinstance(pane_object(pane), pn.pane.HoloViews), pane
    # the weights tab steps through the stored snapshots: logged steps 0, 3, 6
    assert s.step_a.options == [0, 3, 6] and s.step_a.value == 6 and s.step_b.value == 0
    frames = pane_object(s.weights_pane).object       # one snapshot read per step shown
    assert isinstance(frames, hv.DynamicMap) and frames.kdims[0].values == [0, 3, 6]
    frame = frames[3]
    np.testing.assert_array_equal(np.asarray(frame.data)[::-1],
                                  s.run.snapshot(s.wparam.value, 3, "mean"))
    (player,) = s.weights_pane.select(pn.widgets.DiscretePlayer)      # play/pause over steps
    assert list(player.options.values()) == [0, 3, 6]
    # the difference view is snapshot(6) - snapshot(0) of the chosen matrix
    diff = pane_object(s.diff_pane).object
    r = s.run
    want = r.snapshot(s.wparam.value, 6, "mean").astype(np.float64) - r.snapshot(
        s.wparam.value, 0, "mean")
    np.testing.assert_allclose(np.asarray(diff.dimension_values(2, flat=False)),
                               want, rtol=1e-6, atol=1e-7)
    assert "step 7" in s.status.object and "8 recorded" in s.status.object


def test_choosing_a_parameter_redraws_its_distribution(runs):
    s = RunSession([runs / "slow"], periodic=False)
    def total(obj):
        (rects,) = obj.traverse(lambda e: e, [hv.Rectangles])
        return rects.dimension_values("count").sum()

    assert s.param.value == "0.weight" and s.kind.value == "grad"
    assert total(pane_object(s.dist_pane).object) == 16 * 6 * 8     # elements x recorded steps
    s.param.value = "2.weight"
    s.kind.value = "weight"
    assert total(pane_object(s.dist_pane).object) == 3 * 16 * 8


def test_two_runs_are_overlaid_in_the_curves(runs):
    board = RunBoard([runs / "slow", runs / "fast"])
    assert board.title == "slow vs fast"
    s = RunSession(board.runs, periodic=False)
    s.curves.value = ["loss"]
    curves = pane_object(s.curves_pane).object
    frame = curves[()] if isinstance(curves, hv.DynamicMap) else curves
    labels = {el.label for el in frame.traverse(lambda e: e, [hv.Curve])}
    assert any("slow" in lab for lab in labels) and any("fast" in lab for lab in labels)
    # the single-run views follow the run select
    s.run_select.value = "fast"
    assert s.run.name == "fast"


def live_run(store, steps: int):
    """A watch left open (a run being written) after ``steps`` logged and flushed steps."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = dv.watch(model, opt, store=store)
    for step in range(steps):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        w.log(step, loss=1.0 / (step + 1))
    w.flush()
    return w


def test_a_live_run_is_followed(tmp_path):
    w = live_run(tmp_path / "live", 3)
    try:
        s = RunSession([tmp_path / "live"], periodic=False)
        assert "(training): step 2" in s.status.object
        assert s.tick() is False                      # nothing new
        w.log(10, loss=0.5)
        w.flush()
        assert s.tick() is True and "step 10" in s.status.object
        s.follow.value = False
        w.log(11, loss=0.25)
        w.flush()
        assert s.tick() is False and "step 11" in s.status.object   # status only
    finally:
        w.close()


def test_a_run_without_steps_shows_notes_not_errors(tmp_path):
    from dlviz_gpu.watch import ParamInfo, RunWriter

    with RunWriter(tmp_path / "empty") as wr:
        wr.define_params([ParamInfo("w", (3, 4), "float32", 12, "w", False, 3, 4)])
    s = RunSession([tmp_path / "empty"], periodic=False)
    assert "waiting for the first step" in s.status.object
    for pane in (s.curves_pane, s.weights_pane):
        text = pane_object(pane).object
        assert isinstance(text, str) and "nothing to draw yet" in text, pane


def test_served_page_holds_the_run(runs):
    board = RunBoard(runs / "fast")
    board.warm()
    url = board.serve(port=0)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = resp.read().decode()
        assert resp.status == 200 and "fast" in body
    finally:
        url.stop()


def test_bad_runs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="runs: expected at least one run"):
        RunBoard([])
    with pytest.raises(FileNotFoundError):
        RunBoard(tmp_path / "missing")


def test_a_live_run_redraws_only_the_tab_on_screen(tmp_path):
    w = live_run(tmp_path / "live", 2)
    try:
        s = RunSession([tmp_path / "live"], periodic=False)
        s.tabs_widget.active = 1                       # gradient flow on screen
        assert s.visible == "Gradient flow"
        flow, curves = pane_object(s.flow_pane), pane_object(s.curves_pane)
        w.log(5, loss=0.1)
        w.flush()
        assert s.tick()
        assert pane_object(s.flow_pane) is not flow            # redrawn
        assert pane_object(s.curves_pane) is curves            # left for later
        s.tabs_widget.active = 0                               # shown again: redrawn now
        assert pane_object(s.curves_pane) is not curves
    finally:
        w.close()


def test_a_served_page_follows_the_run_only_once_the_browser_has_it(tmp_path):
    # Panel drops what a session changes between the browser's pull of the document and
    # its "document ready" message; a redraw in that window left the browser without
    # models that every later redraw referred to, so the page never showed new steps
    import weakref

    from bokeh.document import Document
    from panel.io.document import MockSessionContext
    from panel.io.state import set_curdoc

    w = live_run(tmp_path / "live", 3)
    doc = Document()
    context = MockSessionContext(document=doc)
    doc._session_context = weakref.ref(context)        # a served session, not yet loaded
    s = None
    try:
        with set_curdoc(doc):
            s = RunSession([tmp_path / "live"], periodic=True)
            assert s._following is None                  # no periodic callback yet
            w.log(10, loss=0.5)
            w.flush()
            status = s.status.object
            assert s.tick() is False and s.status.object == status   # nothing touched
            pn.state._on_load(doc)                       # the browser's "document ready"
            assert s._following is not None and s._following.period == 2000
            assert s.tick() is True and "step 10" in s.status.object
    finally:
        if s is not None and s._following is not None:
            s._following.stop()
        w.close()


def test_a_page_outside_a_server_follows_at_once(tmp_path):
    w = live_run(tmp_path / "live", 3)
    try:
        s = RunSession([tmp_path / "live"], periodic=True)
        assert s._following is not None
        s._following.stop()
        w.log(10, loss=0.5)
        w.flush()
        assert s.tick() is True and "step 10" in s.status.object
    finally:
        w.close()


def _shown_note(pane) -> str:
    text = pane_object(pane).object
    assert isinstance(text, str), pane
    return text


def _spoil(path, how):
    """Make the run file at ``path`` bad: delete it (and its WAL), truncate or replace it."""
    if how == "deleted":
        for side in ("", "-wal", "-shm"):
            p = path.with_name(path.name + side)
            if p.exists():
                p.unlink()
    elif how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(0)
    else:
        path.write_bytes(b"these are not the steps you are looking for\n" * 200)


@pytest.mark.parametrize("how", ["deleted", "truncated", "replaced"])
def test_a_run_file_going_bad_is_shown_and_the_board_keeps_answering(tmp_path, how):
    from dlviz_gpu.watch.store import RunFileError

    store = tmp_path / "live"
    w = live_run(store, 3)
    try:
        board = RunBoard(store)
        s = RunSession(board.runs, periodic=False)
        w.log(5, loss=0.1)
        w.flush()
        assert s.tick() is True and "step 5" in s.status.object    # followed
        if how != "deleted":
            w.close()          # a finished run (a live one's WAL still holds its steps)
        _spoil(store / "run.sqlite", how)
        with pytest.raises(RunFileError) as caught:
            board.runs[0].last_step
        problem = caught.value.problem

        # the periodic check: no exception, nothing redrawn, the status says why
        assert s.tick() is False
        assert s.status.object == f"**live**: cannot be read: {problem}"
        assert s.tick() is False                                      # and again
        # the views the user asks for now show the note instead of raising
        s.tabs_widget.active = 4                                      # the weights
        s.wstat.value = "extremum"
        s.kind.value = "weight"
        s.smoothing.value = 0.1
        for pane in (s.weights_pane, s.dist_pane, s.curves_pane):
            assert _shown_note(pane) == f"*live: cannot be read: {problem}*", pane
        # a page opened now (the board's runs are shared) opens and says the same
        page = RunSession(board.runs, periodic=False)
        assert page.status.object == s.status.object
        assert _shown_note(page.flow_pane) == f"*live: cannot be read: {problem}*"
    finally:
        try:
            w.close()
        except Exception:      # its file is gone: the writer's own business
            pass


def test_a_run_file_going_bad_shows_its_name_and_problem_escaped(tmp_path):
    name = "ru<n>\x1b"
    w = live_run(tmp_path / name, 2)
    w.close()
    s = RunSession([tmp_path / name], periodic=False)
    _spoil(tmp_path / name / "run.sqlite", "deleted")
    assert s.tick() is False
    assert s.status.object.startswith("**ru&lt;n&gt;\\x1b**: cannot be read: ")


def test_a_deleted_run_written_again_is_followed_again(tmp_path):
    store = tmp_path / "live"
    w = live_run(store, 3)
    w.close()
    s = RunSession([store], periodic=False)
    _spoil(store / "run.sqlite", "deleted")
    assert s.tick() is False and "cannot be read" in s.status.object
    w = live_run(store, 6)                      # a new run at the same place
    try:
        assert s.tick() is True and "(training): step 5" in s.status.object
    finally:
        w.close()
