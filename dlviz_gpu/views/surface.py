"""``dv.decision_surface``: where a classifier puts each class, re-evaluated on every zoom.

The classifier (any fitted scikit-learn classifier, pipelines included, or a
torch module) is evaluated on a grid of exactly one cell per canvas pixel over
the visible window, at the plot's pixel size, and again for the new window on
every zoom or resize (a ``DynamicMap`` with ``RangeXY`` and ``PlotSize``
streams, like :func:`dlviz_gpu.heatmap`), so the boundary is as sharp at 1000x
zoom as in the overview.  scikit-learn's ``DecisionBoundaryDisplay`` evaluates
a fixed 100 x 100 grid once.

What a frame shows:

- **classes**: each cell the colour of its predicted class (the palette the
  scatter uses for categories), its confidence as lightness: nearly white
  where the model is undecided, the (light) class colour where it is sure.
  Confidence is the probability of the predicted class (``predict_proba``,
  softmax of a torch module's logits), or the decision margin relative to the
  samples' median margin (``decision_function``), or none (``predict``: flat
  colours);
- **the samples** ``X``, drawn by the points kernel
  (:func:`dlviz_gpu.rasterize_points`) on the same canvas: a dot in the
  colour of its class ``y`` (dark grey without ``y``) with a dark ring, so it
  reads on its own class's colour;
- **support vectors** of an SVM: a black ring around each;
- **class-conditional densities** of a Gaussian naive Bayes model
  (``densities=True``): each class's Gaussian on the plane as 1, 2 and 3
  sigma contours in its colour;
- hover: the cell's coordinates, predicted class, confidence, the per-class
  probabilities (or decision values) and the samples in the pixel.

With more than two features the picture is a plane of the feature space:
the two ``features`` with the others fixed at their medians over ``X``
(``plane="median"``), or the plane of the first two principal components of
the standardised features (``plane="pca"``; points are projected onto it).
The plane is named in the title.
"""

from __future__ import annotations

import time

import numpy as np

from ..estimators import (Classifier, Plane, SurfaceGrid, cell_centres, check_X,
                                 evaluate_grid, feature_names_of, final_step)
from ..points import rasterize_points
from ..checks import check_flag, check_size
from . import style
from .points import spread_plane
from .trees import hex_to_rgb, class_colours, tint
from .zoom import ZoomView

#: Cell colour: ``MIN_TINT`` of the class colour (over white) when undecided,
#: ``MAX_TINT`` when certain; the samples are drawn in the full colour.
MIN_TINT = 0.12
MAX_TINT = 0.62
#: Radius (pixels) of a sample's dot; its dark ring is one pixel wider.
POINT_RADIUS = 2
RING = "#1e1e1e"
#: Colour of samples without labels.
UNLABELLED = "#505050"
#: Support vectors: a black ring from this radius to one pixel more.
SV_RADIUS = 5
#: The default window pads the samples' extent by this fraction a side.
PAD = 0.05
#: Per-class values in the hover up to this many classes.
HOVER_CLASSES = 12
#: Shades per class between MIN_TINT and MAX_TINT (a lookup table: the strength
#: in [0, 1] is rounded to 1/255).
LEVELS = 256
#: Values of ``hover``: every plane (class, confidence, per-class values,
#: samples), the class planes only (class, confidence, samples), or none (the
#: picture alone: a quarter of the bytes per zoom of "full" with 3 classes).
HOVERS = ("full", "class", "none")
#: Sigma contours of the naive Bayes densities.
DENSITY_SIGMAS = (1.0, 2.0, 3.0)

_CLASS_JS = "return (value >= 0 && value < names.length) ? names[value] : '';"


