"""Names are data: hostile tensor names are shown escaped everywhere and stay exact as data.

Checkpoints (safetensors, npz, torch) whose tensor names hold each class of
hostile character go through ``dlviz inspect`` (nothing raw reaches the
terminal), ``dlviz render`` in subprocesses under several hash seeds (the
views' HoloViews labels used to fail on a hash-seed-dependent path), the
dashboard in Python (tree, select, title, the right tensor drawn) and the
run dashboard.  ``tests/browser/test_hostile_names_browser.py`` serves one.
"""

from __future__ import annotations

import ast
import html
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dlviz_gpu.cli import NAME_LIMIT, main
from dlviz_gpu.names import ELLIPSIS, display, displayed

ROOT = Path(__file__).resolve().parents[1]

#: One name per class of hostile character (every one drawable: a 2-D float tensor).
HOSTILE = {
    "esc": "blk.\x1b[2J\x1b[31mred.weight",
    "crlf": "blk.a\r\nb.weight",
    "nul": "blk.nul\x00x.weight",
    "c0": "blk.bell\x07\x08\x0b\x0cx.weight",
    "c1": "blk.c1\x85\x9bx.weight",
    "del": "blk.del\x7fx.weight",
    "bidi": "blk.\u202eevil.weight",
    "zero_width": "blk.zero\u200bwidth.weight",
    "html": "blk.<b>x</b></script><img src=x onerror=alert(1)>.weight",
    "backtick": "blk.tick`<i>x</i>`.weight",
    "backslash": "blk.back\\x1b.weight",
    "long": "blk." + "long" * 1000 + ".weight",
}
#: torch files can also hold a lone surrogate (pickle keeps it; safetensors' JSON refuses it)
SURROGATE = "blk.w\ud800x.weight"
PLAIN = "plain.weight"


def raw_controls(text: str, allowed: str = "\n") -> list[str]:
    """The characters of ``text`` a terminal or page must never get raw (``allowed`` aside)."""
    return sorted({c for c in text if not c.isprintable() and c not in allowed})


def doc_strings(doc) -> list[str]:
    """Every string of a Bokeh document as the browser gets it (its JSON, read back)."""
    from bokeh.core.json_encoder import serialize_json

    out, todo = [], [json.loads(serialize_json(doc.to_json()))]
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            todo += list(v.keys()) + list(v.values())
        elif isinstance(v, list):
            todo += v
    return out


