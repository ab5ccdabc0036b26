"""The ``dlviz`` command line on real checkpoints written by ``safetensors`` and ``torch``.

Commands run in-process through ``main([...])`` (exit status returned), and
once through the installed console script in a subprocess.  Expected rows and
totals come from the arrays the tests wrote and from the ``safetensors``
package's own reader, never from our catalog.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from dlviz_gpu import cli
from dlviz_gpu.app import report
from dlviz_gpu.cli import main

safetensors_numpy = pytest.importorskip("safetensors.numpy")
torch = pytest.importorskip("torch")
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file as save_torch  # noqa: E402

# name -> array of the single-file checkpoint: fp32, fp16, int8, a conv, a 1-D
# bias, a 3-D tensor, a scalar; values random so every picture has structure
SINGLE_SHAPES = {
    "model.embed.weight": ((40, 24), np.float32),
    "model.layers.0.mlp.up.weight": ((24, 32), np.float16),
    "model.layers.0.mlp.up.bias": ((24,), np.float32),
    "model.layers.0.attn.qkv": ((3, 8, 8), np.float32),
    "model.conv.weight": ((4, 3, 3, 3), np.float32),
    "model.q.weight": ((16, 16), np.int8),
    "model.scale": ((), np.float32),
}
# name -> shape of the sharded bf16 checkpoint, and the shard each name goes to
SHARDED = {
    "layers.0.attn.weight": ((32, 32), 1),
    "layers.0.attn.bias": ((32,), 1),
    "layers.1.attn.weight": ((32, 32), 2),
    "layers.1.mlp.weight": ((64, 32), 2),
    "lm_head.weight": ((50, 32), 2),
}


def _array(rng, shape, dtype):
    if np.dtype(dtype).kind == "i":
        return rng.integers(-120, 120, size=shape, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real checkpoints: one safetensors file, a sharded bf16 set, a torch .pt state dict."""
    root = tmp_path_factory.mktemp("ckpt")
    rng = np.random.default_rng(7)
    single = {n: _array(rng, s, d) for n, (s, d) in SINGLE_SHAPES.items()}
    safetensors_numpy.save_file(single, str(root / "single.safetensors"))

    gen = torch.Generator().manual_seed(3)
    sharded = {n: torch.randn(s, generator=gen).to(torch.bfloat16) for n, (s, _) in SHARDED.items()}
    weight_map = {}
    for k in (1, 2):
        shard = f"model-0000{k}-of-00002.safetensors"
        part = {n: t for n, t in sharded.items() if SHARDED[n][1] == k}
        save_torch(part, str(root / shard))
        weight_map.update({n: shard for n in part})
    index = root / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": sum(2 * t.numel() for t in
                                                                sharded.values())},
                                 "weight_map": weight_map}))

    net = torch.nn.Sequential(torch.nn.Linear(12, 20), torch.nn.LayerNorm(20),
                              torch.nn.Linear(20, 6))
    torch.save(net.state_dict(), root / "net.pt")

    # tensors the report lists or notes: an odd name, all NaN, float8, empty
    save_torch({"blocks/0:attn weight": torch.randn(6, 7, generator=gen),
                "nan.w": torch.full((5, 5), float("nan")),
                "f8.w": torch.randn(4, 4, generator=gen).to(torch.float8_e4m3fn),
                "empty.w": torch.zeros(0, 4)}, str(root / "odd.safetensors"))

    truncated = root / "truncated.safetensors"
    data = (root / "single.safetensors").read_bytes()
    truncated.write_bytes(data[: len(data) - 100])
    return {"root": root, "single": root / "single.safetensors", "single_arrays": single,
            "index": index, "sharded": sharded, "pt": root / "net.pt",
            "pt_state": net.state_dict(), "truncated": truncated,
            "odd": root / "odd.safetensors"}


def run(capsys, *argv) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(text: str) -> dict:
    """name -> (shape, dtype, params, bytes text) from ``dlviz inspect``'s table."""
    rows = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 6 and re.fullmatch(r"[\d,]+", parts[3]):
            rows[parts[0]] = (parts[1], parts[2], int(parts[3].replace(",", "")),
                              " ".join(parts[4:6]))
    return rows


