"""``python -m benchmarks load [--quick]``: many browser sessions zooming one served checkpoint.

A real ``dlviz serve CHECKPOINT`` subprocess serves a generated safetensors
file (one ``SIDE x SIDE`` float32 matrix, 8192 by default, and a few small
tensors).  One headless Chromium (Playwright, Debian's ``/usr/bin/chromium``)
opens N browser contexts at once, each one user:

1. **first page**: opens the page; seconds from the request to the heatmap's
   first picture drawn;
2. **choose**: picks another tensor in the tensor select, then the big matrix
   again (seconds to its picture);
3. **zoom**: for D seconds turns the mouse wheel over the heatmap at a human
   rate (bursts of 1-5 notches 100-350 ms apart, pauses of 0.4-1.5 s to look,
   zooms in and out, drags to pan), each session its own seeded path;
4. **isolation**: once every session is idle, each in turn zooms one notch
   while the others must receive no new picture.

What the page measures (BokehJS, instrumented from the page, page clock):

- every wheel notch and drag: its time and the plot's ranges right after it;
- every change of the heatmap's image data source: its time, the time of the
  next animation frame (when BokehJS has drawn it) and the picture's
  geometry (``x``, ``y``, ``dw``, ``dh``, array shape);
- the bytes of every websocket message received.

**Wheel-to-picture** of a wheel notch or drag is the time from its event to
the first picture drawn after it whose geometry is what the server computes
for the range that action left, or for a later action's range (a later one
supersedes it).  The expected geometry follows ``MatrixView.window``: the
range clipped to the matrix and snapped to whole cells, at the frame's pixel
size or the visible cell count when fewer.  An action with no such picture
within 15 s is **unanswered**.  A session is **isolated** when every picture
it received is one of its own ranges' pictures, and the isolation checks
count how often a zoom in one session left every other session's picture
untouched.  Server memory is the ``dlviz serve`` process's RSS (psutil),
sampled every 0.25 s: at rest (the server ready, no session yet), the peak,
and ``--after`` seconds after every browser context closed (Bokeh drops a
closed session's document 15-32 s after its websocket closes).

Nothing here asserts: ``tests/browser/test_load_browser.py`` runs a small
version and asserts the correctness parts.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: the matrix every session zooms, and the small tensors beside it
BIG = "model.layers.0.mlp.up_proj.weight"
OTHER = "model.embed_tokens.weight"
#: goals of the reliability issue
GOAL_P95_S = 1.0
GOAL_FIRST_PAGE_S = 5.0
GOAL_MEMORY_RATIO = 1.10
#: a wheel turn with no matching picture within this many seconds is unanswered
ANSWER_S = 15.0
#: seconds from the server's announcement to its memory "at rest": longer than
#: Bokeh's unused-session lifetime plus its check interval (15 + 17 s), so the
#: session of the server's own warm-up request is gone
REST_WAIT_S = 40.0
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 900}
#: hang guards only (seconds): nothing is decided by them
PAGE_TIMEOUT_S = 300.0
_READY = re.compile(r"is at (http://\S+) \(ready in ([\d.]+) s")
#: server log lines that count as server errors (as tests/browser/conftest.py)
LOG_PROBLEMS = ("Traceback", "ERROR", "Exception", "Error:")


# --------------------------------------------------------------------------
# The checkpoint
# --------------------------------------------------------------------------

def make_checkpoint(path, side: int = 8192, seed: int = 0) -> Path:
    """Write the load test's safetensors file: ``BIG`` (side x side float32) and small tensors.

    Written block by block (never the whole matrix in memory) in the format's
    layout: an 8-byte little-endian header length, the JSON header padded
    with spaces to a multiple of 8, then the tensors back to back in header
    order.  Values are N(0, 1) with a few rows and columns scaled, so zooming
    shows structure.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    small = {
        OTHER: rng.standard_normal((1000, 256), dtype=np.float32),
        "model.layers.0.mlp.up_proj.bias": rng.standard_normal(side, dtype=np.float32),
        "model.norm.weight": np.ones(256, dtype=np.float32),
    }
    tensors = [(BIG, (side, side))] + [(k, v.shape) for k, v in small.items()]
    header, offset = {}, 0
    for name, shape in tensors:
        n = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    loud_rows = rng.choice(side, size=max(1, side // 512), replace=False)
    loud_cols = rng.choice(side, size=max(1, side // 512), replace=False)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(len(text).to_bytes(8, "little"))
        fh.write(text)
        block = max(1, (16 << 20) // (4 * side))
        for r0 in range(0, side, block):
            rows = rng.standard_normal((min(block, side - r0), side), dtype=np.float32)
            rows[:, loud_cols] *= 8
            for r in loud_rows[(loud_rows >= r0) & (loud_rows < r0 + block)]:
                rows[r - r0] *= 4
            fh.write(rows.tobytes())
        for arr in small.values():
            fh.write(np.ascontiguousarray(arr).tobytes())
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------

class Server:
    """``dlviz serve CHECKPOINT`` as a subprocess, its log, and its memory sampled in a thread."""

    def __init__(self, checkpoint, log_path, env: dict | None = None, interval_s: float = 0.25):
        import psutil

        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        env.pop("DISPLAY", None)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dlviz_gpu.cli", "serve", str(checkpoint), "--port", "0",
             "--no-browser"], cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env)
        self.ps = psutil.Process(self.proc.pid)
        self.samples: list[tuple[float, int, int]] = []  # (monotonic s, rss, anonymous rss)
        self._stop = threading.Event()
        self._interval = interval_s
        self._thread = threading.Thread(target=self._sample, name="load-rss", daemon=True)
        self._thread.start()
        self.url = None
        self.ready_s = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), *self.memory()))
            except Exception:  # the process ended
                return
            self._stop.wait(self._interval)

    def memory(self) -> tuple[int, int]:
        """(RSS, anonymous RSS) in bytes; the second is RSS less the mapped file pages.

        The checkpoint is memory-mapped, so RSS also counts the file's pages
        the kernels have read (the page cache's, dropped under memory
        pressure); anonymous RSS is the process's own memory.
        """
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if line.startswith("Rss"))
            anon = int(fields["RssAnon"].split()[0]) * 1024
            total = sum(int(v.split()[0]) for v in fields.values()) * 1024
            return total, anon
        except (OSError, KeyError, ValueError):
            rss = self.ps.memory_info().rss
            return rss, rss

    def text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 900) -> str:
        """The URL the server announces once its first page is ready (kernels compiled)."""
        deadline = time.monotonic() + timeout_s
        while True:
            m = _READY.search(self.text())
            if m:
                self.url, self.ready_s = m.group(1), float(m.group(2))
                return self.url
            if self.proc.poll() is not None:
                raise RuntimeError(f"dlviz serve exited with {self.proc.returncode}:\n"
                                   f"{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dlviz serve announced no page in {timeout_s:.0f} s")
            time.sleep(0.2)

    def rss(self) -> int:
        return self.memory()[0]

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def problems(self) -> list[str]:
        """Log lines that count as server errors, warnings included."""
        return [line for line in self.text().splitlines()
                if any(p in line for p in LOG_PROBLEMS + ("WARNING",))]

    def rss_between(self, t0: float, t1: float, anon: bool = False) -> list[int]:
        return [m[2 if anon else 1] for m in list(self.samples) if t0 <= m[0] <= t1]

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._thread.join(timeout=5)
        self._log.close()