def tensors(extra=()) -> dict:
    rng = np.random.default_rng(7)
    out = {name: (rng.standard_normal((6 + i, 5)) * (i + 1)).astype(np.float32)
           for i, name in enumerate([*HOSTILE.values(), *extra])}
    out[PLAIN] = rng.standard_normal((20, 10)).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``{format: (path, {name: array})}`` for safetensors, npz and torch."""
    from safetensors.numpy import save_file

    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("hostile")
    out = {}
    t = tensors()
    save_file(t, str(d / "hostile.safetensors"))
    out["safetensors"] = (d / "hostile.safetensors", t)
    np.savez(d / "hostile.npz", **t)
    out["npz"] = (d / "hostile.npz", t)
    tt = tensors([SURROGATE])
    torch.save({k: torch.from_numpy(v) for k, v in tt.items()}, d / "hostile.pt")
    out["torch"] = (d / "hostile.pt", tt)
    return out


# --------------------------------------------------------------------------
# display
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name, shown", [
    ("layers.0.mlp.fc.weight", "layers.0.mlp.fc.weight"),
    ("a\x1b[2Jb", "a\\x1b[2Jb"),
    ("a\r\nb\tc", "a\\r\\nb\\tc"),
    ("n\x00", "n\\x00"),
    ("c1\x85\x9b\x7f", "c1\\x85\\x9b\\x7f"),
    ("\u202eevil\u200b", "\\u202eevil\\u200b"),
    ("w\ud800", "w\\ud800"),
    ("tag\U000e0041", "tag\\U000e0041"),
    ("back\\slash", "back\\\\slash"),
    ("<b>&amp;</script>", "<b>&amp;</script>"),         # HTML escaping is the page's job
    ("caf\u00e9 \u5c64 'q' \"d\"", "caf\u00e9 \u5c64 'q' \"d\""),
])
def test_display_escapes_what_is_not_printable_like_repr(name, shown):
    assert display(name) == shown
    assert display(name).isprintable()


def test_display_of_free_text_keeps_backslashes_and_cuts_long_names():
    assert display("C:\\models\\x.pt", exact=False) == "C:\\models\\x.pt"
    assert display("a\\\x1b", exact=False) == "a\\\\x1b"
    long = "head." + "x" * 500 + ".tail"
    cut = display(long, limit=60)
    assert len(cut) <= 60 and ELLIPSIS in cut
    assert cut.startswith("head.xx") and cut.endswith("x.tail")
    # a cut never splits an escape
    cut = display("\x1b" * 100, limit=20)
    assert cut.replace(ELLIPSIS, "").replace("\\x1b", "") == ""
    assert display(PLAIN, limit=60) == PLAIN
    with pytest.raises(ValueError, match=r"limit: expected an integer >= 3 or None; got 2"):
        display("x", limit=2)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=40))
def test_display_is_printable_and_maps_back_to_exactly_one_name(name):
    shown = display(name)
    assert shown.isprintable()
    # the shown form is the body of a Python string literal: it reads back as the name
    assert ast.literal_eval('"' + shown.replace('"', '\\"') + '"') == name


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=30)
       | st.text(alphabet="\\'\"\x1bx1\n\u202e", max_size=12))
def test_display_matches_the_character_rule_in_both_modes(name):
    """The fast path (str.__repr__, quotes undone) is the per-character rule, quotes and
    backslashes included."""
    from dlviz_gpu.names import _escape

    assert display(name) == "".join(_escape(c, True) for c in name)
    assert display(name, exact=False) == "".join(_escape(c, False) for c in name)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=40))
def test_style_label_is_accepted_by_holoviews_sanitizers(name):
    from holoviews.core import util

    from dlviz_gpu.views.style import label

    text = label(name)
    assert text.isprintable()
    for sanitize in (util.label_sanitizer, util.group_sanitizer, util.sanitize_identifier):
        sanitize(text)                 # raised "no such name" or "escape control code" before
        sanitize(text, escape=False)


def test_style_label_edge_cases():
    from dlviz_gpu.views.style import LABEL_LIMIT, label, labels

    assert label("\U00017000") == "\\U00017000"     # printable, but no Unicode name
    assert unicodedata.name(label("\u5c64")[0])
    assert label("trait_names") == "trait_names "   # a name HoloViews reserves
    assert len(label(HOSTILE["long"])) <= LABEL_LIMIT
    # names cut to the same text are shown whole, so categorical factors stay unique
    a, b = "m." + "x" * 300 + ".a", "m." + "x" * 300 + ".b"
    same = "m." + "x" * 150 + "1" + "x" * 150
    other = "m." + "x" * 150 + "2" + "x" * 150
    assert label(same) == label(other)
    shown = labels([a, b, same, other])
    assert len(set(shown)) == 4
    assert displayed([HOSTILE["esc"], PLAIN]) == {display(HOSTILE["esc"]): HOSTILE["esc"],
                                                  PLAIN: PLAIN}


def test_names_module_imports_no_plotting_library():
    code = ("import sys, dlviz_gpu.names as n; n.display('x'); "
            "print(sorted(m for m in ('holoviews', 'bokeh', 'panel', 'numba', 'numpy') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['numpy']" or done.stdout.strip() == "[]", done.stdout


# --------------------------------------------------------------------------
# dlviz inspect
# --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["safetensors", "npz", "torch"])
def test_inspect_shows_every_name_escaped_and_nothing_raw(capsys, files, fmt):
    path, data = files[fmt]
    if fmt == "npz":
        # a zip member's name ends at its first NUL (zipfile reads it so): that member is
        # "blk.nul", not an .npy array
        data = {k: v for k, v in data.items() if "\x00" not in k}
    assert main(["inspect", str(path)]) == 0
    out, err = capsys.readouterr()
    assert raw_controls(out) == [] and raw_controls(err) == []
    lines = out.splitlines()
    assert len(lines) == len(data) + 2          # the header, a row per tensor, the totals
    for name in data:
        shown = display(name, limit=NAME_LIMIT)
        assert any(line.startswith(shown + " ") for line in lines), shown
    assert "blk.\\x1b[2J\\x1b[31mred.weight" in out and "blk.a\\r\\nb.weight" in out
    assert "blk.back\\\\x1b.weight" in out      # a literal backslash is not an escape

    assert main(["inspect", str(path), "--tree"]) == 0
    out, _ = capsys.readouterr()
    assert raw_controls(out) == []
    assert "\n    \\x1b[2J\\x1b[31mred " in out and "\n    a\\r\\nb " in out

    # --json stays exact JSON: the names come back as they are in the file
    assert main(["inspect", str(path), "--json", "--tree"]) == 0
    out, _ = capsys.readouterr()
    assert raw_controls(out) == []
    doc = json.loads(out)
    assert {r["name"] for r in doc["tensors"]} == set(data)
    assert display(HOSTILE["esc"][:-7]) not in {m["path"] for m in doc["modules"]}
    assert HOSTILE["esc"][:-7] in {m["path"] for m in doc["modules"]}


def test_inspect_filter_and_errors_show_names_escaped(capsys, files, tmp_path):
    path, _ = files["safetensors"]
    assert main(["inspect", str(path), "--filter", "blk.a*"]) == 0
    out, _ = capsys.readouterr()
    assert raw_controls(out) == [] and "blk.a\\r\\nb.weight" in out
    # a file name with an escape sequence, in a one-line refusal
    bad = tmp_path / "evil\x1b[2J.safetensors"
    bad.write_bytes(b"\x01\x00")
    assert main(["inspect", str(bad)]) == 1
    _, err = capsys.readouterr()
    assert raw_controls(err) == [] and "evil\\x1b[2J.safetensors" in err
    assert err.startswith("dlviz: error: ") and err.count("\n") == 1


def test_inspect_on_an_ascii_terminal_escapes_what_it_cannot_encode(files):
    path, _ = files["torch"]
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    done = subprocess.run([sys.executable, "-m", "dlviz_gpu.cli", "inspect", str(path)],
                          capture_output=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    out = done.stdout.decode("ascii")
    assert "blk.\\u202eevil.weight" in out and "blk.w\\ud800x.weight" in out


# --------------------------------------------------------------------------
# dlviz render
# --------------------------------------------------------------------------

FORBIDDEN_IN_HTML = "\x00\x07\x08\x0b\x0c\x1b\x7f\x85\x9b\u202e\u200b"


@pytest.mark.parametrize("seed", ["0", "3", "7"])
def test_render_draws_every_hostile_tensor_under_any_hash_seed(files, tmp_path, seed):
    """Seed 0 failed in HoloViews' renderer (a traceback), seed 3 in heatmap() (listed as
    'could not be drawn'): both from a raw name given to HoloViews as a label."""
    path, data = files["torch"]
    out = tmp_path / "report.html"
    env = dict(os.environ, PYTHONHASHSEED=seed)
    done = subprocess.run([sys.executable, "-m", "dlviz_gpu.cli", "render", str(path), "-o",
                           str(out)], capture_output=True, text=True, timeout=600, env=env,
                          cwd=ROOT, errors="strict")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{len(data)} tensors drawn, 0 listed only" in done.stderr, done.stderr
    assert raw_controls(done.stderr, allowed="\n\r") == []   # \r: the progress bar's own
    text = out.read_text(encoding="utf-8")
    assert not set(text) & set(FORBIDDEN_IN_HTML)
    assert HOSTILE["crlf"] not in text and SURROGATE.encode("utf-8", "surrogatepass") \
        not in out.read_bytes()
    for name in data:
        # the table row links the tensor's section, whose heading names it whole
        assert f">{html.escape(display(name))}</a>" in text, display(name)[:60]
        assert f"<h3>{html.escape(display(name))}</h3>" in text
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<img src=x" not in text


def test_render_png_folder_escapes_names_in_its_index(files, tmp_path, capsys):
    path, data = files["safetensors"]
    folder = tmp_path / "pictures"
    assert main(["render", str(path), "-o", str(folder), "--png", "-q",
                 "--filter", "blk.*"]) == 0
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert not set(index) & set(FORBIDDEN_IN_HTML)
    entries = json.loads((folder / "index.json").read_text(encoding="utf-8"))["tensors"]
    assert {e["name"] for e in entries} == set(HOSTILE.values())        # exact in the JSON
    for e in entries:
        assert e["file"] and (folder / e["file"]).is_file()
        assert e["file"].isascii() and e["file"].isprintable()
        assert f"<h3>{html.escape(display(e['name']))}</h3>" in index


# --------------------------------------------------------------------------
# the dashboard
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def board(files):
    from dlviz_gpu.app.dashboard import Dashboard

    path, data = files["torch"]
    return Dashboard(str(path)), data


def test_dashboard_tree_and_select_show_names_and_give_back_the_exact_ones(board):
    from dlviz_gpu.app.dashboard import DashboardSession

    b, data = board
    s = DashboardSession(b)
    frame = s.tree.value
    for col in ("label", "name", "dtype"):      # (the tree indents with EM SPACE)
        assert all(raw_controls(str(v), allowed="\u2003") == [] for v in frame[col]), col
    # every drawable tensor is in the select, shown escaped, its value the exact name
    assert dict(s.tensor.options) == {display(n): n for n in data}
    assert all(k.isprintable() for k in s.tensor.options)
    # filtering the tree by what it shows
    assert len(b.tree_rows("blk.")) == len(data) - 1
    rows = b.tree_rows("*\x1b*")
    assert [r["name"] for r in rows] == [HOSTILE["esc"]]
    assert rows[0]["label"] == display(HOSTILE["esc"])


@pytest.mark.parametrize("key", ["esc", "crlf", "nul", "bidi", "html", "backtick", "long",
                                 "surrogate"])
def test_dashboard_draws_the_chosen_hostile_tensor(board, key):
    from bokeh.document import Document

    from dlviz_gpu.app.dashboard import DashboardSession
    from dlviz_gpu.views.style import label

    b, data = board
    name = SURROGATE if key == "surrogate" else HOSTILE[key]
    s = DashboardSession(b)
    frame = s.tree.value
    row = int(np.flatnonzero(frame["name"].to_numpy() == display(name))[0])
    s._on_click(SimpleNamespace(row=row))           # a click on the tree's row
    assert s.tensor.value == name
    assert s.tree.selection == [row]
    title = s.title_pane.object
    assert f"<code>{html.escape(display(name))}</code>" in title
    assert raw_controls(title, allowed="") == [] and "<i>" not in title
    # the right tensor: the heatmap's exact value range and element count are its own
    t = data[name]
    view = s.heatmap.view
    assert view.value_range == (float(t.min()), float(t.max()))
    assert view.total_count == t.size
    assert s.heatmap[()].label == label(name)
    import holoviews as hv

    hist_title = hv.Store.lookup_options("bokeh", s.hist_pane.object, "plot").kwargs["title"]
    assert hist_title.startswith(label(name) + ": ")
    # the page draws (HoloViews' renderer used to raise on the raw label)
    root = s.layout.get_root(Document())
    assert root is not None


def test_a_dashboard_whose_first_tensor_is_hostile_serves_its_page(files):
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from dlviz_gpu.app.dashboard import Dashboard
    from dlviz_gpu.views.output import PAGE_FAILED, safe_page

    path, _ = files["safetensors"]
    b = Dashboard(str(path), initial=HOSTILE["crlf"], title="evil\x1b[2J title")
    doc = Document()
    with set_curdoc(doc):
        safe_page(b.page)().server_doc(doc)
    strings = doc_strings(doc)
    assert not any(PAGE_FAILED.split(".")[0] in v for v in strings)
    # (the tree indents with EM SPACE, Markdown has newlines)
    assert [c for v in strings for c in raw_controls(v, allowed="\n\u2003")] == []
    assert any("evil\\x1b[2J title" in v for v in strings)
    # Panel's HTML pane travels HTML-escaped once more
    title = html.escape(f"<code>{html.escape(display(HOSTILE['crlf']))}</code>")
    assert any(title in v for v in strings)


def test_run_board_shows_parameter_names_escaped(tmp_path):
    torch = pytest.importorskip("torch")
    import dlviz_gpu as dv
    from bokeh.document import Document

    from dlviz_gpu.app.runs import RunSession

    model = torch.nn.Module()
    names = ["w\x1b[31m", "b\r\nx", "z\u202e"]
    for i, n in enumerate(names):
        model.register_parameter(n, torch.nn.Parameter(torch.randn(4 + i, 3)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(3)
    run = dv.watch(model, opt, store=tmp_path / "run\x1b", snapshot_every=2)
    for step in range(4):
        opt.zero_grad()
        loss = sum((getattr(model, n) @ x).pow(2).sum() for n in names)
        loss.backward()
        opt.step()
        run.log(step, **{"loss": loss, "odd\x1bscalar": loss * 2})
    run.close()
    s = RunSession([tmp_path / "run\x1b"], title="run\x1b", periodic=False)
    for w in (s.param, s.wparam, s.curves, s.run_select):
        assert all(k.isprintable() for k in w.options), w
    assert dict(s.param.options) == {display(n): n for n in names}
    assert s.param.value == names[0]
    s.param.value = names[1]
    s.curves.value = ["odd\x1bscalar"]
    s.wparam.value = names[2]
    doc = Document()
    s.layout.server_doc(doc)
    strings = doc_strings(doc)
    assert [c for v in strings for c in raw_controls(v, allowed="\n")] == []
    assert "w\\x1b[31m" in strings and "odd\\x1bscalar" in strings


def test_name_select_sends_only_shown_forms_and_maps_back_by_them():
    from bokeh.document import Document

    from dlviz_gpu.app.dashboard import name_select

    esc, text = "x\x1b", "x\\x1b"          # a name whose text is the other one's shown form
    w = name_select(options=displayed([esc, text, PLAIN]), value=esc)
    model = w.get_root(Document())
    assert model.options == [display(esc), display(text), PLAIN]
    assert model.value == "x\\x1b" == display(esc)
    # what the browser sends back is a shown form: mapped by it alone
    w._process_events({"value": display(text)})
    assert w.value == text
    w._process_events({"value": display(esc)})
    assert w.value == esc
    w._process_events({"value": "no such option"})
    assert w.value == esc


def test_estimator_board_shows_hostile_feature_and_class_names():
    pytest.importorskip("sklearn")
    from bokeh.document import Document
    from sklearn.tree import DecisionTreeClassifier

    from dlviz_gpu.app.estimators import EstimatorBoard

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.where(X[:, 0] > 0, "yes\x1b[31m", "no\r\n\u202e")
    features = ["f\x00", "g\x1b[2J", "<b>h</b>"]
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    board = EstimatorBoard(model, X, y, feature_names=features)
    s = board.page()
    doc = Document()
    s.server_doc(doc)
    strings = doc_strings(doc)
    assert [c for v in strings for c in raw_controls(v, allowed="\n")] == []
    for tab in range(1, len(s.objects[-1])):       # the trees and importances tabs too
        s.objects[-1].active = tab
    strings = doc_strings(doc)
    assert [c for v in strings for c in raw_controls(v, allowed="\n")] == []
    assert any("g\\x1b[2J" in v for v in strings)