def _disc(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` of a True pixel of ``mask`` (the scatter's spreading disc)."""
    if radius <= 0:
        return mask.copy()
    plane = np.where(mask, 1.0, np.nan)
    return np.isfinite(spread_plane(plane, mask, radius, "max"))


def _ring(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """Union of the rings (inner < distance <= outer, in the scatter's disc metric) around
    each True pixel of ``mask``; unlike ``disc(outer) & ~disc(inner)``, a ring is not cut
    where another point's inside overlaps it."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    pad = np.zeros((h + 2 * outer, w + 2 * outer), dtype=bool)
    pad[outer:outer + h, outer:outer + w] = mask
    for dy in range(-outer, outer + 1):
        for dx in range(-outer, outer + 1):
            d2 = dy * dy + dx * dx
            if inner * (inner + 1) < d2 <= outer * (outer + 1):
                out |= pad[outer + dy:outer + dy + h, outer + dx:outer + dx + w]
    return out


def _spread_codes(codes: np.ndarray, filled: np.ndarray, radius: int) -> np.ndarray:
    """Each pixel within ``radius`` of a sample takes the largest nearby class code (-1: none)."""
    plane = np.where(filled, codes.astype(np.float64), np.nan)
    out = spread_plane(plane, filled, radius, "max")
    return np.where(np.isfinite(out), out, -1).astype(np.int64)


class SurfaceView(ZoomView):
    """The state behind one decision surface: model, plane, samples, colours, last window.

    Build one with :func:`decision_surface` (or directly, for numbers without
    a plot: :meth:`grid`).

    Attributes
    ----------
    model : :class:`~dlviz_gpu.estimators.Classifier`
    plane : :class:`~dlviz_gpu.estimators.Plane`
    xy : (N, 2) float64
        The samples' positions on the plane.
    extent : ((float, float), (float, float))
        The default window.
    updates : int
        Frames built (each zoom adds one).
    last : dict
        ``window``, ``canvas`` (w, h), ``seconds`` (the frame), ``model_seconds``
        (the model evaluation alone).
    """

    def __init__(self, estimator, X, y=None, features=(0, 1), plane: str = "median",
                 response: str = "auto", support_vectors: bool = True,
                 densities: bool = False, class_names=None, feature_names=None,
                 pixel_ratio: float = 1.0, width: int = 800, height: int = 600,
                 hover: str | None = "full"):
        self.width = check_size(width, "width")
        self.height = check_size(height, "height")
        if not (isinstance(pixel_ratio, (int, float)) and not isinstance(pixel_ratio, bool)
                and 0 < pixel_ratio <= 4):
            raise ValueError(f"pixel_ratio: expected a number in (0, 4]; got {pixel_ratio!r}")
        self.pixel_ratio = float(pixel_ratio)
        self.hover = style.check_choice("none" if hover is None else hover, "hover", HOVERS)
        check_flag(support_vectors, "support_vectors")
        check_flag(densities, "densities")
        self.model = Classifier(estimator, response=response, class_names=class_names)
        self.estimator = estimator
        self.X = check_X(X, estimator if self.model.kind == "sklearn" else None)
        self.model.check_width(self.X)
        names = feature_names_of(X, estimator, feature_names, n=self.X.shape[1])
        self.feature_names = names
        self.plane = Plane(self.X, features, plane, names)
        self.xy = self.plane.project(self.X)
        self.codes = self._check_y(y)
        self.labels = list(self.model.labels)
        self.colors = class_colours(len(self.labels))
        self._rgb = hex_to_rgb(self.colors)
        # (K, LEVELS, 3) uint8: class colour tinted over white by the strength level
        amount = MIN_TINT + (MAX_TINT - MIN_TINT) * np.linspace(0.0, 1.0, LEVELS)
        self.lut = np.stack([np.clip(np.rint(tint(np.repeat(c[None], LEVELS, 0), amount)),
                                     0, 255) for c in self._rgb]).astype(np.uint8)
        self.model.calibrate(self.X)
        self.sv = self._support_vectors() if support_vectors else None
        self.nb = self._naive_bayes() if densities else None
        (x0, x1), (y0, y1) = [(float(lo), float(hi)) for lo, hi in
                              zip(self.xy.min(axis=0), self.xy.max(axis=0))]
        self.bounds = ((x0, x1), (y0, y1))
        self.extent = tuple(self._pad(lo, hi) for lo, hi in self.bounds)
        super().__init__((self.width, self.height))
        self._cache = None

    @staticmethod
    def _pad(lo: float, hi: float) -> tuple[float, float]:
        span = hi - lo
        if not span > 0:
            span = max(abs(lo), 1.0)
        return (lo - PAD * span, hi + PAD * span)

    # -- inputs -------------------------------------------------------------------
    def _check_y(self, y):
        if y is None:
            return None
        if hasattr(y, "detach") and hasattr(y, "cpu"):
            y = y.detach().cpu().numpy()
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != self.X.shape[0]:
            raise ValueError(f"y: expected one label per row of X ({self.X.shape[0]}); got shape "
                             f"{y.shape}")
        if self.model.kind == "torch":
            k = len(self.model.labels)
            if y.dtype.kind not in "biu" and not (y.dtype.kind == "f" and
                                                  np.all(np.rint(y) == y)):
                raise ValueError(f"y: expected integer class indices 0..{k - 1} (the module's "
                                 f"outputs); got dtype {y.dtype}")
            codes = y.astype(np.int64)
            bad = (codes < 0) | (codes >= k)
            if bad.any():
                raise ValueError(f"y: expected class indices in 0..{k - 1} (the module has {k} "
                                 f"outputs); got {codes[bad][0]} at row {int(np.flatnonzero(bad)[0])}")
            return codes
        classes = self.model.classes
        known = np.isin(y, classes)
        if not known.all():
            first = int(np.flatnonzero(~known)[0])
            raise ValueError(f"y: expected labels among the estimator's classes_ "
                             f"{list(classes.tolist())[:12]}; got {y[first]!r} at row {first}")
        lookup = {c: i for i, c in enumerate(classes.tolist())}
        return np.fromiter((lookup[v] for v in y.tolist()), dtype=np.int64, count=y.size)

    def _support_vectors(self):
        """(M, 2) plane positions of an SVM's support vectors, or None."""
        if self.model.kind != "sklearn":
            return None
        est = self.estimator
        last = final_step(est)
        sv = getattr(last, "support_vectors_", None)
        if sv is None or np.asarray(sv).size == 0:
            return None
        sv = np.asarray(sv, dtype=np.float64)
        steps = getattr(est, "steps", None)
        if isinstance(steps, list) and len(steps) > 1:
            # back through the pipeline's transforms, where each can be inverted
            for _, step in reversed(steps[:-1]):
                if step in (None, "passthrough"):
                    continue
                inv = getattr(step, "inverse_transform", None)
                if inv is None:
                    self.sv_note = (f"support vectors not drawn: {type(step).__name__} has no "
                                    "inverse_transform")
                    return None
                sv = np.asarray(inv(sv), dtype=np.float64)
        if sv.ndim != 2 or sv.shape[1] != self.X.shape[1]:
            return None
        return self.plane.project(sv)

    def _naive_bayes(self):
        last = final_step(self.estimator) if self.model.kind == "sklearn" else self.estimator
        theta = getattr(last, "theta_", None)
        var = getattr(last, "var_", None)
        if theta is None or var is None:
            raise ValueError(f"densities: class-conditional densities need a Gaussian naive "
                             f"Bayes model (theta_, var_); got {type(last).__name__}")
        steps = getattr(self.estimator, "steps", None)
        pre = None
        if isinstance(steps, list) and len(steps) > 1:
            from sklearn.pipeline import Pipeline

            pre = Pipeline(steps[:-1])
        nb = {"theta": np.asarray(theta, np.float64), "var": np.asarray(var, np.float64),
              "pre": pre}
        nb["quad"] = [self._quadratic(nb, k) for k in range(nb["theta"].shape[0])]
        return nb

    def _mahalanobis(self, nb, k: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Squared distance of plane points to class ``k``'s mean, per its diagonal variance."""
        pts = self.plane.lift(a, b)
        if nb["pre"] is not None:
            pts = np.asarray(nb["pre"].transform(pts), dtype=np.float64)
        return np.sum((pts - nb["theta"][k]) ** 2 / nb["var"][k], axis=1)

    def _quadratic(self, nb, k: int):
        """The minimum of the class's distance over the plane (it is a quadratic in (a, b)
        for affine pipelines: fitted from nine points and checked on a tenth)."""
        (cx, cy), (sx, sy) = self.xy.mean(axis=0), self.xy.std(axis=0) + 1e-12
        a = cx + sx * np.array([-1, 0, 1, -1, 0, 1, -1, 0, 1, 0.37])
        b = cy + sy * np.array([-1, -1, -1, 0, 0, 0, 1, 1, 1, -0.61])
        q = self._mahalanobis(nb, k, a, b)
        A = np.stack([np.ones_like(a), a, b, a * a, a * b, b * b], axis=1)
        c, *_ = np.linalg.lstsq(A[:9], q[:9], rcond=None)
        if not np.isclose(A[9] @ c, q[9], rtol=1e-6, atol=1e-9 * max(1.0, abs(q[9]))):
            raise ValueError("densities: the pipeline before the naive Bayes step is not "
                             "affine, so its densities have no Gaussian contours on the plane")
        hess = np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]])
        centre = np.linalg.solve(hess, -c[1:3])
        qmin = float(c[0] + c[1:3] @ centre + 0.5 * centre @ hess @ centre)
        return {"centre": centre, "min": qmin}

    # -- windows --------------------------------------------------------------------
    def window(self, x_range=None, y_range=None, width=None, height=None):
        """((x0, x1), (y0, y1), cells wide, cells high) of a frame."""
        width = check_size(width or self.width, "width")
        height = check_size(height or self.height, "height")
        w = max(1, round(width * self.pixel_ratio))
        h = max(1, round(height * self.pixel_ratio))
        return (style.window_range(x_range, self.extent[0]),
                style.window_range(y_range, self.extent[1]), w, h)

    def grid(self, x_range=None, y_range=None, width=None, height=None) -> SurfaceGrid:
        """The model on a ``width`` x ``height`` grid of cell centres over the window.

        ``None`` ranges take :attr:`extent`; ``width`` / ``height`` default to
        the plot's frame (times ``pixel_ratio``).  Returns a
        :class:`~dlviz_gpu.estimators.SurfaceGrid`: ``classes`` (H, W)
        indices into ``labels``, ``confidence``, ``strength``, ``scores``,
        the centres ``x`` (W,) and ``y`` (H,); row 0 is the ``y0`` side.
        """
        if width is not None or height is not None:
            width = check_size(width or self.width, "width")
            height = check_size(height or self.height, "height")
            xr, yr, _, _ = self.window(x_range, y_range)
            return evaluate_grid(self.model, self.plane, xr, yr, width, height)
        xr, yr, w, h = self.window(x_range, y_range)
        return evaluate_grid(self.model, self.plane, xr, yr, w, h)

    # -- pictures ---------------------------------------------------------------------
    def rgb(self, g: SurfaceGrid) -> np.ndarray:
        """(H, W, 3) uint8 picture of a grid: each cell its class colour tinted over white,
        ``MIN_TINT`` (undecided) to ``MAX_TINT`` (certain) by the rounded strength."""
        level = np.rint(g.strength * (LEVELS - 1)).astype(np.intp)
        return self.lut[g.classes, level]

    def _overlay_points(self, img: np.ndarray, g: SurfaceGrid) -> np.ndarray:
        """Samples (coloured dots with a dark ring) and support-vector rings, drawn in place."""
        (x0, x1), (y0, y1) = g.x_range, g.y_range
        h, w = g.classes.shape
        count = np.zeros((h, w), dtype=np.int64)
        if self.xy.shape[0]:
            kw = dict(width=w, height=h, x_range=(x0, x1), y_range=(y0, y1))
            if self.codes is not None:
                r = rasterize_points(self.xy[:, 0], self.xy[:, 1],
                                     category=self.codes, n_categories=len(self.labels),
                                     stats=("count", "count_cat"), **kw)
                cc = r["count_cat"]
                count = r["count"].astype(np.int64)
                filled = count > 0
                # the pixel's most frequent class
                top = np.argmax(cc, axis=2)
                codes = _spread_codes(top, filled, POINT_RADIUS)
            else:
                r = rasterize_points(self.xy[:, 0], self.xy[:, 1], stats=("count",), **kw)
                count = r["count"].astype(np.int64)
                filled = count > 0
                codes = np.where(_disc(filled, POINT_RADIUS), 0, -1)
            ring = _disc(filled, POINT_RADIUS + 1)
            img[ring & (codes < 0)] = hex_to_rgb([RING])[0].astype(np.uint8)
            dot = codes >= 0
            if self.codes is not None:
                img[dot] = self._rgb[codes[dot]].astype(np.uint8)
            else:
                img[dot] = hex_to_rgb([UNLABELLED])[0].astype(np.uint8)
        if self.sv is not None and self.sv.shape[0]:
            r = rasterize_points(self.sv[:, 0], self.sv[:, 1], width=w, height=h,
                                 x_range=(x0, x1), y_range=(y0, y1), stats=("count",))
            has = r["count"] > 0
            img[_ring(has, SV_RADIUS, SV_RADIUS + 1)] = 0
        return count

    def _density_paths(self, g: SurfaceGrid):
        """Per class: contour lines (list of (n, 2) arrays) of the naive Bayes densities."""
        import contourpy

        a = np.broadcast_to(g.x[None, :], g.classes.shape)
        b = np.broadcast_to(g.y[:, None], g.classes.shape)
        out = []
        for k in range(self.nb["theta"].shape[0]):
            q = self._mahalanobis(self.nb, k, a, b).reshape(g.classes.shape)
            q = q - self.nb["quad"][k]["min"]
            gen = contourpy.contour_generator(g.x, g.y, q)
            lines = []
            for s in DENSITY_SIGMAS:
                lines += [ln for ln in gen.lines(s * s) if len(ln) > 1]
            out.append(lines)
        return out

    def planes(self, x_range=None, y_range=None, width=None, height=None) -> dict:
        """One frame's arrays: ``grid`` (SurfaceGrid), ``rgb`` (H, W, 3) uint8, ``count``."""
        t0 = time.perf_counter()
        g = self.grid(x_range, y_range, width, height)
        img = self.rgb(g)
        count = self._overlay_points(img, g)
        out = {"grid": g, "rgb": img, "count": count}
        if self.nb is not None:
            out["densities"] = self._density_paths(g)
        self.record({"window": (g.x_range, g.y_range), "canvas": (g.x.size, g.y.size),
                     "seconds": time.perf_counter() - t0, "model_seconds": g.seconds})
        return out

    def zoom(self, x_range, y_range, width, height, scale=1.0):
        """The picture of one zoom or resize (the DynamicMap's callback)."""
        return self.element(x_range, y_range, width or self.frame[0], height or self.frame[1])

    def title(self) -> str:
        m = self.model
        what = {"predict_proba": "probability", "softmax": "softmax", "sigmoid": "sigmoid",
                "decision_function": "decision margin", "predict": "predict"}[m.method]
        t = (f"{m.describe()}: {len(self.labels)} classes, {self.X.shape[0]:,} samples; "
             f"lightness = {what}")
        if m.method == "predict":
            t = t.replace("lightness = predict", "classes by predict")
        if self.sv is not None:
            t += f"; {self.sv.shape[0]:,} support vectors (rings)"
        if self.plane.description:
            t += "\n" + self.plane.description
        return t

    def _hover_image(self, hv, res: dict, bounds, kd):
        """An invisible image over the picture that carries the hover's numbers."""
        from bokeh.models import CustomJSHover

        g = res["grid"]
        planes = [("class", g.classes.astype(np.float32), "class"),
                  ("confidence", g.confidence.astype(np.float32), "confidence")]
        if self.hover == "full" and g.scores is not None and \
                g.scores.shape[2] <= HOVER_CLASSES:
            kind = "p" if self.model.method != "decision_function" else "score"
            shown = style.labels(self.labels)
            for k in range(g.scores.shape[2]):
                planes.append((f"s{k}", g.scores[..., k].astype(np.float32),
                               f"{kind}({shown[k] if k < len(shown) else k})"))
        planes.append(("samples", res["count"].astype(np.float32), "samples"))
        data = np.dstack([p[::-1] for _, p, _ in planes])
        vd = [hv.Dimension(n, label=lab) for n, _, lab in planes]
        tips = [("x", "$x{%.4g}"), ("y", "$y{%.4g}"), ("class", "@{image}{custom}")]
        tips += [(lab, f"@{{{n}}}{{0.000}}") for n, _, lab in planes[1:-1]]
        tips.append(("samples", "@{samples}{0,0}"))
        fmts = {"$x": "printf", "$y": "printf",
                "@{image}": CustomJSHover(args={"names": list(self.labels)}, code=_CLASS_JS)}
        return hv.Image(data, bounds=bounds, kdims=kd, vdims=vd, group="Hover").opts(
            backend="bokeh", alpha=0, colorbar=False, cmap=["#000000", "#000000"],
            tools=["hover"], hover_tooltips=tips, hover_formatters=fmts)

    def element(self, x_range=None, y_range=None, width=None, height=None):
        """The HoloViews overlay of one window (what each zoom shows)."""
        hv = style.ensure_bokeh()

        # HoloViews asks for the first frame twice while it builds a plot: a model
        # evaluation can take a while, so the same window and size reuse the last frame
        key = self.window(x_range, y_range, width, height)
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached[1]
        res = self.planes(x_range, y_range, width, height)
        g = res["grid"]
        (x0, x1), (y0, y1) = g.x_range, g.y_range
        bounds = (x0, y0, x1, y1)
        kd = [hv.Dimension("x", label=self.plane.xlabel),
              hv.Dimension("y", label=self.plane.ylabel)]
        rgb = hv.RGB(res["rgb"][::-1], bounds=bounds, kdims=kd).opts(
            backend="bokeh", frame_width=self.width, frame_height=self.height,
            title=self.title(), xlabel=self.plane.xlabel, ylabel=self.plane.ylabel,
            active_tools=["wheel_zoom"], legend_position="right")
        layers = [rgb]
        if self.hover != "none":
            layers.append(self._hover_image(hv, res, bounds, kd))
        if "densities" in res:
            for k, lines in enumerate(res["densities"]):
                path = hv.Path(lines, kdims=kd, group="Density")
                layers.append(path.opts(backend="bokeh", color=self.colors[k], line_width=1.4,
                                        line_alpha=0.9))
        # names are data: HoloViews fails on some characters in a label (style.label)
        for lab, col in zip(style.labels(self.labels), self.colors):
            layers.append(hv.Points(style.LEGEND_POINT, kdims=kd, label=lab).opts(backend="bokeh", color=col,
                                                                  size=8))
        out = hv.Overlay(layers).opts(backend="bokeh", show_legend=True,
                                      legend_limit=len(self.labels) + 100)
        self._cache = (key, out)
        return out


def decision_surface(estimator, X, y=None, features=(0, 1), plane: str = "median",
                     response: str = "auto", width: int = 800, height: int = 600,
                     support_vectors: bool = True, densities: bool = False, *,
                     class_names=None, feature_names=None, pixel_ratio: float = 1.0,
                     hover: str | None = "full", dynamic: bool = True):
    """A zoomable decision surface: the classifier evaluated at every pixel of the view.

    Parameters
    ----------
    estimator : fitted scikit-learn classifier, Pipeline ending in one, or torch.nn.Module
        A torch module maps a (B, D) float batch to (B, K) logits (or one
        logit per row); it is evaluated in batches on its parameters' device
        and dtype, in eval mode, without gradients.
    X : (N, D) array_like
        Samples: they set the default window, the medians of the other
        features or the principal components, and are drawn as dots.
    y : (N,) array_like, optional
        Their labels (class labels of the estimator; class indices for a
        torch module): the dots' colours.
    features : (int or str, int or str)
        The two features on the axes (``plane="median"``).
    plane : {"median", "pca"}
        With D > 2 features: the other features fixed at their medians, or
        the plane of the first two principal components of the standardised
        features (the axes are component scores; grid points are mapped back
        to feature space).  Named in the title and on the axes.
    response : {"auto", "predict_proba", "decision_function", "predict"}
        What sets the confidence (lightness); the class is always the
        estimator's own prediction.  ``"auto"``: the first the estimator has.
    width, height : int
        Plot frame size in screen pixels (one grid cell per pixel).
    support_vectors : bool
        Ring an SVM's support vectors (through a Pipeline's invertible
        transforms).
    densities : bool
        Gaussian naive Bayes: draw each class's Gaussian as 1, 2, 3 sigma
        contours on the plane.
    class_names : sequence of str, optional
        Names of the classes (default ``classes_``; ``0 .. K-1`` for torch).
    feature_names : sequence of str, optional
        Default: a DataFrame's columns, ``feature_names_in_``, else x0, x1, ...
    pixel_ratio : float
        Grid cells per screen pixel along each axis (0.5: a quarter of the
        evaluations for slow models).
    hover : {"full", "class", "none"}
        What the hover shows, and so what each zoom sends besides the picture
        (float32 planes of the canvas size): ``"full"`` the class,
        confidence, per-class probabilities or decision values (up to 12
        classes) and samples in the pixel; ``"class"`` without the per-class
        values; ``"none"`` (or None) no hover, the picture alone.
    dynamic : bool
        ``True``: a ``DynamicMap`` that re-evaluates the visible window on
        every zoom and resize.  ``False``: one frame of the default window.

    Returns
    -------
    holoviews.DynamicMap or holoviews.Overlay
        ``.view`` (on the DynamicMap) is the :class:`SurfaceView`; its
        :meth:`SurfaceView.grid` returns the numbers without a plot.

    Raises
    ------
    TypeError
        ``estimator`` is not a classifier (a regressor, a transformer, ...).
    ValueError
        Not fitted; ``X`` of the wrong width or with NaN; ``features`` out of
        range; ``y`` with unknown labels; unknown ``plane`` / ``response``;
        ``densities`` without Gaussian naive Bayes.
    ImportError
        scikit-learn missing (``pip install "dlviz_gpu[sklearn]"``).
    """
    style.ensure_bokeh()
    view = SurfaceView(estimator, X, y=y, features=features, plane=plane, response=response,
                       support_vectors=support_vectors, densities=densities,
                       class_names=class_names, feature_names=feature_names,
                       pixel_ratio=pixel_ratio, width=width, height=height, hover=hover)
    if not dynamic:
        return view.element()
    return view.dynamic()


__all__ = ["decision_surface", "SurfaceView", "cell_centres", "MIN_TINT", "MAX_TINT"]