def chromium_cpu_s() -> float:
    """CPU seconds of this process's Chromium descendants (the browser is a load too)."""
    import psutil

    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" in p.name().lower():
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return total


# --------------------------------------------------------------------------
# In the page
# --------------------------------------------------------------------------

# Before any script of the page: count the bytes of every websocket message.
_INIT_JS = """(() => {
  const L = window.__dlvizLoad = {ws: [], actions: [], updates: [], hooked: null};
  const Native = window.WebSocket;
  class Counted extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        const d = e.data;
        const n = typeof d === "string" ? d.length
          : (d.byteLength !== undefined ? d.byteLength : (d.size || 0));
        L.ws.push([performance.now(), n]);
      });
    }
  }
  window.WebSocket = Counted;
})();"""

# The heatmap of tensor `name` (plot view and image renderer), or null.
_FIND_JS = """
function dlvizHeat(name) {
  if (window.Bokeh === undefined || Bokeh.index === undefined) return null;
  let plot = null;
  for (const v of Bokeh.index.all_views())
    if (v.frame !== undefined && v.model.title && (v.model.title.text || "").startsWith(name + " ["))
      plot = v;
  if (plot === null) return null;
  for (const v of Bokeh.index.all_views()) {
    const m = v.model;
    if (m.glyph !== undefined && m.glyph.type === "Image" && v.parent === plot
        && m.data_source.data.image !== undefined && m.data_source.data.image.length)
      return {plot, renderer: v, source: m.data_source};
  }
  return null;
}
function dlvizGeometry(source) {
  const d = source.data, img = d.image[0];
  return {x: Number(d.x[0]), y: Number(d.y[0]), dw: Number(d.dw[0]), dh: Number(d.dh[0]),
          shape: img && img.shape ? Array.from(img.shape) : null};
}
function dlvizRange(plot) {
  const xr = plot.model.x_range, yr = plot.model.y_range;
  return [Math.min(xr.start, xr.end), Math.max(xr.start, xr.end),
          Math.min(yr.start, yr.end), Math.max(yr.start, yr.end)];
}
"""

# Whether the heatmap of `name` has a picture; resolves after the next frame is drawn.
_DRAWN_JS = """(name) => {""" + _FIND_JS + """
  const h = dlvizHeat(name);
  if (h === null || Bokeh.documents.some(d => !d.is_idle)) return false;
  return new Promise(ok => requestAnimationFrame(() => requestAnimationFrame(() => ok(true))));
}"""

