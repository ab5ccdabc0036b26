"""``dlviz render``'s reports: one standalone HTML page, or a folder of PNG files.

A report draws the planned tensors of a catalog one at a time (heatmap and
histogram each), so memory holds one tensor's pictures however big the
checkpoint; HoloViews and Bokeh load when the first one is drawn.  The
command line (:mod:`dlviz_gpu.cli`) parses, plans and dispatches; what a
report looks like lives here.
"""

from __future__ import annotations

import gc
import hashlib
import html
import json
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

from .. import __version__
from ..checkpoints.catalog import shape_text, totals
from ..names import display

__all__ = ["HtmlReport", "PngReport", "Report", "safe_filename", "RELEASE_BYTES"]

#: tensor bytes read by a report between releases of the file pages it touched
RELEASE_BYTES = 256 * 2**20


def safe_filename(name: str, index: int, suffix: str = ".png", limit: int = 120) -> str:
    """A portable file name for tensor ``name``: ``0007-layers.0.mlp.up_proj.weight.png``.

    Characters outside ``[A-Za-z0-9._-]`` become ``_``; the catalog ``index``
    in front keeps names unique (also on case-insensitive file systems) and
    in catalog order; names longer than ``limit`` are cut and given a hash.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-") or "tensor"
    if len(stem) > limit:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
        stem = f"{stem[:limit - 9]}-{digest}"
    return f"{index:04d}-{stem}{suffix}"


def _layout_note(m) -> str:
    rows, cols = m.shape
    what = {"strip": "a 1 x N strip", "mosaic": "a mosaic of kernels",
            "flatten": "flattened", "stack": "leading dimensions stacked as rows"}
    return f"drawn as {rows} x {cols}" + (f" ({what[m.layout]})" if m.layout in what else "")


def _figures(cat, info, layout, args):
    """(heatmap, histplot or None, notes) of one tensor, read from the map."""
    import dlviz_gpu as dv
    from ..views.style import label as view_label

    # the views get the name as it may be shown (HoloViews fails on some
    # characters, depending on the hash seed); the data is read by the exact one
    label = view_label(info.name)
    m = cat.matrix(info.name, layout)
    notes = [_layout_note(m)]
    height = args.height if m.shape[0] > 1 else min(args.height, 120)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        heat = dv.heatmap(m, agg=args.agg, norm=args.norm, dynamic=False, label=label,
                          width=args.width, height=height, hover=(args.agg,))
    # the view's own warnings about the data (all NaN, ...) become notes
    notes += list(dict.fromkeys(str(w.message) for w in caught
                                if issubclass(w.category, RuntimeWarning)))
    try:
        hist = dv.histplot(m, bins=args.bins, label=label,
                           width=max(300, round(args.width * 0.7)), height=max(200, height))
    except (ValueError, TypeError) as err:  # e.g. no finite value to bin
        hist = None
        notes.append(f"no histogram: {err}")
    return heat, hist, notes


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { margin-top: 1.6em; }
h3 { font-family: ui-monospace, monospace; font-size: 1.05em; margin: 1.4em 0 .2em; }
h1, h3, td { overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: .9em; }
td, th { padding: 2px 10px; text-align: left; border-bottom: 1px solid #ddd; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #555; margin: .1em 0 .5em; } .skip { color: #a33; }
section { border-top: 1px solid #ccc; } img { max-width: 100%; height: auto; }
"""


def _summary(cat, infos, args) -> tuple[str, str]:
    from ..models import format_bytes

    tot = totals(cat.infos)
    head = args.title or ", ".join(os.path.basename(os.path.normpath(p)) for p in args.paths)
    head = display(head, exact=False)
    line = (f"{tot['tensors']:,} tensors, {tot['params']:,} parameters, "
            f"{format_bytes(tot['bytes'])}")
    if len(infos) != len(cat.infos):
        sel = totals(infos)
        line += (f"; selected {sel['tensors']:,} tensors, {sel['params']:,} parameters, "
                 f"{format_bytes(sel['bytes'])}")
    return head, line


def _layer_params(infos) -> dict:
    from ..checkpoints.catalog import params_per_layer

    return params_per_layer(infos)


def _progress(total: int, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="render", unit="tensor", file=sys.stderr, disable=quiet,
                dynamic_ncols=True, leave=True)


