"""``dlviz serve RUN`` in headless Chromium while a real training process writes the run.

The page must follow the run: new steps appear without a reload (status line
and gradient-flow picture), and the weights tab steps through the snapshots.
"""

import re
import subprocess
import sys
import textwrap
import time

import pytest

from . import bokehjs as bj
from .conftest import status_step

pytestmark = pytest.mark.browser
torch = pytest.importorskip("torch")

TRAINER = textwrap.dedent("""
    import sys, time, torch
    import dlviz_gpu as dv
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    x = torch.randn(64, 8); y = x[:, :4].argmax(1)
    with dv.watch(m, opt, store=sys.argv[1], snapshot_every=5) as run:
        for step in range(100000):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(x), y)
            loss.backward(); opt.step()
            run.log(step, loss=loss)
            run.flush()
            time.sleep(0.25)
""")


@pytest.fixture
def trainer(tmp_path):
    store = tmp_path / "live-run"
    proc = subprocess.Popen([sys.executable, "-c", TRAINER, str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    from dlviz_gpu.watch import open_run

    def steps():
        try:
            return open_run(store).last_step or 0
        except (FileNotFoundError, ValueError):     # not created, or its schema not yet
            return 0

    deadline = time.monotonic() + 120
    while steps() < 5:
        if proc.poll() is not None:
            pytest.fail(f"the training process exited: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail("the training process wrote no steps in 120 s")
        time.sleep(0.2)
    yield store
    proc.kill()
    proc.wait(30)


def flow_columns(page):
    """Columns (recorded steps) of the gradient-flow picture, None while it is absent."""
    v = bj.views(page)
    plots = [p for p in v["plots"] if "grad norm per parameter" in (p["title"] or "")]
    if not plots:
        return None
    images = [g for g in v["glyphs"] if g["type"] == "Image" and g["plot"] == plots[0]["id"]]
    return images[0]["shape"][1] if images else None


def open_live_run(tab, command, trainer):
    """``dlviz serve`` of the live run, its page loaded: (app, page, the status line)."""
    app = command("serve", trainer)
    url = app.wait_ready()
    page = tab.page
    bj.load(page, url)
    status = page.get_by_text(re.compile(r"\(training\): step [\d,]+"))
    bj.wait_until(lambda: status.count() >= 1, page, "the run's status line")
    return app, page, status


def test_dlviz_serve_follows_a_live_run(tab, command, trainer):
    app, page, status = open_live_run(tab, command, trainer)

    def step():
        return status_step(status, r"\(training\): step ([\d,]+)")

    first = bj.wait_until(step, page, "a step number")
    bj.wait_until(lambda: (step() or 0) >= first + 3, page, "new steps on the page")

    # the gradient flow: one column per recorded step, more of them as training goes on
    page.get_by_text("Gradient flow", exact=True).first.click()
    cols = bj.wait_until(lambda: flow_columns(page), page, "the gradient-flow picture")
    bj.wait_until(lambda: (flow_columns(page) or 0) > cols, page,
                  "the gradient flow redrawn with new steps")

    # the weights tab: the snapshots (every 5 logged steps) behind a play/pause step player
    page.get_by_text("Weights", exact=True).first.click()
    steps = bj.wait_until(lambda: page.evaluate(
        "() => [...Bokeh.documents[0].all_models].filter(m => /DiscretePlayer$/.test(m.type))"
        ".map(m => m.options)")[0] if page.evaluate(
        "() => [...Bokeh.documents[0].all_models].some(m => /DiscretePlayer$/.test(m.type))")
        else None, page, "the snapshot player")
    assert len(steps) >= 2 and all(int(v) % 5 == 0 for v in steps), steps
    tab.assert_clean()
    app.assert_clean()


def test_dlviz_serve_says_when_the_run_file_goes_bad(tab, command, trainer):
    app, page, training = open_live_run(tab, command, trainer)

    # the run file is deleted under the page (the trainer writes on, to no file)
    run_file = trainer / "run.sqlite"
    for side in ("", "-wal", "-shm"):
        run_file.with_name(run_file.name + side).unlink(missing_ok=True)
    gone = page.get_by_text(re.compile(r"live-run: cannot be read: the run file is gone"))
    bj.wait_until(lambda: gone.count() >= 1, page, "the status line saying the run is gone")
    assert training.count() == 0

    tab.assert_clean()
    app.assert_clean()