# What the page shows: plot titles and whether its documents are idle.
_SHOWN_JS = """() => window.Bokeh === undefined ? null : {
  titles: [...Bokeh.index.all_views()].filter(v => v.frame !== undefined)
    .map(v => v.model.title ? v.model.title.text : null),
  idle: Bokeh.documents.map(d => d.is_idle)}"""

# Hook the heatmap of `name`: every data change and every wheel notch / drag end.
_HOOK_JS = """(name) => {""" + _FIND_JS + """
  const L = window.__dlvizLoad, h = dlvizHeat(name);
  if (h === null) return null;
  const box = h.plot.canvas_view.el.getBoundingClientRect(), b = h.plot.frame.bbox;
  L.hooked = {plot: h.plot, source: h.source};
  L.initial = dlvizGeometry(h.source);
  L.initial_range = dlvizRange(h.plot);
  h.source.change.connect(() => {
    const u = Object.assign({t: performance.now(), tp: null}, dlvizGeometry(h.source));
    L.updates.push(u);
    requestAnimationFrame(() => { u.tp = performance.now(); });
  });
  const action = (kind) => (e) => {
    const t = performance.now();
    // BokehJS changes the ranges in its own listener of this event: read them after it
    setTimeout(() => L.actions.push({t, kind, range: dlvizRange(h.plot)}), 0);
  };
  document.addEventListener("wheel", action("wheel"), {capture: true, passive: true});
  document.addEventListener("pointerup", action("pan"), {capture: true, passive: true});
  return {x: box.left + b.x, y: box.top + b.y, width: b.width, height: b.height,
          range: L.initial_range, geometry: L.initial};
}"""

# Everything recorded since `since` (indexes into the lists), and the current state.
_COLLECT_JS = """([since_a, since_u]) => {""" + _FIND_JS + """
  const L = window.__dlvizLoad;
  const alive = L.hooked !== null && [...Bokeh.index.all_views()].includes(L.hooked.plot);
  return {actions: L.actions.slice(since_a), updates: L.updates.slice(since_u),
          n_actions: L.actions.length, n_updates: L.updates.length, alive,
          range: alive ? dlvizRange(L.hooked.plot) : null,
          geometry: alive ? dlvizGeometry(L.hooked.source) : null,
          ws_frames: L.ws.length, ws_bytes: L.ws.reduce((s, f) => s + f[1], 0),
          now: performance.now(), origin: performance.timeOrigin};
}"""


# --------------------------------------------------------------------------
# Analysis (pure: unit-tested without a browser)
# --------------------------------------------------------------------------

def expected_geometry(rng, cols: int, rows: int, frame_w: int, frame_h: int) -> tuple:
    """The picture the server draws for plot ranges ``rng`` = (x0, x1, y0, y1).

    Mirrors ``MatrixView.window`` / ``element``: clipped to the matrix and
    snapped to whole cells; ``(x, y, dw, dh, h, w)`` with the canvas at most
    the frame's pixels.  A window that misses the matrix is a 1 x 1 picture
    over the range itself.
    """
    rx0, rx1, ry0, ry1 = (float(v) for v in rng)
    x0, x1 = max(0, math.floor(rx0)), min(cols, math.ceil(rx1))
    y0, y1 = max(0, math.floor(ry0)), min(rows, math.ceil(ry1))
    if x1 <= x0 or y1 <= y0:
        return (round(rx0, 6), round(ry0, 6), round(rx1 - rx0, 6), round(ry1 - ry0, 6), 1, 1)
    return (x0, y0, x1 - x0, y1 - y0, min(y1 - y0, frame_h), min(x1 - x0, frame_w))


def geometry_key(g: dict) -> tuple:
    """A received picture's geometry as :func:`expected_geometry` writes it."""
    shape = g.get("shape") or (None, None)
    return (round(g["x"], 6), round(g["y"], 6), round(g["dw"], 6), round(g["dh"], 6),
            shape[0], shape[1])


@dataclass
class SessionResult:
    """What one browser session measured (times in seconds)."""

    index: int
    first_page_s: float | None = None
    choose_s: float | None = None
    latencies_s: list = field(default_factory=list)    # one per answered action
    to_data_s: list = field(default_factory=list)      # their part until the data arrived
    actions: int = 0
    unanswered: int = 0                                  # no matching picture within ANSWER_S
    late: int = 0                                        # ... that came later than that
    html_s: float | None = None                          # the page's HTML (the server builds
                                                         # the session's document meanwhile)
    unchanged: int = 0                                   # the picture already matched; none sent
    updates: int = 0
    foreign_updates: int = 0                             # pictures of no range of this session
    final_matches: bool | None = None
    ws_bytes_zoom: int = 0
    isolation_checks: int = 0
    isolation_ok: int = 0
    isolation_own_late: int = 0
    errors: list = field(default_factory=list)           # console errors, page errors
    failed_requests: list = field(default_factory=list)  # URLs the page could not load
    failure: str | None = None                           # the scenario stopped here

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["latencies_s"] = [round(v, 4) for v in self.latencies_s]
        d["to_data_s"] = [round(v, 4) for v in self.to_data_s]
        return d