class Report:
    """Draws the planned tensors one at a time; subclasses say where they go."""

    def __init__(self, out: Path, cat, infos, todo, args):
        self.out, self.cat, self.infos, self.todo, self.args = out, cat, infos, todo, args
        self.head, self.line = _summary(cat, infos, args)

    def write(self) -> tuple[int, list]:
        n = sum(1 for _, lay, _ in self.todo if lay is not None)
        from ..models import CheckpointError

        drawn, failed, read = 0, [], 0
        try:
            self.begin()
            with _progress(n, self.args.quiet) as bar:
                for k, (info, layout, note) in enumerate(self.todo):
                    if layout is None:
                        self.listed(k, info, note)
                        continue
                    bar.set_postfix_str(display(info.name)[-40:], refresh=False)
                    try:
                        heat, hist, notes = _figures(self.cat, info, layout, self.args)
                    except CheckpointError:  # the file itself is at fault: stop
                        raise
                    except (ValueError, TypeError) as err:  # a tensor the engine refuses
                        failed.append(f"{display(info.name)}: {err}")
                        self.listed(k, info, f"could not be drawn: {err}")
                    else:
                        with warnings.catch_warnings():
                            # NumPy's all-NaN warnings from inside HoloViews/matplotlib:
                            # the tensor's own note already says so
                            warnings.simplefilter("ignore", RuntimeWarning)
                            self.tensor(k, info, heat, hist, notes)
                        drawn += 1
                        del heat, hist  # one tensor's pictures held at a time
                    read += info.nbytes
                    if read >= RELEASE_BYTES:
                        # drop the catalog's file maps (they reopen on the next read)
                        # and the views' reference cycles: the pages read so far leave
                        # the resident set, which stays under the largest tensor plus
                        # RELEASE_BYTES however big the checkpoint (a full collection
                        # costs a few tenths of a second, hence not after every tensor)
                        self.cat.close()
                        gc.collect()
                        read = 0
                    bar.update(1)
            self.end()
        except BaseException:
            self.abort()
            raise
        return drawn, failed

    def abort(self) -> None:
        """Clean up after a failure (nothing by default)."""


class HtmlReport(Report):
    """One standalone page; each tensor's section is serialised as soon as it is drawn.

    Every section is its own small Bokeh document (``bokeh.embed.components``)
    written at once to a body file, so memory holds one tensor's plots, not
    the whole report.  At the end the page is put together: Bokeh's
    JavaScript inline (just the parts the sections use, as ``file_html``
    does), the title, the tensor table, then the body; it is written beside
    ``out`` and renamed, so a failed run never leaves half a report.
    """

    def begin(self):
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401 - registers the backend

        import dlviz_gpu as dv

        self.renderer = hv.renderer("bokeh")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.with_name(f".{self.out.name}.part")
        self.body_path = self.out.with_name(f".{self.out.name}.body")
        self.body = open(self.body_path, "w", encoding="utf-8")
        self.classes: set = set()
        self.bundle = {"js_files": [], "js_raw": [], "css_files": [], "css_raw": []}
        self.status: dict[int, str] = {}
        per = _layer_params(self.infos)
        if per:
            self._embed(dv.bars(per, label="parameters", width=max(600, self.args.width)),
                        "Parameters per layer")
        self.body.write("<h2>Tensors</h2>\n")

    def _resources(self, root) -> None:
        """Add the JavaScript and CSS ``root``'s models need (once per new model class)."""
        from bokeh.embed.bundle import bundle_for_objs_and_resources
        from bokeh.resources import INLINE

        classes = {type(m) for m in root.references()}
        if classes <= self.classes:
            return
        self.classes |= classes
        b = bundle_for_objs_and_resources([root], INLINE)
        for key in self.bundle:
            for item in getattr(b, key):
                if key.endswith("_files"):
                    # INLINE resources put all a plot needs in the page; linked
                    # files are Panel's (a relative static/ script, CDN style
                    # sheets of widgets once a dashboard was built), which an
                    # offline page cannot load (see views.output.standalone)
                    continue
                if item not in self.bundle[key]:
                    self.bundle[key].append(item)
        self.hashes = b.hashes

    def _embed(self, obj, heading: str | None = None, anchor: str | None = None,
               meta: str = "") -> None:
        from bokeh.embed import components
        from bokeh.layouts import row

        plots = []
        for o in obj if isinstance(obj, list) else [obj]:
            plot = self.renderer.get_plot(o)
            # HoloViews attaches the plot to bokeh's global curdoc(), whose
            # session hook would keep every section's plot (and its image) alive
            plot.document = None
            plots.append(plot.state)
        root = plots[0] if len(plots) == 1 else row(*plots)
        self._resources(root)
        script, div = components(root)
        ident = f" id=\"{anchor}\"" if anchor else ""
        self.body.write(f"<section{ident}>\n")
        if heading:
            tag = "h3" if anchor else "h2"
            self.body.write(f"<{tag}>{html.escape(display(heading))}</{tag}>\n")
        if meta:
            self.body.write(f"<p class=\"meta\">{html.escape(display(meta, exact=False))}</p>\n")
        self.body.write(f"{div}\n{script}\n</section>\n")

    def tensor(self, k, info, heat, hist, notes):
        from ..models import format_bytes

        meta = (f"{shape_text(info.shape)} {display(info.dtype)}, {info.params:,} parameters, "
                f"{format_bytes(info.nbytes)}; " + "; ".join(notes))
        self._embed([heat] if hist is None else [heat, hist], info.name, f"t{k}", meta)

    def listed(self, k, info, note):
        self.status[k] = note

    def end(self):
        from bokeh.embed.bundle import Bundle

        from ..models import format_bytes

        self.body.close()

        def e(text, exact=False):  # shown (controls escaped), then HTML-escaped
            return html.escape(display(text, exact=exact))
        js, css = Bundle(**self.bundle, hashes=getattr(self, "hashes", {}))
        with open(self.tmp, "w", encoding="utf-8") as f:
            f.write(f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    f"<title>{e(self.head)} - dlviz</title>\n<style>{_CSS}</style>\n"
                    f"{css}\n{js}\n</head>\n<body>\n<h1>{e(self.head)}</h1>\n"
                    f"<p class=\"meta\">{e(self.line)}</p>\n"
                    f"<p class=\"meta\">heatmaps: {e(self.args.agg)} per pixel, "
                    f"{e(self.args.norm)} colour; histograms: {self.args.bins} bins; made by "
                    f"dlviz {e(__version__)} from {e(', '.join(self.cat.sources))}</p>\n"
                    "<table>\n<tr><th>name</th><th>shape</th><th>dtype</th><th>params</th>"
                    "<th>bytes</th><th></th></tr>\n")
            for k, (info, _, _) in enumerate(self.todo):
                note = self.status.get(k)
                name = (e(info.name, True) if note is not None
                        else f"<a href=\"#t{k}\">{e(info.name, True)}</a>")
                f.write(f"<tr><td>{name}</td><td class=\"n\">{shape_text(info.shape)}</td>"
                        f"<td>{e(info.dtype)}</td><td class=\"n\">{info.params:,}</td>"
                        f"<td class=\"n\">{format_bytes(info.nbytes)}</td>"
                        f"<td class=\"skip\">{e(note or '')}</td></tr>\n")
            f.write("</table>\n")
            with open(self.body_path, encoding="utf-8") as body:
                shutil.copyfileobj(body, f)
            f.write("</body>\n</html>\n")
        self.body_path.unlink()
        os.replace(self.tmp, self.out)

    def abort(self):
        if getattr(self, "body", None) is not None:
            self.body.close()
            self.body_path.unlink(missing_ok=True)
        if getattr(self, "tmp", None) is not None:
            self.tmp.unlink(missing_ok=True)


