"""``dlviz serve`` and ``dlviz demo`` in headless Chromium, started with their real commands.

The checkpoint is written with the ``safetensors`` package (bf16, fp16, fp32
and int8 tensors).  In the page: choose a layer in the tensor tree, zoom with
the mouse wheel, read a hover, switch ``agg``, read the stats table; and the
demo's page shows a model that trains while one looks.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from . import bokehjs as bj
from .conftest import status_step

pytestmark = pytest.mark.browser
torch = pytest.importorskip("torch")

# the tensor the test chooses: 24 x 40 elements, so the heatmap shows one block per element
SMALL = "blocks.1.attn.proj.weight"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(5)
    tensors = {
        "embed.weight": torch.randn(300, 40, generator=gen),
        "blocks.0.attn.qkv.weight": torch.randn(120, 40, generator=gen).to(torch.bfloat16),
        "blocks.0.attn.qkv.bias": torch.randn(120, generator=gen).to(torch.bfloat16),
        "blocks.0.mlp.fc.weight": torch.randn(160, 40, generator=gen).to(torch.float16),
        SMALL: torch.randn(24, 40, generator=gen),
        "blocks.1.mlp.quant": torch.randint(-100, 100, (16, 16), generator=gen,
                                            dtype=torch.int8),
    }
    tensors[SMALL][5, 7] = 9.5  # one element far from the rest
    path = tmp_path_factory.mktemp("dash-browser") / "model.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def heat(page, name: str):
    """The heatmap of tensor ``name``: its plot frame and image glyph (None while absent)."""
    v = bj.views(page)
    plots = [p for p in v["plots"] if (p["title"] or "").startswith(name + " [")]
    if not plots:
        return None
    plot = plots[0]
    images = [g for g in v["glyphs"] if g["type"] == "Image" and g["plot"] == plot["id"]]
    return (plot, images[0]) if images else None


def tree_row(page, name: str):
    """The tensor tree's row whose first cell ends with the last part of ``name``."""
    leaf = name.rsplit(".", 2)
    return page.locator(".tabulator-row").filter(
        has=page.locator(".tabulator-cell", has_text=re.compile(rf"\b{re.escape(leaf[-1])}$")))


def stats_cells(page) -> dict:
    text = page.locator("table.dlviz-stats").first.inner_text()
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def test_dlviz_serve_choose_zoom_hover_agg(tab, command, checkpoint):
    path, tensors = checkpoint
    app = command("serve", path)
    url = app.wait_ready()
    page = tab.page
    bj.load(page, url)
    # the first tensor shown is the largest matrix
    bj.wait_until(lambda: heat(page, "embed.weight"), page, "the embed.weight heatmap")
    assert page.get_by_text("6 tensors", exact=False).count() >= 1

    # choose a layer in the tree: filter, then click its row
    page.get_by_placeholder("substring or glob").fill("attn.proj")
    row = tree_row(page, SMALL)
    bj.wait_until(lambda: row.count() == 1, page, "the filtered tree row")
    row.first.click()
    plot, image = bj.wait_until(lambda: heat(page, SMALL), page, f"the {SMALL} heatmap")
    assert (image["x"], image["dw"], image["y"], image["dh"]) == (0, 40, 0, 24)
    assert image["shape"] == [24, 40]  # fewer cells than pixels: one block per element

    # hover over element (5, 7): the tooltip shows that element
    t = tensors[SMALL].double().numpy()
    x = plot["x"] + (7 + 0.5) * plot["width"] / 40
    y = plot["y"] + (5 + 0.5) * plot["height"] / 24
    tip = bj.parse_tooltip(bj.hover_text(page, x, y))
    assert bj.parse_span(tip["rows"]) == (5, 5) and bj.parse_span(tip["cols"]) == (7, 7)
    assert bj.tooltip_close(tip["mean"], t[5, 7])

    # the stats table: exact statistics of the chosen tensor
    cells = stats_cells(page)
    assert float(cells["max"]) == pytest.approx(9.5)
    assert float(re.sub(r"[^0-9.e+-]", "", cells["Frobenius norm"])) == pytest.approx(
        np.sqrt((t ** 2).sum()), rel=1e-4)
    assert cells["largest row norms"].lstrip().startswith("5")

    # switch agg: the plot's title says so and the heatmap is re-aggregated
    page.locator("select").filter(has=page.locator("option[value='extremum']")).first \
        .select_option("extremum")
    bj.wait_until(lambda: (lambda h: h and h[0]["title"].endswith("extremum"))(heat(page, SMALL)),
                  page, "the heatmap redrawn with agg=extremum")

    # zoom on the big bf16 matrix: the server re-aggregates a smaller window
    page.get_by_placeholder("substring or glob").fill("")
    page.get_by_placeholder("substring or glob").fill("qkv.weight")
    bj.wait_until(lambda: tree_row(page, "blocks.0.attn.qkv.weight").count() == 1, page,
                  "the qkv row")
    tree_row(page, "blocks.0.attn.qkv.weight").first.click()
    plot, image = bj.wait_until(lambda: heat(page, "blocks.0.attn.qkv.weight"), page,
                                "the qkv heatmap")
    bj.wheel(page, plot["x"] + plot["width"] / 2, plot["y"] + plot["height"] / 2, steps=3)
    bj.wait_until(lambda: (lambda h: h and h[1]["dw"] < 40 and h[1]["dh"] < 120)(
        heat(page, "blocks.0.attn.qkv.weight")), page, "a re-aggregated, smaller window")
    tab.assert_clean()
    app.assert_clean()


def test_dlviz_demo_trains_while_the_page_follows(tab, command, tmp_path):
    app = command("demo", "--seed", "0", "--store", tmp_path / "demo-run")
    url = app.wait_ready()
    page = tab.page
    bj.load(page, url)
    status = page.get_by_text(re.compile(r"training: step [\d,]+"))
    bj.wait_until(lambda: status.count() >= 1, page, "the training status line")

    def step():
        return status_step(status, r"training: step ([\d,]+)")

    first = bj.wait_until(step, page, "a step number")
    bj.wait_until(lambda: (step() or 0) > first, page, "the training to advance on the page")
    # the heatmap of the first tensor is drawn and the summary names the blocks
    assert any("[" in (p["title"] or "") for p in bj.views(page)["plots"])
    # the summary tab: the module tree with output shapes of the meta-device pass
    page.get_by_text("Summary", exact=True).first.click()
    summary = page.locator("pre.dlviz-summary")
    bj.wait_until(lambda: summary.count() == 1 and summary.first.is_visible(), page,
                  "the model summary")
    text = summary.first.inner_text()
    assert re.search(r"fc \(Linear\)\s+\[1, 64, 1024\]\s+263,168", text), text
    assert "Total params: 5,017,600" in text
    # the training is recorded (dv.watch): its gradient flow is one of the page's tabs
    page.get_by_text("Gradient flow", exact=True).first.click()
    bj.wait_until(lambda: any("grad norm per parameter" in (p["title"] or "")
                              for p in bj.views(page)["plots"]), page, "the gradient flow")
    assert (tmp_path / "demo-run" / "run.sqlite").is_file()
    print(f"dlviz demo: first page ready {app.ready_s:.1f} s after the command")
    tab.assert_clean()
    app.assert_clean()