def analyse(actions: list, updates: list, initial: dict, cols: int, rows: int,
            frame_w: int, frame_h: int, horizon_s: float = ANSWER_S,
            end_t: float | None = None) -> dict:
    """Match wheel notches and drags with the pictures that answer them.

    Parameters
    ----------
    actions : list of dict
        ``t`` (ms, page clock) and ``range`` (x0, x1, y0, y1 after the action), in order.
    updates : list of dict
        ``t`` (ms, data change), ``tp`` (ms, drawn; None if not yet), ``x``,
        ``y``, ``dw``, ``dh``, ``shape``, in order.
    initial : dict
        The picture's geometry before the first action.
    end_t : float, optional
        The page clock at the end of the observation: an action younger than
        ``horizon_s`` then is neither answered nor unanswered (``pending``).

    Returns
    -------
    dict
        ``latencies_s`` (per answered action), ``to_data_s`` (the part of it
        until the data arrived; the rest is BokehJS drawing), ``unanswered``, ``unchanged``
        (the action left the expected picture as it was, so none needed to
        come), ``pending``, ``foreign`` (updates matching no range of the
        session), ``final_matches`` (the last picture is the last range's).
    """
    expect = [expected_geometry(a["range"], cols, rows, frame_w, frame_h) for a in actions]
    got = [geometry_key(u) for u in updates]
    own = set(expect) | {geometry_key(initial)}
    foreign = sum(1 for g in got if g not in own)
    latencies, to_data, late, never, unchanged, pending = [], [], 0, 0, 0, 0
    shown_before = geometry_key(initial)
    k = 0  # updates before action i's time
    for i, a in enumerate(actions):
        while k < len(updates) and updates[k]["t"] <= a["t"]:
            shown_before = got[k]
            k += 1
        later = set(expect[i:])
        hit = None
        for j in range(k, len(updates)):
            if got[j] in later:
                hit = updates[j]
                break
        drawn = None if hit is None else (hit["tp"] if hit["tp"] is not None else hit["t"])
        if drawn is not None and drawn - a["t"] <= horizon_s * 1000:
            latencies.append((drawn - a["t"]) / 1000)
            to_data.append((hit["t"] - a["t"]) / 1000)
        elif expect[i] == shown_before:
            # the range changed but not the snapped window: the picture shown is already right
            unchanged += 1
        elif hit is not None:
            late += 1
        elif end_t is not None and end_t - a["t"] < horizon_s * 1000:
            pending += 1
        else:
            never += 1
    final = got[-1] if got else geometry_key(initial)
    return {"latencies_s": latencies, "to_data_s": to_data, "unanswered": late + never,
            "late": late, "never": never, "unchanged": unchanged,
            "pending": pending, "foreign": foreign,
            "final_matches": (final == expect[-1]) if expect else True}


