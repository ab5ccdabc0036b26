"""A long fuzz campaign: hostile checkpoint files through inspect, open, read and draw.

    python scripts/fuzz.py --cases 50000 --seed 7            # about 50,000 cases
    python scripts/fuzz.py --cases 2000 --only bytes,structured --workers 2
    python scripts/fuzz.py --cases 20000 --no-big --keep /tmp/fuzz-corpus

The corpus is the CI one (``tests/fuzz/corpus.py``: every named case, the
JSON-parity and shard-path cases, npy/npz/torch hostile files) with the
mutation and hypothesis generators scaled so the total is about ``--cases``,
plus the long-run-only cases (a 500,000-tensor header).  Each case runs in a
worker process with a CPU-time limit and a memory budget (the file's size +
100 MiB); safetensors cases are compared with the ``safetensors`` package.
Prints a table (area, cases tried, accepted, failures, known divergences,
worst CPU time and memory growth) and the failures; exits 1 if any.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz import corpus, harness  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10_000,
                   help="about how many cases in all (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="the corpus seed (default 0)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (default: 2, or 1 on one core)")
    p.add_argument("--only", help="comma-separated generator names: " + ", ".join(
        g.name for g in corpus.GENERATORS))
    p.add_argument("--no-big", action="store_true", help="leave out the long-run-only cases")
    p.add_argument("--cpu-limit", type=float, default=harness.CPU_LIMIT,
                   help=f"CPU seconds per case (default {harness.CPU_LIMIT:g})")
    p.add_argument("--hang", type=float, default=harness.HANG_S,
                   help=f"wall seconds before a silent worker is killed (default "
                        f"{harness.HANG_S:g})")
    p.add_argument("--keep", metavar="DIR", help="write the corpus to DIR and keep it")
    p.add_argument("--show", type=int, default=30, help="failures to list (default 30)")
    args = p.parse_args(argv)
    if args.cases < 1:
        p.error(f"--cases: expected at least 1; got {args.cases}")
    only = set(args.only.split(",")) if args.only else None
    if only is not None:
        unknown = only - {g.name for g in corpus.GENERATORS}
        if unknown:
            p.error(f"--only: unknown generator(s) {', '.join(sorted(unknown))}")

    chosen = [g for g in corpus.GENERATORS if only is None or g.name in only]
    fixed = 0 if only is not None and not any(not g.ci for g in chosen) else sum(
        1 for g in chosen if not g.ci) * 30          # the fixed lists, roughly
    scalable = sum(g.ci for g in chosen)
    scale = max(args.cases - fixed, 1) / scalable if scalable else 1.0

    root = args.keep or tempfile.mkdtemp(prefix="dlviz-fuzz-")
    os.makedirs(root, exist_ok=True)
    t0 = time.perf_counter()
    cases = corpus.build(root, seed=args.seed, scale=scale, long=not args.no_big, only=only)
    print(f"{len(cases)} cases written to {root} in {time.perf_counter() - t0:.1f} s "
          f"(seed {args.seed}); running on {args.workers} worker(s)", flush=True)
    t0 = time.perf_counter()
    step = max(1, len(cases) // 20)

    def progress(done, total):
        if done % step == 0 or done == total:
            print(f"  {done}/{total} ({time.perf_counter() - t0:.0f} s)", flush=True)

    results = harness.run(cases, workers=args.workers, cpu_limit=args.cpu_limit,
                          hang_s=args.hang, progress=progress)
    print(f"ran {len(results)} cases in {time.perf_counter() - t0:.1f} s\n")
    print(harness.table(results))
    bad = [r for r in results if r.failure is not None]
    if bad:
        print("\n" + harness.failures(results, args.show))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
