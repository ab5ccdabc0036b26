"""dv.save (standalone HTML, PNG without a browser) and dv.serve (a real Bokeh server)."""

import io
import urllib.error
import urllib.request

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")

import dlviz_gpu as dv  # noqa: E402


@pytest.fixture
def view(rng):
    m = rng.standard_normal((300, 400)).astype(np.float32)
    m[:, :200] += 3.0  # left half clearly different from the right
    return dv.heatmap(m, width=200, height=150, label="layer")


def test_save_html_is_standalone(tmp_path, view):
    path = dv.save(view, tmp_path / "page.html", title="my layer")
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert "<title>my layer</title>" in text
    # Bokeh's JavaScript inline: no network needed to open it
    assert "cdn.bokeh.org" not in text and "Bokeh" in text
    assert 'src="static/' not in text   # nothing relative a standalone file cannot load
    # the frame's planes travel with the page: the hover fields are in it
    for field in ("count", "mean", "min", "max", "std"):
        assert f'"{field}"' in text


def test_save_html_of_frames_keeps_every_frame_behind_a_slider(tmp_path):
    """A HoloMap (e.g. weight snapshots over steps) is saved with all frames, offline."""
    frames = {step: hv.Image(np.full((4, 5), 1000.0 + step)) for step in (0, 10, 20)}
    text = dv.save(hv.HoloMap(frames, kdims=["step"]), tmp_path / "frames.html").read_text(
        encoding="utf-8")
    # the slider's frames are embedded as document patches, one per step
    assert '"name":"panel.models.state.State"' in text
    for step in (10, 20):
        assert f"step: {step}" in text
    # Panel's widget style sheets are written in, never imported from its CDN
    assert "cdn.holoviz.org" not in text
    assert 'rel="stylesheet"' not in text and 'rel="icon"' not in text


def test_save_png_draws_the_picture(tmp_path, view):
    from PIL import Image

    path = dv.save(view, tmp_path / "pic.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert img.shape[0] > 150 and img.shape[1] > 200
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 50          # a colour-mapped picture, not a blank canvas
    # the diverging palette's red end shows (the +3 half) and its blue end does not dominate
    reds = (img[..., 0] > 150) & (img[..., 2] < 100)
    assert reds.mean() > 0.05


def test_save_png_of_a_layout(tmp_path, view, rng):
    other = dv.heatmap(rng.random((50, 60)), width=120, height=100)
    path = dv.save(view + other, tmp_path / "two.png")
    assert path.stat().st_size > 5000


@pytest.mark.parametrize("name, exc, match", [
    ("page.svg", ValueError, r"path: expected a file name ending in \.html or \.png; got"),
    ("missing/page.html", FileNotFoundError, r"path: the folder .*missing.* does not exist"),
])
def test_save_refuses_bad_paths(tmp_path, view, name, exc, match):
    with pytest.raises(exc, match=match):
        dv.save(view, tmp_path / name)


def test_save_refuses_non_views(tmp_path):
    with pytest.raises(TypeError, match="obj: expected a HoloViews object .*got ndarray"):
        dv.save(np.zeros((3, 3)), tmp_path / "x.html")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as resp:
        assert resp.status == 200
        return resp.read().decode()


def test_serve_runs_a_bokeh_server_and_stops(view):
    url = dv.serve(view)
    try:
        assert url.startswith("http://127.0.0.1:")
        page = _get(url)
        assert "bokeh" in page.lower() and "<script" in page
    finally:
        url.stop()
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(url, timeout=5)


def test_serve_a_dict_of_routes(view, rng):
    url = dv.serve({"weights": view, "other": dv.heatmap(rng.random((20, 30)))})
    try:
        assert url.endswith("/weights")
        assert "<script" in _get(url)
        assert "<script" in _get(url.rsplit("/", 1)[0] + "/other")
    finally:
        url.stop()


@pytest.mark.parametrize("kwargs, match", [
    ({"port": -1}, r"port: expected an integer in 0\.\.65535"),
    ({"port": "80"}, r"port: expected an integer"),
    ({"address": "0.0.0.0"}, r"allow_websocket_origin: serving on '0\.0\.0\.0' exposes"),
    ({"address": ""}, r"address: expected an interface address"),
])
def test_serve_refuses_bad_arguments(view, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dv.serve(view, **kwargs)


def test_serve_refuses_an_empty_dict():
    with pytest.raises(ValueError, match="obj: expected at least one route"):
        dv.serve({})