def percentile(values, q: float) -> float | None:
    """The ``q``-th percentile (0-100, linear interpolation), None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


# --------------------------------------------------------------------------
# One user
# --------------------------------------------------------------------------

class User:
    """One browser context: its page, its seeded zoom path and what it measured."""

    def __init__(self, index: int, browser, url: str, side: int, seed: int):
        self.index = index
        self.browser = browser
        self.url = url
        self.side = side
        self.rng = random.Random(seed * 1000 + index)
        self.result = SessionResult(index)
        self.context = None
        self.page = None
        self.box = None
        self.frame_px = None
        self.initial = None
        self.seen = (0, 0)

    async def open(self) -> None:
        self.context = await self.browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        self.context.set_default_timeout(PAGE_TIMEOUT_S * 1000)
        await self.context.add_init_script(script=_INIT_JS)
        self.page = await self.context.new_page()
        errors = self.result.errors

        def on_console(msg):
            if msg.type == "error":
                where = (msg.location or {}).get("url", "")
                errors.append(f"console error: {msg.text}" + (f" ({where})" if where else ""))

        self.page.on("console", on_console)
        self.page.on("pageerror", lambda err: errors.append(f"page error: {err}"))
        self.page.on("requestfailed", lambda req: self.result.failed_requests.append(
            f"{req.url} ({req.failure})"))

    async def first_page(self) -> None:
        t0 = time.monotonic()
        await self.page.goto(self.url, timeout=PAGE_TIMEOUT_S * 1000)
        await self.page.wait_for_function(_DRAWN_JS, arg=BIG, polling=100,
                                          timeout=PAGE_TIMEOUT_S * 1000)
        self.result.first_page_s = time.monotonic() - t0
        nav = await self.page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return n ? n.responseEnd - n.startTime : null; }")
        self.result.html_s = None if nav is None else nav / 1000
    async def choose(self) -> None:
        """Choose another tensor in the select, then the big matrix again."""
        select = self.page.locator("select").filter(
            has=self.page.locator(f"option[value='{BIG}']"))
        t0 = time.monotonic()
        for name in (OTHER, BIG):
            await select.first.select_option(name)
            try:
                await self.page.wait_for_function(_DRAWN_JS, arg=name, polling=100,
                                                  timeout=PAGE_TIMEOUT_S * 1000)
            except Exception as err:  # say what the page shows instead
                shown = await self.page.evaluate(_SHOWN_JS)
                raise RuntimeError(f"{name} chosen, never drawn ({type(err).__name__}); the "
                                   f"select shows {await select.first.input_value()!r}, the "
                                   f"page {shown}") from err
        self.result.choose_s = time.monotonic() - t0

    async def hook(self) -> None:
        hooked = await self.page.evaluate(_HOOK_JS, BIG)
        if hooked is None:
            raise RuntimeError("the heatmap vanished before it could be instrumented")
        self.box = hooked
        self.frame_px = (int(round(hooked["width"])), int(round(hooked["height"])))
        self.initial = hooked["geometry"]

    async def state(self) -> dict:
        return await self.page.evaluate(_COLLECT_JS, [0, 0])

    async def _range(self) -> list:
        s = await self.page.evaluate(_COLLECT_JS, [10 ** 9, 10 ** 9])
        return s["range"]

    def _point(self, margin: float = 0.15) -> tuple[float, float]:
        b = self.box
        return (b["x"] + b["width"] * self.rng.uniform(margin, 1 - margin),
                b["y"] + b["height"] * self.rng.uniform(margin, 1 - margin))

    async def zoom(self, duration_s: float) -> None:
        """Turn the wheel like a person for ``duration_s``: bursts, pauses, zoom in/out, pans."""
        page, rng = self.page, self.rng
        end = time.monotonic() + duration_s
        direction = -1  # negative deltaY zooms in
        while time.monotonic() < end:
            rx0, rx1, ry0, ry1 = await self._range()
            width = max(rx1 - rx0, ry1 - ry0)
            if width > 0.8 * self.side:
                direction = -1
            elif width < 48:
                direction = 1
            elif rng.random() < 0.3:
                direction = -direction
            if rng.random() < 0.2 and width < 0.8 * self.side:
                # drag to pan, toward the matrix's middle when the view drifts off it
                x, y = self._point(0.3)
                cx, cy = (rx0 + rx1) / 2, (ry0 + ry1) / 2
                dx = rng.uniform(-150, 150) if 0 < cx < self.side else (
                    150 if cx >= self.side else -150)
                dy = rng.uniform(-100, 100) if 0 < cy < self.side else (
                    100 if cy >= self.side else -100)
                await page.mouse.move(x, y)
                await page.mouse.down()
                await page.mouse.move(x + dx, y + dy, steps=6)
                await page.mouse.up()
            else:
                x, y = self._point()
                await page.mouse.move(x, y)
                for _ in range(rng.randint(1, 5)):
                    await page.mouse.wheel(0, 100 * direction)
                    await asyncio.sleep(rng.uniform(0.1, 0.35))
                    if time.monotonic() >= end:
                        break
            await asyncio.sleep(rng.uniform(0.4, 1.5))  # looking at the picture

    async def settle(self, timeout_s: float = ANSWER_S) -> dict:
        """Wait until the picture is the last range's (at most ``timeout_s``); the state."""
        deadline = time.monotonic() + timeout_s
        while True:
            s = await self.state()
            if s["alive"] and s["range"] is not None:
                want = expected_geometry(s["range"], self.side, self.side, *self.frame_px)
                if geometry_key(s["geometry"]) == want and \
                        all(u["tp"] is not None for u in s["updates"][-1:]):
                    return s
            if time.monotonic() > deadline:
                return s
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        if self.context is not None:
            await self.context.close()
            self.context = None


# --------------------------------------------------------------------------
# The scenario
# --------------------------------------------------------------------------

async def _scenario(url: str, server: Server, sessions: int, duration_s: float, side: int,
                    seed: int, isolation: bool, chromium: str,
                    answer_s: float = ANSWER_S) -> dict:
    from playwright.async_api import async_playwright

    out: dict = {"phases": {}}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True,
                                           args=CHROMIUM_ARGS, timeout=PAGE_TIMEOUT_S * 1000)
        users = [User(k, browser, url, side, seed) for k in range(sessions)]
        try:
            for u in users:
                await u.open()
            marks = {"start": time.monotonic()}
            cpu0 = (server.cpu_s(), chromium_cpu_s())

            async def step(u: User, what: str, coro):
                if u.result.failure is None:
                    try:
                        await coro
                    except Exception as err:  # reported per session, never hidden
                        u.result.failure = f"{what}: {type(err).__name__}: {err}"[:400]

            await asyncio.gather(*(step(u, "first page", u.first_page()) for u in users))
            marks["loaded"] = time.monotonic()
            await asyncio.gather(*(step(u, "choose", u.choose()) for u in users))
            await asyncio.gather(*(step(u, "hook", u.hook()) for u in users))
            marks["zoom"] = time.monotonic()
            cpu1 = (server.cpu_s(), chromium_cpu_s())
            ws0 = {}
            for u in users:
                if u.result.failure is None:
                    ws0[u.index] = (await u.state())["ws_bytes"]
            await asyncio.gather(*(step(u, "zoom", u.zoom(duration_s)) for u in users))
            marks["zoomed"] = time.monotonic()
            cpu2 = (server.cpu_s(), chromium_cpu_s())
            finals = await asyncio.gather(*(u.settle(answer_s) for u in users
                                            if u.result.failure is None))
            marks["settled"] = time.monotonic()
            for u, s in zip([u for u in users if u.result.failure is None], finals):
                _record(u, s, ws0.get(u.index, 0), answer_s)
            if isolation:
                await _isolation(users, answer_s)
            marks["isolated"] = time.monotonic()
        finally:
            for u in users:
                try:
                    await u.close()
                except Exception:
                    pass
            await browser.close()
        marks["closed"] = time.monotonic()
    out["marks"] = marks
    out["users"] = users
    out["cpu_s"] = {"pages_server": cpu1[0] - cpu0[0], "pages_chromium": cpu1[1] - cpu0[1],
                    "zoom_server": cpu2[0] - cpu1[0], "zoom_chromium": cpu2[1] - cpu1[1],
                    "zoom_wall": marks["zoomed"] - marks["zoom"]}
    return out


