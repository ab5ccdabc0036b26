"""The ``dlviz`` command line: look at checkpoints from a terminal.

::

    dlviz inspect model.safetensors                 # the catalog as a table
    dlviz inspect model.safetensors.index.json --tree --depth 3
    dlviz inspect ckpt.pt --filter '*.attn.*' --json
    dlviz render model.safetensors -o report.html   # one standalone HTML page
    dlviz render model.safetensors -o pictures --png
    dlviz serve model.safetensors                   # the dashboard, in the browser
    dlviz demo                                      # a small transformer training live

Exit status: 0 done, 1 a file refused (the message names it and says why) or
nothing to show, 2 a usage error, 130 interrupted (``serve`` and ``demo``
stop on Ctrl-C with 0).  Nothing here imports a plotting library until a
command draws, so ``--help`` and ``inspect`` start fast.

Names are data: whatever a file calls its tensors (escape sequences, CR/LF,
NUL, bidirectional overrides, HTML), the terminal, the report and the page
show them through :func:`dlviz_gpu.names.display` (control characters as
``\\x1b``-style escapes), while ``--json`` and ``index.json`` keep them exact.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .names import display

# the engine's statistics and norms, repeated here so that ``--help`` imports
# neither numba nor HoloViews (tests check they match the views' own lists)
AGGS = ("mean", "min", "max", "extremum", "std", "count", "nan_count")
NORMS = ("linear", "log", "symlog", "eq_hist")
OTHER_RANKS = ("flatten", "stack", "skip")
#: longest name the ``inspect`` table shows (its start and end); --json has them whole
NAME_LIMIT = 160


class UsageError(Exception):
    """A command line that cannot be run as given (exit status 2)."""


class NothingToShow(Exception):
    """A valid command that cannot do its job: an empty selection, an unwritable output
    (exit status 1)."""


# --------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``dlviz`` argument parser (one sub-parser per command)."""
    parser = argparse.ArgumentParser(
        prog="dlviz",
        description="Exact pictures of the tensors in model checkpoints (safetensors, sharded "
                    "safetensors, .npz/.npy, torch .pt/.bin loaded with weights_only=True).",
        epilog="Run 'dlviz COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"dlviz {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    paths_help = ("checkpoint files: .safetensors, a sharded *.safetensors.index.json, a folder "
                  "of checkpoint files, .npz, .npy, torch .pt/.pth/.bin/.ckpt (several are "
                  "read as one model)")
    filter_help = ("only tensors whose name matches GLOB (shell wildcards * ? [..], case "
                   "sensitive); without wildcards, a case-insensitive substring")

    ins = sub.add_parser(
        "inspect", help="list the tensors of a checkpoint (no tensor data is read)",
        description="List every tensor of a checkpoint: name, shape, dtype, parameters and "
                    "bytes, with totals.  Only headers are read, so this is quick even for "
                    "checkpoints of many gigabytes.  Totals count tied weights once and "
                    "leave buffers out of the parameter count.")
    ins.add_argument("paths", nargs="+", metavar="PATH", help=paths_help)
    ins.add_argument("--filter", metavar="GLOB", help=filter_help)
    ins.add_argument("--tree", action="store_true",
                     help="the module tree with parameters, bytes and tensor counts summed "
                          "over each subtree, instead of the flat table")
    ins.add_argument("--depth", type=_positive_int, metavar="N",
                     help="with --tree: show modules down to depth N only (tensors are "
                          "still counted)")
    ins.add_argument("--max-rows", type=_positive_int, metavar="N",
                     help="show at most N rows of the table (the totals still cover all)")
    ins.add_argument("--json", action="store_true",
                     help="machine-readable JSON on stdout: sources, one row per tensor, "
                          "totals (and the module rows with --tree)")
    ins.set_defaults(run=_cmd_inspect)

    ren = sub.add_parser(
        "render", help="draw every tensor into one HTML report, or PNG files",
        description="Draw every tensor of a checkpoint as an exact heatmap (each pixel "
                    "aggregates the elements under it) beside its exact histogram, with a "
                    "bar chart of parameters per layer.  1-D tensors are drawn as 1 x N "
                    "strips and conv weights (out, in, kh, kw) as a mosaic of kernels.  "
                    "Tensors are read one at a time from the file map, so memory stays "
                    "bounded by the pictures, not by the checkpoint.",
        epilog="The HTML page is self-contained (Bokeh's JavaScript inline): it opens "
               "without a network or a server; hover shows values, zoom magnifies the "
               "saved pixels.  'dlviz serve' (re-aggregating on zoom) is a separate command.")
    ren.add_argument("paths", nargs="+", metavar="PATH", help=paths_help)
    ren.add_argument("-o", "--output", required=True, metavar="OUT",
                     help="the report: a file ending in .html, or with --png a folder "
                          "(created if missing)")
    ren.add_argument("--png", action="store_true",
                     help="write one PNG per tensor into the folder OUT, plus index.html, "
                          "index.json and layers.png")
    ren.add_argument("--filter", metavar="GLOB", help=filter_help)
    ren.add_argument("--agg", choices=AGGS, default="mean",
                     help="the statistic each heatmap pixel shows (default: mean; "
                          "extremum: the element of largest magnitude, sign kept)")
    ren.add_argument("--norm", choices=NORMS, default="linear",
                     help="colour normalisation of the heatmaps (default: linear)")
    ren.add_argument("--bins", type=_positive_int, default=256, metavar="N",
                     help="histogram bins (default: 256)")
    ren.add_argument("--max-tensors", type=_positive_int, metavar="N",
                     help="draw only the first N drawable tensors (the rest are listed)")
    ren.add_argument("--other-ranks", choices=OTHER_RANKS, default="flatten",
                     help="3-D and 5-D+ tensors: 'flatten' (default) draws (d0, rest), "
                          "'stack' stacks leading dimensions as rows, 'skip' lists them only")
    ren.add_argument("--width", type=_positive_int, default=600, metavar="PX",
                     help="heatmap width in pixels (default: 600)")
    ren.add_argument("--height", type=_positive_int, default=400, metavar="PX",
                     help="heatmap height in pixels (default: 400; 1-D strips are lower)")
    ren.add_argument("--title", help="the report's title (default: the file names)")
    ren.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar and no summary line")
    ren.set_defaults(run=_cmd_render)

    srv = sub.add_parser(
        "serve", help="the dashboard of a checkpoint, or of training runs, in the browser",
        description="Serve the dashboard of a checkpoint on a local Bokeh server: a searchable "
                    "tree of tensors, the chosen tensor as a zoomable heatmap (each zoom "
                    "re-aggregates the visible window exactly), its histogram and exact "
                    "statistics, parameters and norms per layer, and the module summary.  "
                    "Files are memory-mapped: only the tensors shown are read.  Given runs "
                    "recorded by dv.watch, it serves their training views instead (loss and "
                    "learning rate, gradient flow, update ratios, distributions over time, "
                    "weights over time, alerts), following a run while it is written.",
        epilog="Stop it with Ctrl-C.  The server binds 127.0.0.1 (this machine only) unless "
               "--address names another interface, which also needs "
               "--allow-websocket-origin.")
    srv.add_argument("paths", nargs="+", metavar="PATH",
                     help=paths_help + "; or training runs recorded by dv.watch (a run "
                          "directory or its .sqlite file; several runs are compared)")
    _server_options(srv)
    srv.set_defaults(run=_cmd_serve)

    demo = sub.add_parser(
        "demo", help="the dashboard of a small transformer that trains while you look",
        description="Build a deterministic GPT-like model of a few million parameters, serve "
                    "its dashboard at once and train it on synthetic data in the background "
                    "(one CPU thread), so the pictures show trained weights: the page "
                    "follows the training, with its loss curve and status.",
        epilog="Stop it with Ctrl-C.  Same seed, same model and same data on every run.")
    demo.add_argument("--steps", type=_positive_int, metavar="N",
                      help="stop training after N steps (default: train until stopped)")
    demo.add_argument("--seed", type=int, default=0, help="model and data seed (default: 0)")
    demo.add_argument("--store", metavar="DIR", default=None,
                      help="record the training here with dv.watch (default: "
                           "runs/demo-YYYYmmdd-HHMMSS under the current folder; open it "
                           "again later with 'dlviz serve DIR')")
    demo.add_argument("--no-watch", action="store_true",
                      help="train without recording (no training views)")
    demo.add_argument("--prepare", action="store_true",
                      help="compile the engine's kernels into Numba's disk cache and exit "
                           "(scripts/demo.sh does it once at setup, so the first page opens "
                           "in seconds instead of ~30 s on two cores)")
    _server_options(demo)
    demo.set_defaults(run=_cmd_demo)
    parser.set_defaults(commands={"inspect": ins, "render": ren, "serve": srv, "demo": demo})
    return parser


def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=5006,
                   help="port to listen on (default: 5006; 0 picks a free one)")
    p.add_argument("--address", default="127.0.0.1",
                   help="interface to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--allow-websocket-origin", action="append", metavar="HOST[:PORT]",
                   help="a host:port browsers may connect from (repeatable); required "
                        "with a non-local --address")
    p.add_argument("--no-browser", action="store_true",
                   help="do not open a browser (one opens only where a desktop session "
                        "is found)")


def main(argv: list[str] | None = None) -> int:
    """Run ``dlviz`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        0 done, 1 a refused file or nothing to show (message on stderr),
        2 a usage error, 130 interrupted.
    """
    from .models import CheckpointError

    _tolerant_streams()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        try:
            return args.run(args)
        except UsageError as err:  # the command's own usage line, as argparse does
            args.commands.get(args.command, parser).error(str(err))
    except SystemExit as stop:  # argparse: --help, --version, usage errors
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except (CheckpointError, NothingToShow) as err:
        # the message may quote a file's names or a path: shown, never obeyed
        print(f"dlviz: error: {display(str(err), exact=False)}", file=sys.stderr)
        return 1
    except OSError as err:  # a file that cannot be read
        print(f"dlviz: error: {display(str(err), exact=False)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dlviz: interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------
# shared
# --------------------------------------------------------------------------

def _tolerant_streams() -> None:
    """Let stdout and stderr write any text: what their encoding lacks becomes an escape.

    Names are shown printable (:func:`~dlviz_gpu.names.display`), but not
    necessarily ASCII; a terminal or pipe with an ASCII or Latin-1 encoding
    would otherwise end ``inspect`` with a UnicodeEncodeError.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a text stream we may change
            pass

def _open(paths: list[str]):
    from . import models

    return models.open(paths[0] if len(paths) == 1 else list(paths))


class _Listing:
    """Descriptions only, so a :class:`~dlviz_gpu.models.Catalog` can list a selection."""

    skipped: dict = {}

    def __init__(self, path: str, infos: list):
        self.path = path
        self.infos = infos

    def close(self) -> None:
        pass


def _select(cat, pattern: str | None):
    """(the selected infos, a Catalog listing just them) for ``--filter``."""
    from .models import Catalog

    if pattern is None:
        return list(cat.infos), cat
    names = set(cat.select(pattern))
    if not names:
        raise NothingToShow(f"no tensor matches --filter {pattern!r} (the catalog has "
                            f"{len(cat)} tensors, e.g. "
                            f"{', '.join(display(n, limit=80) for n in cat.names[:3])})")
    infos = [i for i in cat.infos if i.name in names]
    by_source: dict[str, list] = {}
    for info in infos:
        by_source.setdefault(info.source, []).append(info)
    return infos, Catalog([_Listing(p, group) for p, group in by_source.items()])


def _shown_info(info, limit: int | None):
    """``info`` with every text shown as :func:`~dlviz_gpu.names.display` does (itself when
    nothing needs it)."""
    from dataclasses import replace

    name = display(info.name, limit=limit)
    module = display(info.module)
    tied = None if info.tied_to is None else display(info.tied_to, limit=limit)
    dtype = display(info.dtype, exact=False)
    if (name, module, tied, dtype) == (info.name, info.module, info.tied_to, info.dtype):
        return info
    return replace(info, name=name, module=module, tied_to=tied, dtype=dtype)


def _shown(listing, limit: int | None = None):
    """A Catalog listing ``listing``'s tensors under the names a terminal may show.

    Catalog's table and tree print names as they are; a name is data from the
    file, and one holding ESC or CR would rewrite the terminal.  The listing
    shows each name through :func:`~dlviz_gpu.names.display` (``limit``: cut
    long names in the middle), and stays ``listing`` itself when no name needs
    it.  Two names cut to the same text are shown whole instead.
    """
    from .models import Catalog

    infos = listing.infos
    # one pass at C speed for the usual case: nothing to escape, nothing to cut
    every = "".join([i.name for i in infos] + [i.dtype for i in infos]
                    + [i.tied_to for i in infos if i.tied_to is not None])
    if (every.isprintable() and "\\" not in every
            and (limit is None or max((len(i.name) for i in infos), default=0) <= limit)):
        return listing
    shown = [_shown_info(i, limit) for i in infos]
    if limit is not None and len({i.name for i in shown}) < len(shown):
        return _shown(listing, None)
    by_source: dict[str, list] = {}
    for info in shown:
        by_source.setdefault(info.source, []).append(info)
    return Catalog([_Listing(p, group) for p, group in by_source.items()])


def layer_of(module: str) -> str:
    """The layer of a module path (see :func:`dlviz_gpu.checkpoints.catalog.layer_of`)."""
    from .checkpoints.catalog import layer_of as rule

    return rule(module)


def _totals(infos) -> dict:
    """Tensors, parameters and bytes of ``infos`` (:func:`dlviz_gpu.checkpoints.catalog.totals`)."""
    from .checkpoints.catalog import totals

    return totals(infos)


def _shape_text(shape) -> str:
    from .checkpoints.catalog import shape_text

    return shape_text(shape)


def _print(text: str) -> None:
    try:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # dlviz inspect ... | head
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# --------------------------------------------------------------------------
# inspect
# --------------------------------------------------------------------------

def _tree_text(root, depth: int | None) -> str:
    from .models import format_bytes

    rows = []
    for d, node in root.walk():
        if depth is not None and d > depth:
            continue
        name = ("  " * d) + (node.name or "(all)")
        rows.append((name, f"{node.params:,}", format_bytes(node.nbytes),
                     f"{node.n_tensors:,} tensor{'' if node.n_tensors == 1 else 's'}"))
        if depth is None or d + 1 <= depth:
            for info in node.tensors:
                leaf = info.name[len(node.path):].lstrip("./") if node.path else info.name
                tied = (f" (= {info.tied_to})" if info.tied_to else
                        " (refused)" if info.problem else "")
                rows.append(("  " * (d + 1) + leaf + tied, f"{info.params:,}",
                             format_bytes(info.nbytes),
                             f"{_shape_text(info.shape)} {info.dtype}"))
    head = ("module / tensor", "params", "bytes", "tensors / shape")
    widths = [max(len(head[c]), *(len(r[c]) for r in rows)) for c in range(3)]

    def fmt(r):
        return (f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2].rjust(widths[2])}  "
                f"{r[3]}").rstrip()

    return "\n".join([fmt(head)] + [fmt(r) for r in rows])


def _cmd_inspect(args) -> int:
    if args.depth is not None and not args.tree:
        raise UsageError("--depth needs --tree")
    cat = _open(args.paths)
    infos, shown = _select(cat, args.filter)
    if args.json:
        out = {"sources": cat.sources, "filter": args.filter,
               "tensors": [dict(i.as_row(), shape=list(i.shape)) for i in infos],
               "totals": _totals(infos), "catalog_totals": _totals(cat.infos),
               "skipped_entries": dict(cat.skipped)}
        if args.tree:
            out["modules"] = shown.tree().to_rows()
        _print(json.dumps(out, indent=1))
        return 0
    if args.tree:
        text = _tree_text(_shown(shown).tree(), args.depth)
        tot = _totals(infos)
        from .models import format_bytes

        text += (f"\n{tot['tensors']} tensors, {tot['params']:,} parameters, "
                 f"{format_bytes(tot['bytes'])}")
    else:
        text = _shown(shown, NAME_LIMIT).table(args.max_rows)
    if args.filter is not None:
        text += f"\n(selected by --filter {args.filter!r} from {len(cat)} tensors)"
    if cat.skipped:
        text += (f"\n{len(cat.skipped)} non-tensor entries left out: "
                 + ", ".join(f"{display(k, limit=NAME_LIMIT)} ({display(v, exact=False)})"
                             for k, v in list(cat.skipped.items())[:5])
                 + (", ..." if len(cat.skipped) > 5 else ""))
    _print(text)
    return 0


# --------------------------------------------------------------------------
# render
# --------------------------------------------------------------------------

def plan(infos, other_ranks: str = "flatten") -> list[tuple]:
    """``(info, layout or None, note)`` per tensor (see :func:`dlviz_gpu.checkpoints.catalog.plan`)."""
    from .checkpoints.catalog import plan as rule

    return rule(infos, other_ranks)


def _check_output(args) -> Path:
    out = Path(args.output)
    if args.png:
        if out.suffix.lower() in (".html", ".png"):
            raise UsageError(f"-o: with --png, expected a folder for the PNG files; got "
                             f"{args.output!r}")
        if out.exists() and not out.is_dir():
            raise UsageError(f"-o: {args.output!r} exists and is not a folder")
    elif out.suffix.lower() != ".html":
        raise UsageError(f"-o: expected a file name ending in .html (or a folder with --png); "
                         f"got {args.output!r}")
    return out


def _cmd_render(args) -> int:
    t0 = time.perf_counter()
    out = _check_output(args)
    cat = _open(args.paths)
    infos, _ = _select(cat, args.filter)
    todo = plan(infos, args.other_ranks)
    drawable = [p for p in todo if p[1] is not None]
    if args.max_tensors is not None and len(drawable) > args.max_tensors:
        cut = {p[0].name for p in drawable[args.max_tensors:]}
        todo = [(i, None, f"beyond --max-tensors {args.max_tensors}") if i.name in cut
                else (i, lay, note) for i, lay, note in todo]
        drawable = drawable[:args.max_tensors]
    if not drawable:
        refused = [i for i, _, _ in todo if i.problem]
        if refused and len(refused) == len(todo):
            # what reading it says: the file, the tensor and why (an expanded view)
            from .models import CheckpointError

            first = refused[0]
            more = f" ({len(refused) - 1} more refused)" if len(refused) > 1 else ""
            raise CheckpointError(first.source,
                                  f"tensor {first.name!r} is refused: {first.problem}{more}")
        reasons = "; ".join(f"{i.name}: {note}" for i, _, note in todo[:5])
        raise NothingToShow(f"none of the {len(todo)} selected tensors can be drawn ({reasons})")
    from .app.report import HtmlReport, PngReport

    writer = PngReport if args.png else HtmlReport
    report = writer(out, cat, infos, todo, args)
    try:
        drawn, failed = report.write()
    except OSError as err:  # permissions, a full disk, a file where a folder should be
        raise NothingToShow(f"cannot write {out}: {err.strerror or err}") from err
    if not args.quiet:
        what = f"{out}{os.sep}" if args.png else str(out)
        size = sum(f.stat().st_size for f in out.iterdir()) if args.png else out.stat().st_size
        msg = (f"wrote {what}: {drawn} tensors drawn, {len(todo) - drawn} listed only, "
               f"{size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f} s")
        if failed:
            msg += f"; {len(failed)} could not be drawn: " + "; ".join(failed[:3])
        print(display(msg, exact=False), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------
# serve and demo
# --------------------------------------------------------------------------

def _desktop() -> bool:
    """Whether a browser window can open here (a desktop session, not a bare terminal)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _check_server_args(args) -> None:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected 0..65535 (0 picks a free port); got {args.port}")
    if args.address not in ("127.0.0.1", "localhost", "::1") and not args.allow_websocket_origin:
        raise UsageError(f"--address {args.address!r} exposes the dashboard beyond this "
                         f"machine; add --allow-websocket-origin HOST:PORT for each address "
                         f"browsers will use")


def _run_server(board, args, t0: float) -> int:
    """Serve ``board`` until Ctrl-C (or the server stops)."""
    try:
        url = board.serve(port=args.port, address=args.address,
                          allow_websocket_origin=args.allow_websocket_origin)
    except RuntimeError as err:
        hint = f" (is port {args.port} in use? --port 0 picks a free one)" if args.port else ""
        raise NothingToShow(f"{err}{hint}") from err
    try:
        board.warm()  # compile and read what the first page needs before announcing it
        print(f"dlviz: the dashboard of {display(board.title, exact=False)} is at {url} (ready in "
              f"{time.perf_counter() - t0:.1f} s; Ctrl-C stops it)", flush=True)
        if not args.no_browser and _desktop():
            import webbrowser

            webbrowser.open(url)
        while url.thread.is_alive():
            url.thread.join(0.5)
    except KeyboardInterrupt:
        print("dlviz: stopped", file=sys.stderr)
    finally:
        url.stop()
    return 0


def _cmd_serve(args) -> int:
    t0 = time.perf_counter()
    _check_server_args(args)
    from .app.dashboard import Dashboard
    runs = [_is_run(p) for p in args.paths]
    if any(runs):
        if not all(runs):
            bad = [p for p, r in zip(args.paths, runs) if not r]
            raise UsageError(f"PATH: expected only runs (dv.watch stores) or only checkpoints; "
                             f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a run")
        return _serve_runs(args, t0)

    cat = _open(args.paths)
    title = ", ".join(os.path.basename(os.path.normpath(p)) for p in args.paths)
    try:
        board = Dashboard(cat, title=title)
    except ValueError as err:  # nothing drawable
        raise NothingToShow(str(err)) from err
    return _run_server(board, args, t0)


def _is_run(path: str) -> bool:
    """A run of dv.watch: a directory holding run.sqlite, or a .sqlite / .db file."""
    from .watch.store import run_file

    p = run_file(path)
    return p.is_file() and (os.path.isdir(path) or os.path.splitext(path)[1].lower()
                            in (".sqlite", ".db"))


def _serve_runs(args, t0: float) -> int:
    from .app.runs import RunBoard
    from .watch.store import RunFileError

    try:
        board = RunBoard(args.paths)
    except RunFileError as err:  # damaged, foreign or newer run files: one line, exit 1
        raise NothingToShow(str(err)) from err
    return _run_server(board, args, t0)


def _cmd_demo(args) -> int:
    t0 = time.perf_counter()
    _check_server_args(args)
    from .app.demo import Trainer, build_model

    model = build_model(seed=args.seed)
    tmp = None
    watch = None
    if args.prepare:
        import tempfile

        tmp = tempfile.mkdtemp(prefix="dlviz-demo-prepare-")
        watch = dict(store=os.path.join(tmp, "run"), **DEMO_WATCH)
    elif not args.no_watch:
        store = args.store or os.path.join("runs", time.strftime("demo-%Y%m%d-%H%M%S"))
        watch = dict(store=store, **DEMO_WATCH)
    try:
        trainer = Trainer(model, steps=args.steps, seed=args.seed, watch=watch)
    except (ValueError, RuntimeError) as err:     # the store cannot be written, or is in use
        raise UsageError(f"--store: {err}") from err
    try:
        return _demo(args, t0, model, trainer)
    finally:
        trainer.close()
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


#: How ``dlviz demo`` records its training (see :func:`dlviz_gpu.watch`).
DEMO_WATCH = dict(every=2, bins=64, snapshot_every=20, dead_after=20)


def _demo(args, t0, model, trainer) -> int:
    from .app.dashboard import Dashboard
    from .app.demo import demo_input

    shape, dtype = demo_input(model)
    board = Dashboard(model, input_shape=shape, input_dtype=dtype, trainer=trainer,
                      title=f"dlviz demo: {type(model).__name__}, training on synthetic data")
    if args.prepare:
        trainer.run_steps(2)        # the watch's kernels, and a run for the training views
        trainer.watch.flush()
        board.warm()
        print(f"dlviz: kernels compiled and cached in {time.perf_counter() - t0:.1f} s",
              flush=True)
        return 0
    if trainer.watch is not None:
        print(f"dlviz: recording the training to {trainer.watch.path.parent} (open it again "
              f"with: dlviz serve {trainer.watch.path.parent})", flush=True)
    trainer.start()
    return _run_server(board, args, t0)


if __name__ == "__main__":  # python -m dlviz_gpu.cli
    sys.exit(main())