class PngReport(Report):
    """One PNG per tensor (heatmap beside histogram), ``layers.png``, ``index.html``/``.json``."""

    def begin(self):
        import dlviz_gpu as dv

        self.out.mkdir(parents=True, exist_ok=True)
        self.entries = []
        per = _layer_params(self.infos)
        self.layers = None
        if per:
            self.layers = "layers.png"
            dv.save(dv.bars(per, label="parameters", width=max(600, self.args.width)),
                    self.out / self.layers)

    def _entry(self, k, info, file, note):
        row = dict(info.as_row(), shape=list(info.shape), file=file, note=note)
        self.entries.append(row)

    def tensor(self, k, info, heat, hist, notes):
        import dlviz_gpu as dv

        name = safe_filename(info.name, k)
        obj = heat if hist is None else (heat + hist).opts(shared_axes=False)
        dv.save(obj, self.out / name, title=display(info.name))  # forgets its colour bars
        self._entry(k, info, name, "; ".join(notes))

    def listed(self, k, info, note):
        self._entry(k, info, None, note)

    def end(self):
        from ..models import format_bytes

        def e(text, exact=False):  # shown (controls escaped), then HTML-escaped
            return html.escape(display(text, exact=exact))
        index = {"title": self.head, "summary": self.line, "sources": self.cat.sources,
                 "agg": self.args.agg, "norm": self.args.norm, "bins": self.args.bins,
                 "layers": self.layers, "tensors": self.entries}
        (self.out / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
        parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 f"<title>{e(self.head)} - dlviz</title>\n<style>{_CSS}</style>\n</head>\n"
                 f"<body>\n<h1>{e(self.head)}</h1>\n<p class=\"meta\">{e(self.line)}</p>\n"]
        if self.layers:
            parts.append(f"<h2>Parameters per layer</h2>\n<img src=\"{self.layers}\" "
                         f"alt=\"parameters per layer\">\n")
        parts.append("<h2>Tensors</h2>\n<table>\n<tr><th>name</th><th>shape</th>"
                     "<th>dtype</th><th>params</th><th>bytes</th><th></th></tr>\n")
        for r in self.entries:
            name = (f"<a href=\"{e(r['file'])}\">{e(r['name'], True)}</a>" if r["file"]
                    else e(r["name"], True))
            parts.append(f"<tr><td>{name}</td><td class=\"n\">{shape_text(r['shape'])}</td>"
                         f"<td>{e(r['dtype'])}</td><td class=\"n\">{r['params']:,}</td>"
                         f"<td class=\"n\">{format_bytes(r['bytes'])}</td>"
                         f"<td class=\"{'meta' if r['file'] else 'skip'}\">{e(r['note'])}"
                         f"</td></tr>\n")
        parts.append("</table>\n")
        for r in self.entries:
            if r["file"]:
                parts.append(f"<section><h3>{e(r['name'], True)}</h3>\n<img src=\"{e(r['file'])}\" "
                             f"alt=\"{e(r['name'], True)}\" loading=\"lazy\"></section>\n")
        parts.append("</body>\n</html>\n")
        (self.out / "index.html").write_text("".join(parts), encoding="utf-8")