def _record(u: User, s: dict, ws_before: int, answer_s: float = ANSWER_S) -> None:
    r = u.result
    a = analyse(s["actions"], s["updates"], u.initial, u.side, u.side, *u.frame_px,
                horizon_s=answer_s, end_t=None)
    r.latencies_s = a["latencies_s"]
    r.to_data_s = a["to_data_s"]
    r.actions = len(s["actions"])
    r.unanswered = a["unanswered"]
    r.late = a["late"]
    r.unchanged = a["unchanged"]
    r.updates = len(s["updates"])
    r.foreign_updates = a["foreign"]
    r.final_matches = a["final_matches"] and s["alive"]
    r.ws_bytes_zoom = s["ws_bytes"] - ws_before
    u.seen = (s["n_actions"], s["n_updates"])


async def _isolation(users: list, answer_s: float) -> None:
    """Each session in turn zooms one notch; no other session may get its picture.

    A check fails when another session receives a picture that is not of one
    of its own ranges while (or just after) this one zooms; whether the
    zooming session got its own picture within ``answer_s`` is counted apart
    (``isolation_own_late``).
    """
    live = [u for u in users if u.result.failure is None]
    for u in live:
        before = {v.index: (await v.state())["n_updates"] for v in live}
        x, y = u._point(0.3)
        await u.page.mouse.move(x, y)
        await u.page.mouse.wheel(0, -100 if u.rng.random() < 0.5 else 100)
        s = await u.settle(answer_s)
        want = expected_geometry(s["range"], u.side, u.side, *u.frame_px) if s["alive"] else None
        own_ok = s["alive"] and geometry_key(s["geometry"]) == want
        await asyncio.sleep(1.0)  # a picture sent to the wrong page would be on its way by now
        others_ok = True
        for v in live:
            if v is u:
                continue
            after = await v.state()
            own = {geometry_key(v.initial)} | {
                expected_geometry(a["range"], v.side, v.side, *v.frame_px)
                for a in after["actions"]}
            if any(geometry_key(g) not in own for g in after["updates"][before[v.index]:]):
                others_ok = False
        u.result.isolation_checks += 1
        u.result.isolation_ok += int(others_ok)
        u.result.isolation_own_late += int(not own_ok)


def run_load(sessions: int = 10, duration_s: float = 60.0, side: int = 8192,
             after_s: float = 60.0, seed: int = 0, isolation: bool = True,
             workdir=None, chromium: str | None = None, checkpoint=None,
             env: dict | None = None, rest_wait_s: float = REST_WAIT_S,
             answer_s: float = ANSWER_S) -> dict:
    """Run the whole scenario once; the measurements as a dict (see the module docstring).

    Parameters
    ----------
    sessions : int
        Browser contexts at once.
    duration_s : float
        Seconds each session zooms.
    side : int
        Side of the zoomed float32 matrix.
    after_s : float
        Seconds the server's memory is followed after every context closed.
    workdir : path, optional
        Folder for the checkpoint and the server log (default: a temporary one, removed).
    chromium : str, optional
        The Chromium binary (default: ``$DLVIZ_CHROMIUM``, else ``/usr/bin/chromium``).
    checkpoint : path, optional
        An existing file written by :func:`make_checkpoint` with this ``side``.
    env : dict, optional
        The server's environment (default: this process's).
    rest_wait_s : float
        Seconds between the server's announcement and the "at rest" memory.
    answer_s : float
        A wheel turn with no picture of its range within this many seconds is
        unanswered; also how long a session may take to show its last range.
    """
    import shutil

    chromium = chromium or os.environ.get("DLVIZ_CHROMIUM") or "/usr/bin/chromium"
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="dlviz-load-") if own_dir else workdir)
    server = None
    try:
        if checkpoint is None:
            checkpoint = make_checkpoint(work / "load.safetensors", side=side, seed=seed)
        server = Server(checkpoint, work / "server.log", env=env)
        url = server.wait_ready()
        ready_mem = server.memory()
        # at rest: the session of the server's own warm-up request ended (Bokeh
        # discards an unused session 15-32 s after its last use) and was collected
        time.sleep(rest_wait_s)
        rest = server.memory()
        t_rest = time.monotonic()
        sc = asyncio.run(_scenario(url, server, sessions, duration_s, side, seed, isolation,
                                   chromium, answer_s))
        marks = sc["marks"]
        closed = marks["closed"]
        after = []
        while time.monotonic() < closed + after_s:
            time.sleep(1.0)
            after.append((round(time.monotonic() - closed, 1), *server.memory()))
        now = time.monotonic()
        peak = (max(server.rss_between(t_rest, now) or [rest[0]]),
                max(server.rss_between(t_rest, now, anon=True) or [rest[1]]))
        out = _summary(sc, server, ready_mem, rest, peak, after, sessions, duration_s, side)
        out["answer_s"] = answer_s
        # the server's memory through the run, one sample a second, and when each phase began
        out["memory_mib"]["series"] = [(round(t - t_rest, 1), round(r / 2**20), round(a / 2**20))
                                       for t, r, a in server.samples[::4] if t >= t_rest]
        out["phases_s"] = {k: round(v - t_rest, 1) for k, v in sc["marks"].items()}
        return out
    finally:
        if server is not None:
            server.stop()
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)


