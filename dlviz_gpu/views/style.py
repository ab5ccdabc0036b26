"""Colour, normalisation and hover policy shared by every view.

One place decides how numbers become colours, so a heatmap, a scatter and a
distribution strip all read the same way:

- signed data gets a diverging colormap centred at zero with symmetric limits;
  unsigned data a perceptually uniform sequential one (colorcet);
- limits are robust (a high percentile of the finite values) unless given;
- a constant or all-NaN input still gets valid, non-degenerate limits;
- ``norm`` is linear, log, symlog or eq_hist; symlog is done here (Bokeh has no
  symlog colour mapper) by colouring ``asinh``-like transformed values and
  labelling the colour bar with the real ones.
"""

from __future__ import annotations

import math
import unicodedata

import numpy as np

from .. import checks
from .. import tensor_stats as _stats
from ..names import display

#: the project's one number format for titles, hovers and tables
format_value = _stats.format_value

#: Palettes chosen when ``cmap=None``.
DIVERGING = "coolwarm"
SEQUENTIAL = "bmy"
#: Colour of pixels whose elements are all NaN / inf (or, with the heatmap's
#: default ``nan="mark"``, that hold any NaN / inf element).
NAN_COLOR = "#00e000"
#: Colour of pixels with no element (empty windows, gaps in a scatter).
EMPTY_COLOR = "#00000000"

NORMS = ("linear", "log", "symlog", "eq_hist")
#: Robust limit: this percentile of |v| (signed) or of v (unsigned).
ROBUST_PERCENTILE = 99.5


#: The one point of a legend entry (a glyph that only names a colour): not drawn
#: (NaN), but BokehJS draws no legend swatch for a glyph without data.
LEGEND_POINT = [(float("nan"), float("nan"))]


#: Longest name a title, legend entry or label shows (a longer one keeps its
#: start and end); the exact name stays in the data.
LABEL_LIMIT = 120
# names HoloViews refuses as a label or group (its sanitizer's ``disallowed``,
# which IPython's tab completion needs; ``_repr_*_`` are refused as well)
_HV_DISALLOWED = ("trait_names", "_ipython_display_", "_getAttributeNames")