def fmt_bytes(n: int) -> str:
    """The catalog's byte format, written out independently for the checks."""
    if n < 1024:
        return f"{n} B"
    for k, unit in enumerate(("KiB", "MiB", "GiB"), 1):
        if n < 1024 ** (k + 1):
            return f"{n / 1024 ** k:.1f} {unit}"
    return f"{n / 1024 ** 4:.1f} TiB"


# --------------------------------------------------------------------------
# the parser: help, version, usage errors
# --------------------------------------------------------------------------

@pytest.mark.parametrize("argv, shows", [
    (["--help"], "inspect"),
    (["inspect", "--help"], "--tree"),
    (["render", "--help"], "--png"),
    (["serve", "--help"], "--allow-websocket-origin"),
    (["demo", "--help"], "--no-browser"),
])
def test_help_of_each_command_exits_0(capsys, argv, shows):
    code, out, err = run(capsys, *argv)
    assert code == 0
    assert out.startswith("usage: dlviz") and shows in out
    assert err == ""


def test_version(capsys):
    import dlviz_gpu

    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"dlviz {dlviz_gpu.__version__}"


@pytest.mark.parametrize("argv, says", [
    ([], "required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["inspect"], "required: PATH"),
    (["inspect", "{single}", "--max-rows", "0"], "expected a positive integer; got '0'"),
    (["inspect", "{single}", "--depth", "2"], "--depth needs --tree"),
    (["render", "{single}"], "required: -o/--output"),
    (["render", "{single}", "-o", "report.txt"], "expected a file name ending in .html"),
    (["render", "{single}", "-o", "out.html", "--png"], "with --png, expected a folder"),
    (["render", "{single}", "-o", "r.html", "--agg", "median"], "invalid choice: 'median'"),
    (["render", "{single}", "-o", "r.html", "--bins", "-3"], "expected a positive integer"),
    (["serve"], "required: PATH"),
    (["serve", "{single}", "--address", "0.0.0.0"],
     "--address '0.0.0.0' exposes the dashboard beyond this machine; add "
     "--allow-websocket-origin"),
    (["serve", "{single}", "--port", "70000"], "--port: expected 0..65535"),
    (["demo", "--steps", "0"], "expected a positive integer; got '0'"),
    (["demo", "--address", "10.1.2.3"], "exposes the dashboard beyond this machine"),
])
def test_usage_errors_exit_2(capsys, files, tmp_path, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *[a.format(single=files["single"]) for a in argv])
    assert code == 2
    assert "usage: dlviz" in err and says in err
    assert "Traceback" not in err and out == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_engine_lists_match_the_views():
    from dlviz_gpu.views import matrix, style

    assert cli.AGGS == matrix.AGGS
    assert cli.NORMS == style.NORMS


# --------------------------------------------------------------------------
# inspect
# --------------------------------------------------------------------------

def test_inspect_table_matches_the_file(capsys, files):
    code, out, err = run(capsys, "inspect", files["single"])
    assert code == 0 and err == ""
    rows = table_rows(out)
    with safe_open(str(files["single"]), framework="numpy") as f:
        names = list(f.keys())
        expect = {n: f.get_tensor(n) for n in names}
    assert set(rows) == set(names) == set(SINGLE_SHAPES)
    for name, arr in expect.items():
        shape, dtype, params, nbytes = rows[name]
        assert shape == ("x".join(map(str, arr.shape)) or "scalar")
        assert dtype == arr.dtype.name
        assert params == arr.size
        assert nbytes == fmt_bytes(arr.nbytes)
    total_params = sum(a.size for a in expect.values())
    total_bytes = sum(a.nbytes for a in expect.values())
    assert out.strip().splitlines()[-1] == (f"{len(expect)} tensors, {total_params:,} parameters, "
                                            f"{fmt_bytes(total_bytes)}")


def test_inspect_max_rows_keeps_the_totals(capsys, files):
    code, out, _ = run(capsys, "inspect", files["single"], "--max-rows", "2")
    assert code == 0
    assert len(table_rows(out)) == 2
    assert f"... {len(SINGLE_SHAPES) - 2} more" in out
    assert out.strip().splitlines()[-1].startswith(f"{len(SINGLE_SHAPES)} tensors, ")


def test_inspect_json_of_a_sharded_bf16_set(capsys, files):
    code, out, err = run(capsys, "inspect", files["index"], "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    rows = {r["name"]: r for r in doc["tensors"]}
    assert set(rows) == set(SHARDED)
    for name, t in files["sharded"].items():
        r = rows[name]
        assert r["shape"] == list(t.shape)
        assert r["dtype"] == "bfloat16"
        assert r["params"] == t.numel() and r["bytes"] == 2 * t.numel()
        assert Path(r["source"]).name == f"model-0000{SHARDED[name][1]}-of-00002.safetensors"
    n = sum(t.numel() for t in files["sharded"].values())
    assert doc["totals"] == {"tensors": len(SHARDED), "params": n, "bytes": 2 * n}
    assert len(doc["sources"]) == 2


def test_inspect_torch_state_dict(capsys, files):
    code, out, _ = run(capsys, "inspect", files["pt"], "--json")
    assert code == 0
    doc = json.loads(out)
    state = files["pt_state"]
    assert {r["name"]: tuple(r["shape"]) for r in doc["tensors"]} == {
        k: tuple(v.shape) for k, v in state.items()}
    assert all(r["dtype"] == "float32" for r in doc["tensors"])
    assert doc["totals"]["params"] == sum(v.numel() for v in state.values())


def test_inspect_filter_selects_and_totals_the_selection(capsys, files):
    code, out, _ = run(capsys, "inspect", files["single"], "--filter", "model.layers.*")
    assert code == 0
    rows = table_rows(out)
    chosen = [n for n in SINGLE_SHAPES if n.startswith("model.layers.")]
    assert sorted(rows) == sorted(chosen)
    arrays = files["single_arrays"]
    params = sum(arrays[n].size for n in chosen)
    assert f"{len(chosen)} tensors, {params:,} parameters" in out
    assert f"(selected by --filter 'model.layers.*' from {len(SINGLE_SHAPES)} tensors)" in out
    # without wildcards: a case-insensitive substring
    code, out, _ = run(capsys, "inspect", files["single"], "--filter", "CONV", "--json")
    assert [r["name"] for r in json.loads(out)["tensors"]] == ["model.conv.weight"]


def test_inspect_filter_matching_nothing_exits_1(capsys, files):
    code, out, err = run(capsys, "inspect", files["single"], "--filter", "*.nothing")
    assert code == 1 and out == ""
    assert "no tensor matches --filter '*.nothing'" in err


def test_inspect_tree_sums_parameters_per_module(capsys, files):
    code, out, _ = run(capsys, "inspect", files["index"], "--tree")
    assert code == 0
    lines = {ln.strip().split()[0]: ln for ln in out.splitlines()[1:] if ln.strip()}
    sh = files["sharded"]
    layers = sum(t.numel() for n, t in sh.items() if n.startswith("layers."))
    attn0 = sum(t.numel() for n, t in sh.items() if n.startswith("layers.0.attn."))
    assert re.search(rf"^layers\s+{layers:,}\s", lines["layers"].strip())
    assert re.search(rf"^\(all\)\s+{sum(t.numel() for t in sh.values()):,}\s", lines["(all)"])
    # module "layers.0.attn" appears as "attn" under "0", with both tensors below it
    assert re.search(rf"^ {{6}}attn\s+{attn0:,}\s.*2 tensors$", out, re.M)
    assert re.search(r"^ {8}weight\s+1,024\s.*32x32 bfloat16$", out, re.M)
    # --depth 1: the top modules only, tensors still counted
    code, out, _ = run(capsys, "inspect", files["index"], "--tree", "--depth", "1")
    assert code == 0
    assert "attn" not in out and re.search(rf"^  layers\s+{layers:,}\s", out, re.M)
    # --json --tree: one row per module
    code, out, _ = run(capsys, "inspect", files["index"], "--tree", "--json")
    mods = {r["path"]: r for r in json.loads(out)["modules"]}
    assert mods["layers"]["params"] == layers and mods["layers.0.attn"]["tensors"] == 2


# --------------------------------------------------------------------------
# refused files: exit 1, the file named, no traceback
# --------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["inspect"], ["render", "-o", "{tmp}/r.html"],
                                     ["serve", "--port", "0", "--no-browser"]])