def _summary(sc, server, ready, rest, peak, after, sessions, duration_s, side) -> dict:
    users = sc["users"]
    res = [u.result for u in users]
    lat = [v for r in res for v in r.latencies_s]
    to_data = [v for r in res for v in r.to_data_s]
    firsts = [r.first_page_s for r in res if r.first_page_s is not None]
    htmls = [r.html_s for r in res if r.html_s is not None]
    chooses = [r.choose_s for r in res if r.choose_s is not None]
    updates = sum(r.updates for r in res)
    ws = sum(r.ws_bytes_zoom for r in res)
    final = after[-1][1:] if after else server.memory()
    mib = 2 ** -20
    return {
        "sessions": sessions, "duration_s": duration_s, "side": side,
        "server_ready_s": server.ready_s,
        "first_page_s": {"median": percentile(firsts, 50), "max": max(firsts, default=None),
                         "each": [round(v, 2) for v in firsts], "loaded": len(firsts),
                         "html_median": percentile(htmls, 50),
                         "html_max": max(htmls, default=None)},
        "choose_s": {"median": percentile(chooses, 50), "max": max(chooses, default=None)},
        "wheel_to_picture_s": {"median": percentile(lat, 50), "p90": percentile(lat, 90),
                               "p95": percentile(lat, 95), "max": max(lat, default=None),
                               "answered": len(lat),
                               "to_data_median": percentile(to_data, 50),
                               "to_data_p95": percentile(to_data, 95)},
        "actions": sum(r.actions for r in res),
        "unanswered": sum(r.unanswered for r in res),
        "late": sum(r.late for r in res),
        "unchanged": sum(r.unchanged for r in res),
        "updates": updates,
        "foreign_updates": sum(r.foreign_updates for r in res),
        "final_matches": sum(bool(r.final_matches) for r in res),
        "bytes_per_update": ws / updates if updates else None,
        "isolation": {"ok": sum(r.isolation_ok for r in res),
                      "checks": sum(r.isolation_checks for r in res),
                      "own_late": sum(r.isolation_own_late for r in res)},
        "console_errors": sum(len(r.errors) for r in res),
        "console_error_texts": [e for r in res for e in r.errors][:20],
        "failed_requests": sorted({u for r in res for u in r.failed_requests})[:20],
        "server_errors": server.problems(),
        "failures": [f"session {r.index}: {r.failure}" for r in res if r.failure],
        "memory_mib": {"ready": ready[0] * mib, "rest": rest[0] * mib, "peak": peak[0] * mib,
                       "after": final[0] * mib,
                       "after_ratio": final[0] / rest[0] if rest[0] else None,
                       "anon_ready": ready[1] * mib, "anon_rest": rest[1] * mib,
                       "anon_peak": peak[1] * mib, "anon_after": final[1] * mib,
                       "after_series": [(t, round(r * mib, 1), round(a * mib, 1))
                                        for t, r, a in after]},
        "cpu_s": sc["cpu_s"],
        "sessions_detail": [r.as_dict() for r in res],
    }


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------