def label(name, limit: int | None = LABEL_LIMIT) -> str:
    """``name`` as a HoloViews ``label`` (or ``group``) and as the text of a title or legend.

    HoloViews turns labels into attribute names, character by character, on
    paths that depend on the hash seed (the order of a set of option specs in
    ``StoreOptions.propagate_ids``, then its renderer's compositor), and fails
    on a character without a Unicode name (every control character, NUL, some
    printable ideographs) or on ``\\r``, ``\\a``, ``\\b``, ``\\v``, ``\\f``; a raw
    tensor name must never reach it.  This is :func:`dlviz_gpu.names.display`
    (controls and invisible characters shown as escapes, long names cut to
    ``limit``), with the characters Python's Unicode database has no name for
    escaped as well, and a trailing space after the few names HoloViews
    reserves.

    A plot shows text, it does not map it back to a name, so a backslash
    stays single here (``exact=False``): that makes ``label`` idempotent, and
    a view may apply it to a label its caller already passed through it.
    Widgets and tables, which map back, use ``display`` itself.

    Parameters
    ----------
    name : str
        A tensor, parameter or module name (or any text).
    limit : int or None
        Longest shown form (None: the whole name).

    Returns
    -------
    str
    """
    text = display(name, exact=False)
    if not text.isascii():
        text = "".join(c if c.isascii() or unicodedata.name(c, None) else
                       (f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
                       for c in text)
    if limit is not None:
        text = display(text, limit=limit, exact=False)
    if text in _HV_DISALLOWED or (text.startswith("_repr_") and text.endswith("_")):
        text += " "
    return text


def labels(names, limit: int | None = LABEL_LIMIT) -> list[str]:
    """:func:`label` of each name, all different (categorical axes need unique factors).

    Names that the ``limit`` cuts to the same text are shown whole; names
    that still show the same (a literal backslash beside a control character
    shown as an escape, or a reserved name beside itself plus a space) get
    their position appended.
    """
    names = list(names)
    shown = [label(n, limit) for n in names]
    if len(set(shown)) < len(shown):
        shown = [label(n, None) for n in names]
    seen: dict = {}
    for i, s in enumerate(shown):
        if s in seen:
            shown[i] = f"{s} ({i})"
        seen[shown[i]] = i
    return shown


def ensure_bokeh():
    """Load HoloViews' Bokeh backend (its options must be known before ``.opts``).

    Views set their options with ``backend="bokeh"`` explicitly, so they stay
    Bokeh views whatever backend is current (``dv.save`` to PNG loads
    matplotlib beside it).  Returns the ``holoviews`` module.
    """
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 - registers the backend and its options

    if hv.Store.current_backend not in hv.Store.renderers:
        hv.Store.set_current_backend("bokeh")
    return hv


def _palettes() -> dict:
    import colorcet as cc

    return cc.palette


def check_choice(value, name: str, choices) -> str:
    """``value`` if it is one of ``choices`` (:func:`dlviz_gpu.checks.check_choice`, the
    choices listed as bare words)."""
    return checks.check_choice(value, name, choices, quoted=False)


def check_norm(norm) -> str:
    """Validate ``norm``; the error lists the valid names."""
    return check_choice(norm, "norm", NORMS)


def check_cmap(cmap, signed: bool) -> list[str]:
    """The palette (a list of hex colours) for ``cmap``.

    Parameters
    ----------
    cmap : str, sequence of str or None
        A colorcet palette name (``"coolwarm"``, ``"fire"``, ``"bmy"``,
        ``"kbc"``, ... or any name in ``colorcet.palette``), a list of colours,
        or None for the default of the data's sign.
    signed : bool
        Whether the data has both signs (diverging default).
    """
    palettes = _palettes()
    if cmap is None:
        return list(palettes[DIVERGING if signed else SEQUENTIAL])
    if isinstance(cmap, str):
        if cmap in palettes:
            return list(palettes[cmap])
        short = sorted(k for k in palettes if "_" not in k)
        raise ValueError(f"cmap: expected a colorcet palette name ({', '.join(short)}, or any "
                         f"name in colorcet.palette) or a list of colours; got {cmap!r}")
    if isinstance(cmap, (list, tuple)) and len(cmap) >= 2 and all(isinstance(c, str) for c in cmap):
        return list(cmap)
    raise ValueError("cmap: expected a colorcet palette name or a list of at least two colour "
                     f"strings; got {cmap!r}")


def finite_values(plane: np.ndarray) -> np.ndarray:
    v = np.asarray(plane).ravel()
    return v[np.isfinite(v)]


def is_signed(values: np.ndarray) -> bool:
    """True when the finite values hold both signs (a diverging colormap fits)."""
    v = finite_values(values)
    return bool(v.size) and bool(v.min() < 0) and bool(v.max() > 0)


def robust_limits(values: np.ndarray, norm: str = "linear", signed: bool | None = None,
                  percentile: float = ROBUST_PERCENTILE) -> tuple[float, float]:
    """Colour limits that survive outliers, constants and all-NaN input.

    Signed data (``signed=None`` decides from the values) gets symmetric
    limits ``(-p, p)`` with ``p`` the ``percentile`` of |v|; unsigned data the
    ``100 - percentile`` and ``percentile`` percentiles.  ``log`` uses the
    positive values only.  Degenerate limits are widened so a colour mapper
    never divides by zero: a constant ``c`` gets ``c -/+ max(|c|, 1) / 2``
    (``(-|c|, |c|)`` when signed), no finite value gets ``(0, 1)``.
    """
    v = finite_values(values)
    if norm == "log":
        v = v[v > 0]
        if not v.size:
            return (1.0, 10.0)
        lo, hi = np.percentile(v, [100 - percentile, percentile])
        lo, hi = float(lo), float(hi)
        if not hi > lo:
            lo, hi = lo / math.sqrt(10), hi * math.sqrt(10)
        return (lo, hi)
    if not v.size:
        return (0.0, 1.0)
    if signed is None:
        signed = bool(v.min() < 0 < v.max())
    if signed:
        p = float(np.percentile(np.abs(v), percentile))
        if not p > 0:
            p = float(np.abs(v).max()) or 1.0
        return (-p, p)
    lo, hi = (float(t) for t in np.percentile(v, [100 - percentile, percentile]))
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        half = max(abs(lo), 1.0) / 2
        lo, hi = lo - half, hi + half
    return (lo, hi)


def window_range(rng, default: tuple[float, float]) -> tuple[float, float]:
    """A stream's (x0, x1) as a sorted, finite, non-empty range (``default`` when it is not).

    Bokeh sends ``None`` before the first layout and may send a reversed or
    zero-width range; a zero width is padded by 1e-9 of the magnitude.
    """
    if rng is None or None in tuple(rng):
        lo, hi = default
    else:
        lo, hi = sorted(float(v) for v in rng)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = default
    if not hi > lo:
        pad = max(abs(lo), 1.0) * 1e-9
        lo, hi = lo - pad, hi + pad
    return lo, hi


def check_clim(clim) -> tuple[float, float] | None:
    """Validate an explicit ``clim`` (None means robust limits)."""
    if clim is None:
        return None
    try:
        lo, hi = (float(t) for t in clim)
    except (TypeError, ValueError):
        raise ValueError(f"clim: expected (low, high) numbers or None; got {clim!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"clim: expected finite low < high; got {clim!r}")
    return (lo, hi)


# -- symlog ---------------------------------------------------------------------
def symlog(v, linthresh: float):
    """``sign(v) * log10(1 + |v| / linthresh)``: linear near 0, log beyond."""
    v = np.asarray(v, dtype=np.float64)
    return np.sign(v) * np.log10(1.0 + np.abs(v) / linthresh)


def symlog_linthresh(limits: tuple[float, float]) -> float:
    """A linear threshold of 1/1000 of the largest limit (never 0)."""
    m = max(abs(limits[0]), abs(limits[1]))
    return m / 1000.0 if m > 0 else 1.0


def symlog_tick_formatter(linthresh: float):
    """A Bokeh tick formatter that labels symlog-space ticks with real values."""
    from bokeh.models import CustomJSTickFormatter

    return CustomJSTickFormatter(args={"t": float(linthresh)}, code="""
        const v = Math.sign(tick) * t * (Math.pow(10, Math.abs(tick)) - 1);
        if (v === 0) return "0";
        const a = Math.abs(v);
        return (a >= 1e4 || a < 1e-3) ? v.toExponential(2) : v.toPrecision(3);
    """)


def colour_opts(palette, norm: str, limits, nan_color: str = NAN_COLOR) -> dict:
    """HoloViews options for a colour-mapped element (Image, QuadMesh, ...).

    ``limits`` are in the space the plane is coloured in (symlog-transformed
    for ``norm="symlog"``).
    """
    opts = {"cmap": palette, "colorbar": True, "clim": tuple(limits),
            "clipping_colors": {"NaN": nan_color}}
    if norm == "log":
        opts["cnorm"] = "log"
    elif norm == "eq_hist":
        opts["cnorm"] = "eq_hist"
    else:
        opts["cnorm"] = "linear"
    return opts