def test_missing_file_exits_1_naming_it(capsys, tmp_path, command):
    missing = tmp_path / "nope.safetensors"
    argv = [command[0], missing] + [a.format(tmp=tmp_path) for a in command[1:]]
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert str(missing) in err and err.startswith("dlviz: error: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [["inspect"], ["render", "-o", "{tmp}/r.html"],
                                     ["serve", "--port", "0", "--no-browser"]])
def test_truncated_safetensors_exits_1_naming_it(capsys, files, tmp_path, command):
    argv = [command[0], files["truncated"]] + [a.format(tmp=tmp_path) for a in command[1:]]
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith(f"dlviz: error: {files['truncated']}: ")
    assert "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_console_script_in_a_subprocess(files):
    exe = Path(sys.executable).with_name("dlviz")
    assert exe.exists(), (f"{exe} is missing: the console script is created by "
                          f"'pip install -e .' (scripts/test.sh runs it)")
    ok = subprocess.run([str(exe), "inspect", str(files["index"])], capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert set(table_rows(ok.stdout)) == set(SHARDED)
    bad = subprocess.run([str(exe), "inspect", str(files["truncated"])], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1
    assert str(files["truncated"]) in bad.stderr and "Traceback" not in bad.stderr
    usage = subprocess.run([str(exe), "render"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "usage: dlviz render" in usage.stderr


# --------------------------------------------------------------------------
# render
# --------------------------------------------------------------------------

def drawable(names):
    """The names the report draws by default (not the scalar)."""
    return [n for n in names if SINGLE_SHAPES.get(n, ((1,),))[0] != ()]


@pytest.mark.slow  # compiles the kernels for float32, float16 and int8 (a first use)
def test_render_html_draws_every_tensor(capsys, files, tmp_path):
    out_file = tmp_path / "sub" / "report.html"
    code, out, err = run(capsys, "render", files["single"], "-o", out_file, "--bins", "32")
    assert code == 0, err
    page = out_file.read_text(encoding="utf-8")
    assert "Bokeh" in page and "<!DOCTYPE html>" in page
    assert not list(out_file.parent.glob(".*")), "temporary files left behind"
    # title with the totals
    arrays = files["single_arrays"]
    params = sum(a.size for a in arrays.values())
    assert f"{len(arrays)} tensors, {params:,} parameters" in page
    # one section per drawn tensor, each with its own Bokeh document
    sections = re.findall(r'<section id="t(\d+)">\n<h3>([^<]+)</h3>\n<p class="meta">([^<]*)</p>'
                          r'\n<div id="([^"]+)"', page)
    drawn = {name: meta for _, name, meta, _ in sections}
    assert sorted(drawn) == sorted(drawable(SINGLE_SHAPES))
    assert "drawn as 12 x 9 (a mosaic of kernels)" in drawn["model.conv.weight"]
    assert "drawn as 1 x 24 (a 1 x N strip)" in drawn["model.layers.0.mlp.up.bias"]
    assert "drawn as 3 x 64 (flattened)" in drawn["model.layers.0.attn.qkv"]
    # the scalar is listed with the reason, not drawn
    assert re.search(r"<td>model\.scale</td>.*a scalar</td>", page)
    # each section's div is embedded by a script (one per tensor plus the bar chart)
    assert page.count("const docs_json = ") == len(drawn) + 1
    assert re.search(r"wrote .*report\.html: 6 tensors drawn, 1 listed only", err)
    assert "render: 100%" in err  # the progress bar


@pytest.mark.slow  # compiles the kernels for bfloat16 (a first use)
def test_render_html_sharded_bf16_with_max_tensors(capsys, files, tmp_path):
    out_file = tmp_path / "report.html"
    code, _, err = run(capsys, "render", files["index"], "-o", out_file, "--max-tensors", "2",
                       "--agg", "extremum", "-q")
    assert code == 0, err
    assert err == ""  # --quiet: no progress bar, no summary
    page = out_file.read_text(encoding="utf-8")
    names = re.findall(r"<h3>([^<]+)</h3>", page)
    assert names == ["layers.0.attn.bias", "layers.0.attn.weight"]  # natural catalog order
    assert page.count("beyond --max-tensors 2") == len(SHARDED) - 2
    assert "bfloat16" in page and "extremum" in page


def test_render_filter(capsys, files, tmp_path):
    out_file = tmp_path / "r.html"
    code, _, err = run(capsys, "render", files["single"], "-o", out_file, "--filter", "*.weight",
                       "-q")
    assert code == 0, err
    names = re.findall(r"<h3>([^<]+)</h3>", out_file.read_text(encoding="utf-8"))
    assert sorted(names) == sorted(n for n in SINGLE_SHAPES if n.endswith(".weight"))
    code, _, err = run(capsys, "render", files["single"], "-o", out_file, "--filter", "zzz")
    assert code == 1 and "no tensor matches" in err


def test_render_png_folder(capsys, files, tmp_path):
    import matplotlib.image as mpimg

    folder = tmp_path / "pictures"
    code, _, err = run(capsys, "render", files["single"], "-o", folder, "--png",
                       "--other-ranks", "skip", "--bins", "32", "-q")
    assert code == 0, err
    index = json.loads((folder / "index.json").read_text())
    entries = {e["name"]: e for e in index["tensors"]}
    assert set(entries) == set(SINGLE_SHAPES)
    expect_drawn = [n for n, (s, _) in SINGLE_SHAPES.items() if len(s) in (1, 2, 4)]
    pngs = sorted(p.name for p in folder.glob("0*.png"))
    assert sorted(entries[n]["file"] for n in expect_drawn) == pngs
    assert entries["model.layers.0.attn.qkv"]["file"] is None
    assert "--other-ranks flatten or stack" in entries["model.layers.0.attn.qkv"]["note"]
    assert entries["model.scale"]["file"] is None
    for name in pngs + ["layers.png"]:
        img = mpimg.imread(folder / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.05, f"{name} is (nearly) uniform"
    html = (folder / "index.html").read_text()
    for n in expect_drawn:
        assert f'<a href="{entries[n]["file"]}">{n}</a>' in html


def test_safe_filename():
    sf = report.safe_filename
    assert sf("model.layers.0.mlp.up_proj.weight", 7) == "0007-model.layers.0.mlp.up_proj.weight.png"
    assert sf("a/b c:d*?", 0) == "0000-a_b_c_d.png"
    assert sf("../../etc/passwd", 1) == "0001-etc_passwd.png"
    assert sf("???", 2) == "0002-tensor.png"
    long = sf("x" * 500, 3)
    assert len(long) <= 130 and re.fullmatch(r"0003-x+-[0-9a-f]{8}\.png", long)
    assert sf("x" * 500, 3) != sf("x" * 499 + "y", 3)


def test_plan_says_why_a_tensor_is_not_drawn():
    from dlviz_gpu.models import TensorInfo

    def info(name, shape, dtype="float32", tied=None):
        return TensorInfo(name, "", tuple(shape), dtype, math.prod(shape), 4 * math.prod(shape),
                          "f", tied_to=tied)

    todo = cli.plan([info("a", (3, 4)), info("b", (2, 3, 4)), info("c", (2, 0)),
                     info("d", (4, 4), "float8_e4m3fn"), info("e", (3, 4), tied="a"),
                     info("f", (1, 2, 3, 4, 5))], other_ranks="stack")
    layouts = {i.name: (lay, note) for i, lay, note in todo}
    assert layouts["a"] == ("auto", "")
    assert layouts["b"] == ("stack", "") and layouts["f"] == ("stack", "")
    assert layouts["c"][0] is None and "empty" in layouts["c"][1]
    assert layouts["d"][0] is None and "float8_e4m3fn" in layouts["d"][1]
    assert layouts["e"] == (None, "same storage as a (drawn there)")


# --------------------------------------------------------------------------
# the report in a real browser
# --------------------------------------------------------------------------

@pytest.mark.browser
def test_render_html_opens_in_chromium(files, tmp_path):
    from tests.browser import bokehjs as bj
    from tests.browser.conftest import CHROMIUM_ARGS, TIMEOUT_MS, _unavailable, chromium_path

    report = tmp_path / "report.html"
    assert main(["render", str(files["index"]), "-o", str(report), "-q"]) == 0
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        _unavailable(f"playwright is not installed ({err})")
    exe = chromium_path()
    if exe is None:
        _unavailable("no chromium binary")
    problems, v = [], {}

    def look():
        # its own thread: a session-wide Playwright (tests/browser) may already
        # run the sync API's event loop in the main thread
        with sync_playwright() as pw:
            chrome = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS,
                                        timeout=TIMEOUT_MS)
            try:
                page = chrome.new_page(viewport={"width": 1400, "height": 900})
                page.on("console",
                        lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
                n_plots = 1 + 2 * len(SHARDED)  # the bar chart, then heatmap + histogram each
                bj.load(page, report.as_uri(), n_plots=n_plots)
                v.update(bj.views(page))
            finally:
                chrome.close()

    failure = []
    worker = threading.Thread(target=lambda: _capture(look, failure))
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    assert problems == []
    titles = [p["title"] or "" for p in v["plots"]]
    for name, t in files["sharded"].items():
        shape = "x".join(map(str, t.shape)) if t.dim() == 2 else f"1x{t.shape[0]}"
        assert any(tt.startswith(f"{name} [{shape}, bfloat16]") for tt in titles), titles
    images = [g for g in v["glyphs"] if g["type"] == "Image"]
    assert len(images) == len(SHARDED)
    assert all(g["shape"] is not None and min(g["shape"]) >= 1 for g in images)


def _capture(fn, failures):
    try:
        fn()
    except BaseException as err:  # re-raised in the test's thread
        failures.append(err)


def test_render_releasing_file_maps_between_tensors(capsys, files, tmp_path, monkeypatch):
    # release after every tensor: each read re-maps its file (safetensors and torch alike)
    monkeypatch.setattr(report, "RELEASE_BYTES", 1)
    out_file = tmp_path / "both.html"
    code, _, err = run(capsys, "render", files["single"], files["pt"], "-o", out_file, "-q",
                       "--filter", "*.weight")
    assert code == 0, err
    names = re.findall(r"<h3>([^<]+)</h3>", out_file.read_text(encoding="utf-8"))
    expect = [n for n in SINGLE_SHAPES if n.endswith(".weight")]
    expect += [n for n in files["pt_state"] if n.endswith(".weight")]
    assert sorted(names) == sorted(expect)


def test_layer_of_groups_blocks_of_a_stack():
    assert cli.layer_of("model.layers.3.mlp.up_proj") == "model.layers.3"
    assert cli.layer_of("model.layers.12") == "model.layers.12"
    assert cli.layer_of("encoder/block/2/attn") == "encoder/block/2"
    assert cli.layer_of("lm_head") == "lm_head"
    assert cli.layer_of("model.embed_tokens") == "model.embed_tokens"
    assert cli.layer_of("") == "(top level)"
    assert cli.layer_of("0") == "0"


def test_render_png_notes_tensors_it_cannot_draw_fully(capsys, files, tmp_path):
    folder = tmp_path / "odd"
    code, _, err = run(capsys, "render", files["odd"], "-o", folder, "--png")
    assert code == 0, err
    assert "RuntimeWarning" not in err
    entries = {e["name"]: e for e in json.loads((folder / "index.json").read_text())["tensors"]}
    assert entries["blocks/0:attn weight"]["file"] == "0000-blocks_0_attn_weight.png"
    assert (folder / "0000-blocks_0_attn_weight.png").is_file()
    assert entries["f8.w"]["file"] is None
    assert entries["f8.w"]["note"] == "dtype float8_e4m3fn is not decoded by the engine"
    assert entries["empty.w"]["note"] == "empty (shape 0x4)"
    assert entries["nan.w"]["file"] is not None
    assert "every element is NaN or infinite" in entries["nan.w"]["note"]
    assert re.search(r"2 tensors drawn, 2 listed only", err)


def test_render_to_an_unwritable_place_exits_1(capsys, files, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, out, err = run(capsys, "render", files["single"], "-o", blocker / "r.html", "-q")
    assert code == 1 and out == ""
    assert err.startswith(f"dlviz: error: cannot write {blocker / 'r.html'}: ")
    assert "Traceback" not in err


def test_inspect_loads_no_plotting_library_numba_or_torch(files):
    code = ("import sys; from dlviz_gpu.cli import main; "
            f"assert main(['inspect', {str(files['index'])!r}, '--tree']) == 0; "
            "print(sorted(m for m in ('holoviews', 'bokeh', 'panel', 'matplotlib', 'numba', "
            "'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_serve_with_nothing_drawable_exits_1(capsys, tmp_path):
    path = tmp_path / "f8.safetensors"
    save_torch({"w": torch.zeros(4, 4).to(torch.float8_e4m3fn)}, str(path))
    code, out, err = run(capsys, "serve", path, "--port", "0", "--no-browser")
    assert code == 1 and out == ""
    assert err.startswith("dlviz: error: source: no tensor the engine can draw")
    assert "float8_e4m3fn" in err


def test_serve_on_a_port_in_use_exits_1_with_a_hint(capsys, files):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run(capsys, "serve", files["single"], "--port", port, "--no-browser")
    assert code == 1
    assert f"is port {port} in use? --port 0 picks a free one" in err


def test_demo_prepare_compiles_and_exits_leaving_nothing_behind(capsys, tmp_path, monkeypatch):
    import threading

    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "demo", "--prepare")
    assert code == 0, err
    assert re.fullmatch(r"dlviz: kernels compiled and cached in [\d.]+ s\n", out)
    assert not any(t.name.startswith("dlviz") for t in threading.enumerate() if t.is_alive())
    assert list(tmp_path.iterdir()) == []      # its two watched steps went to a temporary run


def test_demo_store_that_cannot_be_written_exits_2(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = run(capsys, "demo", "--store", blocker / "run", "--port", "0",
                         "--no-browser")
    assert code == 2 and out == ""
    assert "--store: store: cannot write" in err


def test_serve_refuses_runs_mixed_with_checkpoints(capsys, files, tmp_path):
    from dlviz_gpu.watch import RunWriter

    with RunWriter(tmp_path / "run1"):
        pass
    code, out, err = run(capsys, "serve", tmp_path / "run1", files["single"], "--port", "0",
                         "--no-browser")
    assert code == 2
    assert "expected only runs (dv.watch stores) or only checkpoints" in err
    assert files["single"].name in err


@pytest.mark.parametrize("damage", ["truncated", "not a run", "zeroed header"])
def test_serve_of_a_damaged_run_exits_1_with_one_line(capsys, tmp_path, damage):
    import sqlite3

    from dlviz_gpu.watch import RunWriter

    with RunWriter(tmp_path / "run1"):
        pass
    path = tmp_path / "run1" / "run.sqlite"
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "zeroed header":
        path.write_bytes(b"\0" * 100 + data[100:])
    else:
        path.unlink()
        with sqlite3.connect(path) as db:
            db.execute("create table notes (body text)")
    code, out, err = run(capsys, "serve", tmp_path / "run1", "--port", "0", "--no-browser")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlviz: error: ")
    assert "run.sqlite" in lines[0] and "Traceback" not in err


def test_inspect_marks_a_refused_tensor_and_leaves_it_out_of_the_totals(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "mix.pt"
    torch.save({"w": torch.zeros(1).expand(10**7, 10**7), "ok": torch.randn(64, 64)}, path)
    code, out, err = run(capsys, "inspect", path)
    assert code == 0 and err == ""
    assert re.search(r"^w \(refused\) +10000000x10000000", out, re.M)
    assert "2 tensors, 4,096 parameters, 16.0 KiB" in out
    assert "1 listed but refused when read (left out of the totals): w: an expanded" in out
    code, out, err = run(capsys, "inspect", "--tree", path)
    assert code == 0 and "w (refused)" in out
    assert re.search(r"^\(all\) +4,096 +16\.0 KiB", out, re.M)