def _rows(s: dict) -> list:
    from ._common import Row

    w = s["wheel_to_picture_s"]
    fp = s["first_page_s"]
    m = s["memory_mib"]
    n = s["sessions"]
    rows = [
        Row(f"first page, {n} sessions at once (max)", time_s=fp["max"], value=fp["max"],
            metric="s", goal=("<=", GOAL_FIRST_PAGE_S),
            note=f"{fp['loaded']} of {n} loaded; median {_s(fp['median'])}; each "
                 f"{fp['each']}; the page's HTML (the server builds the session's "
                 f"document meanwhile): median {_s(fp['html_median'])}, max "
                 f"{_s(fp['html_max'])}"),
        Row("choose another tensor and back (max)", time_s=s["choose_s"]["max"],
            value=s["choose_s"]["max"], metric="s",
            note=f"median {_s(s['choose_s']['median'])}"),
        Row("wheel-to-picture p95", time_s=w["p95"], value=w["p95"], metric="s",
            goal=("<=", GOAL_P95_S),
            note=f"median {_s(w['median'])}, p90 {_s(w['p90'])}, max {_s(w['max'])}; "
                 f"{w['answered']} answered of {s['actions']} wheel notches and drags; "
                 f"until the data arrived: median {_s(w['to_data_median'])}, p95 "
                 f"{_s(w['to_data_p95'])} (the rest is BokehJS drawing)"),
        Row("wheel turns unanswered", value=s["unanswered"], metric="turns", goal=("<=", 0),
            note=f"no matching picture within {s['answer_s']:.0f} s ({s['late']} of them got it "
                 f"later); {s['unchanged']} more left the snapped window as it was "
                 "(nothing to redraw)"),
        Row("pictures matching no own range", value=s["foreign_updates"], metric="updates",
            goal=("<=", 0), note=f"of {s['updates']}; final picture right in "
                                 f"{s['final_matches']} of {n} sessions"),
        Row("isolation checks failed", value=s["isolation"]["checks"] - s["isolation"]["ok"],
            metric="checks", goal=("<=", 0),
            note=f"{s['isolation']['ok']} of {s['isolation']['checks']} with no picture of "
                 f"another session's range; the zooming session's own picture late in "
                 f"{s['isolation']['own_late']}"),
        Row("bytes per update", value=(s["bytes_per_update"] or 0) / 2 ** 20, metric="MiB",
            note=f"websocket bytes received while zooming / pictures ({s['updates']})"),
        Row("console and server errors", value=s["console_errors"] + len(s["server_errors"]),
            metric="errors", goal=("<=", 0),
            note="; ".join(s["server_errors"][:3] + s["failures"][:3]
                           + s["console_error_texts"][:2] + s["failed_requests"][:3])),
        Row("server memory after close / at rest", value=m["after_ratio"], metric="x",
            goal=("<=", GOAL_MEMORY_RATIO),
            note=f"RSS at rest {m['rest']:.0f} MiB, peak {m['peak']:.0f} MiB, "
                 f"{m['after']:.0f} MiB {m['after_series'][-1][0] if m['after_series'] else 0:.0f}"
                 f" s after every page closed (anonymous: {m['anon_rest']:.0f}, "
                 f"{m['anon_peak']:.0f}, {m['anon_after']:.0f} MiB; at the announcement "
                 f"{m['ready']:.0f} MiB)"),
    ]
    c = s["cpu_s"]
    rows.append(Row("CPU while zooming: server / Chromium", value=c["zoom_server"] /
                    max(c["zoom_wall"], 1e-9), metric="cores",
                    note=f"server {c['zoom_server']:.1f} s, Chromium {c['zoom_chromium']:.1f} s "
                         f"of CPU in {c['zoom_wall']:.1f} s (page loads: server "
                         f"{c['pages_server']:.1f} s, Chromium {c['pages_chromium']:.1f} s)"))
    return rows


def _s(v) -> str:
    return "-" if v is None else f"{v:.2f} s"


def run(out_dir: str, quick: bool = False, sessions: int | None = None,
        duration_s: float | None = None, side: int | None = None,
        after_s: float | None = None, seed: int = 0, rest_wait_s: float | None = None,
        answer_s: float | None = None) -> int:
    """``python -m benchmarks load``: run, print the table, write the JSON."""
    from ._common import format_table, high_load_note, loadavg, machine_info, write_json

    sessions = sessions or (3 if quick else 10)
    duration_s = duration_s or (20.0 if quick else 60.0)
    side = side or 8192
    after_s = 60.0 if after_s is None else after_s
    load0 = loadavg()
    rest_wait_s = REST_WAIT_S if rest_wait_s is None else rest_wait_s
    answer_s = ANSWER_S if answer_s is None else answer_s
    s = run_load(sessions=sessions, duration_s=duration_s, side=side, after_s=after_s, seed=seed,
                 rest_wait_s=rest_wait_s, answer_s=answer_s)
    load1 = loadavg()
    rows = _rows(s)
    title = (f"dlviz serve under load: {sessions} Chromium sessions zooming a {side} x {side} "
             f"float32 matrix for {duration_s:.0f} s" + high_load_note(load0, load1))
    print(format_table(rows, title))
    path = write_json(out_dir, "load", {
        "machine": machine_info(("numpy", "numba", "bokeh", "panel", "holoviews", "playwright")),
        "goals": {"p95_s": GOAL_P95_S, "first_page_s": GOAL_FIRST_PAGE_S,
                  "memory_after_over_rest": GOAL_MEMORY_RATIO},
        "load": [load0, load1], "result": s, "rows": [r.as_dict() for r in rows]})
    print(f"results: {path}")
    return 0
