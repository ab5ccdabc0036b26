"""``python -m benchmarks raster [--quick] [--out DIR]``, ``python -m benchmarks views [--quick]
[--size N] [--points N] [--out DIR]``, ``python -m benchmarks checkpoint [--quick]
[--size-gib 4] [--shape 4096x11008] [--out DIR] [--keep FILE]``, ``python -m benchmarks demo
[--quick] [--out DIR]``, ``python -m benchmarks load [--quick] [--sessions N]
[--duration S] [--out DIR]`` and ``python -m benchmarks gpu --out DIR``.

The ``gpu`` path imports only numpy, numba(-cuda), torch and cupy: nothing of
Datashader, xarray, psutil or tqdm is imported here at module level.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks",
                                description="dlviz_gpu benchmarks (reports, never assertions)")
    sub = p.add_subparsers(dest="suite", required=True)

    r = sub.add_parser("raster", help="CPU matrix rasterisation vs bandwidth, Datashader, NumPy")
    r.add_argument("--quick", action="store_true",
                   help="fewer repeats (about a minute); same 16384 x 16384 matrix")
    r.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON (default: %(default)s)")
    r.add_argument("--size", type=int, default=None,
                   help="matrix side (default 16384; the table says when it differs)")
    r.add_argument("--repeats", type=int, default=None, help="timed repeats per row")

    for name, helptext in (("points", "10^8-point scatter vs Datashader Canvas.points and numpy.histogram2d"),
                           ("series", "M4 decimation of a long series vs the streaming bandwidth"),
                           ("hist", "exact histograms vs numpy.histogram and the streaming bandwidth")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--quick", action="store_true", help="fewer repeats (about a minute)")
        s.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON (default: %(default)s)")
        s.add_argument("--size", type=int, default=None,
                       help="number of points / samples / elements (the table says when it differs)")
        s.add_argument("--repeats", type=int, default=None, help="timed repeats per row")

    v = sub.add_parser("views", help="server-side zoom latency and bytes per update of "
                                     "dv.heatmap (16384^2) and dv.scatter (10^8 points)")
    v.add_argument("--quick", action="store_true", help="fewer repeats; same sizes")
    v.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON (default: %(default)s)")
    v.add_argument("--size", type=int, default=None,
                   help="matrix side (default 16384; the table says when it differs)")
    v.add_argument("--points", type=int, default=None,
                   help="scatter points (default 10^8; the table says when it differs)")
    v.add_argument("--repeats", type=int, default=None, help="range changes timed per row")
    v.add_argument("--no-scatter", action="store_true", help="heatmap rows only")

    c = sub.add_parser("checkpoint", help="open a >= 4 GiB bf16 safetensors file and draw its "
                                          "4096 x 11008 tensor: time to catalog, time to first "
                                          "picture, peak memory (fresh process, cold pages)")
    c.add_argument("--quick", action="store_true",
                   help="fewer repeats, no torch scenario; same file")
    c.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON (default: %(default)s)")
    c.add_argument("--size-gib", type=float, default=None,
                   help="smallest size of the synthetic file in GiB (default 4)")
    c.add_argument("--shape", default=None,
                   help="ROWSxCOLS of the drawn tensor, hidden x MLP width (default 4096x11008)")
    c.add_argument("--keep", default=None, metavar="FILE",
                   help="write the file here and keep it (reused when it is already this "
                        "benchmark's file); default: a temporary file, removed at the end")
    c.add_argument("--repeats", type=int, default=None, help="timed repeats of the warm rows")

    d = sub.add_parser("demo", help="seconds from 'dlviz demo' to its first page, with an "
                                    "empty and a prepared Numba cache (real command, fresh "
                                    "processes)")
    d.add_argument("--quick", action="store_true", help="the prepared cache only")
    d.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON (default: %(default)s)")

    m = sub.add_parser("models", help="decision surfaces vs sklearn's DecisionBoundaryDisplay "
                                      "(same classes, time per view), torch MLP zoom, tree "
                                      "and graph layout")
    m.add_argument("--quick", action="store_true", help="smaller grid (200^2), fewer repeats")
    m.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON (default: %(default)s)")
    m.add_argument("--repeats", type=int, default=None, help="timed repeats per row")
    m.add_argument("--grid", type=int, default=None,
                   help="cells per side of the comparison grid (default 400, 200 with --quick)")
    m.add_argument("--no-graph", action="store_true", help="skip the structure-graph rows")

    w = sub.add_parser("watch", help="dv.watch's cost to a training loop: a ~10M-parameter MLP, "
                                     "median step time with and without the watch (every 10 "
                                     "steps, every step with histograms), store bytes per step")
    w.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    w.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON (default: %(default)s)")
    w.add_argument("--batch", type=int, default=512, help="batch size (default: %(default)s)")

    ld = sub.add_parser("load", help="N headless Chromium sessions zooming a served 8192^2 "
                                     "checkpoint at once: wheel-to-picture, unanswered "
                                     "turns, isolation, first page, server memory")
    ld.add_argument("--quick", action="store_true", help="3 sessions, 20 s of zooming")
    ld.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON (default: %(default)s)")
    ld.add_argument("--sessions", type=int, default=None,
                    help="browser sessions at once (default 10, 3 with --quick)")
    ld.add_argument("--duration", type=float, default=None,
                    help="seconds each session zooms (default 60, 20 with --quick)")
    ld.add_argument("--size", type=int, default=None,
                    help="side of the zoomed float32 matrix (default 8192)")
    ld.add_argument("--after", type=float, default=None,
                    help="seconds the server's memory is followed after the pages close "
                         "(default 60)")
    ld.add_argument("--answer", type=float, default=None,
                    help="seconds within which a wheel turn's picture counts as an answer "
                         "(default 15)")
    ld.add_argument("--rest-wait", type=float, default=None,
                    help="seconds from the server's announcement to its memory at rest "
                         "(default 40: its warm-up session has ended)")

    g = sub.add_parser("gpu", help="the GPU check: compile, compare with the CPU, time vs torch")
    g.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON (default: %(default)s)")
    g.add_argument("--quick", action="store_true", help="fewer dtypes and repeats")
    g.add_argument("--sim-smoke", action="store_true",
                   help="tiny correctness run for NUMBA_ENABLE_CUDASIM=1 (no torch, no timing)")
    g.add_argument("--size", type=int, default=None,
                   help="side of the timed square float32 matrix (default 16384 = 1 GiB)")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.suite in ("raster", "points", "series", "hist"):
        import importlib

        suite = importlib.import_module(f".{args.suite}", __package__)
        suite.run(quick=args.quick, out_dir=args.out, size=args.size, repeats=args.repeats)
        return 0
    if args.suite == "views":
        from .views import run as run_views

        run_views(quick=args.quick, out_dir=args.out, size=args.size, repeats=args.repeats,
                  points=args.points, scatter=not args.no_scatter)
        return 0
    if args.suite == "checkpoint":
        from .checkpoint import parse_shape, run as run_checkpoint

        shape = None
        if args.shape is not None:
            try:
                shape = parse_shape(args.shape)
            except ValueError as exc:
                _parser().error(f"--{exc}")
        if args.size_gib is not None and not args.size_gib > 0:
            _parser().error(f"--size-gib: expected a positive number; got {args.size_gib}")
        return run_checkpoint(quick=args.quick, out_dir=args.out, size_gib=args.size_gib,
                              shape=shape, keep=args.keep, repeats=args.repeats)
    if args.suite == "models":
        from .models import run as run_models

        run_models(quick=args.quick, out_dir=args.out, repeats=args.repeats, grid=args.grid,
                   graph=not args.no_graph)
        return 0
    if args.suite == "demo":
        from .demo import run as run_demo

        return run_demo(out_dir=args.out, quick=args.quick)
    if args.suite == "watch":
        from .watch import run as run_watch

        return run_watch(out_dir=args.out, quick=args.quick, batch=args.batch)
    if args.suite == "load":
        from .load import run as run_load

        return run_load(out_dir=args.out, quick=args.quick, sessions=args.sessions,
                        duration_s=args.duration, side=args.size, after_s=args.after,
                        rest_wait_s=args.rest_wait, answer_s=args.answer)
    from .gpu import run as run_gpu

    return run_gpu(out_dir=args.out, quick=args.quick, sim_smoke=args.sim_smoke,
                   size=args.size)


if __name__ == "__main__":
    sys.exit(main())
