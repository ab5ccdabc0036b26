"""Run hostile files through what a user would run on them, with time and memory limits.

A :class:`Case` is a file on disk plus what is expected of it.  :func:`run`
sends cases to long-lived worker processes (:mod:`tests.fuzz.worker`, which
pays its imports and kernel compilation once) and judges each answer
(:func:`judge`): a case is *clean* when

* ``dlviz inspect PATH`` exits 0 with nothing on stderr, or exits 1 with
  exactly one line ``dlviz: error: PATH...: problem`` and nothing on stdout;
* ``models.open(PATH)`` either returns a catalog whose every tensor reads
  and draws, or raises :class:`~dlviz_gpu.models.CheckpointError` whose
  message is one line starting with a path inside the case's folder;
* both say the same (accepted by both or refused by both), and what the
  case expects (``expect``, ``match``);
* with ``reference`` set, the ``safetensors`` package reads the same file
  the same way (:mod:`tests.fuzz.reference`);
* the worker spent at most ``cpu_limit`` seconds of CPU on it (CPU time, so
  a busy machine does not make a case fail) and its resident set grew by at
  most the case's budget (the file's size + 100 MiB by default).

A worker that does not answer within ``hang_s`` seconds of wall time is
killed and the case reported as a hang; one that passes the memory budget
ends itself and the case is reported as a memory overrun; either way a
fresh worker takes the next case.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MIB = 2 ** 20
#: Resident-set growth allowed beyond the file's own size.
MEMORY_MARGIN = 100 * MIB
#: CPU seconds a case may take (inspect, open, read, draw together).
CPU_LIMIT = 2.0
#: Wall seconds after which a silent worker is killed: a hang guard only.
HANG_S = 20.0


@dataclass
class Case:
    """One hostile (or honest) file and what must come of it.

    Attributes
    ----------
    area : str
        The row of the report it counts in (``"safetensors: header
        mutations"``, ...).
    label : str
        What this case is, for failure reports.
    path : str
        The file (or index) handed to ``dlviz inspect`` and ``models.open``.
    expect : {"any", "accept", "refuse"}
        ``"any"``: either, as long as it is clean.
    match : str, optional
        A regular expression the refusal must contain (``re.search``).
    stage : {"open", "read"}
        Where a refusal comes: opening the file (``dlviz inspect`` exits 1),
        or reading a tensor it lists (``dlviz inspect`` lists it).
    reference : bool
        Check against the ``safetensors`` package (safetensors files only).
    budget : int, optional
        Resident-set growth allowed, bytes; default the file's size +
        :data:`MEMORY_MARGIN`.
    cpu_limit : float, optional
        CPU seconds allowed, instead of the run's limit (for big honest files).
    draw : int, optional
        Draw only the first ``draw`` drawable tensors (default: all).
    hang_s : float, optional
        Wall seconds before the worker is killed, instead of the run's.
    """

    area: str
    label: str
    path: str
    expect: str = "any"
    match: str | None = None
    stage: str = "open"
    reference: bool = False
    budget: int | None = None
    cpu_limit: float | None = None
    draw: int | None = None
    hang_s: float | None = None
    debug: dict | None = None        # tests of the harness itself: see worker.run_case

    def memory_budget(self) -> int:
        if self.budget is not None:
            return self.budget
        try:
            size = os.stat(self.path).st_size if os.path.isfile(self.path) else 0
        except OSError:
            size = 0
        return size + MEMORY_MARGIN


@dataclass
class Result:
    """How a case went: ``failure`` is ``None`` when it is clean."""

    case: Case
    outcome: str        # accepted, refused, refused-read, hang, memory, crash, error
    failure: str | None = None
    divergence: str | None = None    # a known, reported difference from the reference
    cpu: float = 0.0
    wall: float = 0.0
    peak: int = 0
    message: str = ""
    answer: dict = field(default_factory=dict, repr=False)


# --------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------

class Worker:
    """One worker process, restarted when it hangs or dies."""

    def __init__(self, scratch: str, ready_timeout: float = 900.0):
        self.scratch = scratch
        self.ready_timeout = ready_timeout
        self.proc = None
        self.restarts = -1
        self.warm_up_s = []

    def _start(self) -> None:
        os.makedirs(self.scratch, exist_ok=True)
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [
            env.get("PYTHONPATH")] if p])
        env.setdefault("PYTHONHASHSEED", "0")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker", self.scratch], cwd=str(ROOT),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
            start_new_session=True)
        self.answers = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.answers), daemon=True).start()
        self.restarts += 1
        msg = self._next(self.ready_timeout)
        if not isinstance(msg, dict) or not msg.get("ready"):
            tail = self._log_tail()
            self.stop()
            raise RuntimeError(f"the fuzz worker did not start: {msg!r}\n{tail}")
        self.warm_up_s.append(msg.get("warm_up_s"))

    @staticmethod
    def _read(proc, answers) -> None:
        from tests.fuzz.worker import PREFIX

        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            if line.startswith(PREFIX):
                answers.put(json.loads(line[len(PREFIX):]))
        answers.put(None)              # end of file: the worker is gone

    def _next(self, timeout: float):
        try:
            return self.answers.get(timeout=timeout)
        except queue.Empty:
            return "timeout"

    def _log_tail(self, n: int = 3000) -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            size = self.log.tell()
            self.log.seek(max(0, size - n))
            return self.log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def run(self, case: Case, hang_s: float) -> dict:
        """The worker's answer for ``case``, or ``{"hang"|"memory"|"died": ...}``."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        budget = case.memory_budget()
        line = json.dumps({"id": id(case), "path": case.path,
                           "folder": os.path.dirname(case.path), "reference": case.reference,
                           "budget": budget, "draw": case.draw,
                           "debug": case.debug}) + "\n"
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died()
        hang_s = hang_s if case.hang_s is None else case.hang_s
        deadline = time.monotonic() + hang_s
        while True:
            msg = self._next(max(0.0, deadline - time.monotonic()))
            if msg == "timeout":
                self.stop()
                return {"hang": hang_s}
            if msg is None:
                return self._died()
            if msg.get("id") == id(case):
                if "memory" in msg:
                    self._died()
                    return {"memory": msg["memory"], "budget": budget}
                return msg

    def _died(self) -> dict:
        rc = self.proc.wait() if self.proc is not None else None
        tail = self._log_tail()
        self.proc = None
        return {"died": rc, "log": tail}

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)   # the worker's own session
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            self.proc = None


# --------------------------------------------------------------------------
# Judging
# --------------------------------------------------------------------------

def _first_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def judge(case: Case, answer: dict, cpu_limit: float = CPU_LIMIT) -> Result:
    """A :class:`Result` from the worker's answer (see the module docstring)."""
    if "hang" in answer:
        return Result(case, "hang", f"no answer within {answer['hang']:g} s of wall time "
                                    f"(worker killed)", answer=answer)
    if "memory" in answer:
        return Result(case, "memory", f"resident set grew by {answer['memory'] / MIB:.0f} MiB, "
                                      f"over its {answer['budget'] / MIB:.0f} MiB budget "
                                      f"(worker ended)", peak=answer["memory"], answer=answer)
    if "died" in answer:
        return Result(case, "crash", f"worker died (exit status {answer['died']}): "
                                     f"{_first_line(answer.get('log', ''))}", answer=answer)
    folder = os.path.dirname(case.path)
    ins, api = answer["inspect"], answer["api"]
    res = Result(case, "error", cpu=answer["cpu"], wall=answer["wall"], peak=answer["peak"],
                 answer=answer)
    problems = []
    # dlviz inspect
    if ins["traceback"] is not None:
        problems.append(f"dlviz inspect raised: {_first_line(ins['traceback'])}")
    elif ins["rc"] == 0:
        if ins["stderr"]:
            problems.append(f"dlviz inspect exit 0 wrote to stderr: {ins['stderr'][:200]!r}")
    elif ins["rc"] == 1:
        err = ins["stderr"]
        if not (err.startswith("dlviz: error: ") and err.endswith("\n")
                and err.count("\n") == 1):
            problems.append(f"dlviz inspect's refusal is not one 'dlviz: error:' line: "
                            f"{err[:300]!r}")
        elif not err[len("dlviz: error: "):].startswith(folder):
            problems.append(f"dlviz inspect's refusal does not start with the file: "
                            f"{err[:300]!r}")
        if ins["stdout"]:
            problems.append(f"dlviz inspect refused but wrote to stdout: "
                            f"{ins['stdout'][:200]!r}")
    else:
        problems.append(f"dlviz inspect exit status {ins['rc']}: {ins['stderr'][:300]!r}")
    # the Python API
    if api["outcome"] == "error":
        problems.append(f"the API raised: {_first_line(api['traceback'])}")
    elif api["outcome"] in ("refused", "refused-read"):
        msg = api["message"]
        res.message = msg
        if "\n" in msg or "\r" in msg:
            problems.append(f"the refusal is not one line: {msg[:300]!r}")
        if not msg.startswith(folder):
            problems.append(f"the refusal does not start with the file: {msg[:300]!r}")
    if api["outcome"] != "error" and ins["rc"] in (0, 1):
        # a file refused when a tensor is read is listed by inspect (exit 0)
        if (ins["rc"] == 1) != (api["outcome"] == "refused"):
            problems.append(f"dlviz inspect exit {ins['rc']} but the API: {api['outcome']}")
        res.outcome = api["outcome"]
    # what the case expects
    if case.expect == "accept" and res.outcome.startswith("refused"):
        problems.append(f"expected to be accepted; refused: {res.message}")
    if case.expect == "refuse":
        want = "refused-read" if case.stage == "read" else "refused"
        if res.outcome in ("accepted", "refused", "refused-read") and res.outcome != want:
            problems.append(f"expected {want}; {res.outcome}")
    if case.match is not None and res.outcome.startswith("refused") \
            and not re.search(case.match, res.message):
        problems.append(f"refusal does not match {case.match!r}: {res.message}")
    # the reference
    ref = answer.get("reference")
    if ref is not None:
        if ref["mismatch"] is not None:
            problems.append(f"differs from the safetensors package: {ref['mismatch']}")
        res.divergence = ref["divergence"]
    # limits
    limit = cpu_limit if case.cpu_limit is None else case.cpu_limit
    if res.cpu > limit:
        problems.append(f"took {res.cpu:.2f} s of CPU (limit {limit:g} s)")
    budget = case.memory_budget()
    if res.peak > budget:
        problems.append(f"resident set grew by {res.peak / MIB:.0f} MiB (budget "
                        f"{budget / MIB:.0f} MiB)")
    res.failure = "; ".join(problems) or None
    return res


# --------------------------------------------------------------------------
# Running many
# --------------------------------------------------------------------------

def run(cases, workers: int = 1, cpu_limit: float = CPU_LIMIT, hang_s: float = HANG_S,
        scratch: str | None = None, progress=None) -> list[Result]:
    """Run ``cases`` on ``workers`` worker processes; one :class:`Result` per case, in order.

    ``progress(done, total)`` is called after each case, if given.
    """
    cases = list(cases)
    results: list[Result | None] = [None] * len(cases)
    todo = queue.Queue()
    for k in range(len(cases)):
        todo.put(k)
    own = scratch is None
    scratch = scratch or tempfile.mkdtemp(prefix="dlviz-fuzz-worker-")
    done = [0]
    lock = threading.Lock()
    errors = []

    def drive(n: int) -> None:
        worker = Worker(os.path.join(scratch, f"w{n}"))
        try:
            while True:
                try:
                    k = todo.get_nowait()
                except queue.Empty:
                    return
                results[k] = judge(cases[k], worker.run(cases[k], hang_s), cpu_limit)
                with lock:
                    done[0] += 1
                    if progress is not None:
                        progress(done[0], len(cases))
        except BaseException as e:      # noqa: BLE001 -- reported by the caller
            errors.append(e)
        finally:
            worker.stop()

    threads = [threading.Thread(target=drive, args=(n,), daemon=True)
               for n in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if own:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    if errors:
        raise errors[0]
    return results


def table(results) -> str:
    """Area, cases tried, accepted, failures, known divergences, the worst CPU time and memory."""
    rows = {}
    for r in results:
        row = rows.setdefault(r.case.area, [0, 0, 0, 0, 0.0, 0])
        row[0] += 1
        row[1] += r.outcome == "accepted"
        row[2] += r.failure is not None
        row[3] += r.divergence is not None
        row[4] = max(row[4], r.cpu)
        row[5] = max(row[5], r.peak)
    head = ("area", "cases", "accepted", "failures", "divergences", "max CPU s",
            "max RSS growth MiB")
    body = [(area, str(a), str(b), str(c), str(d), f"{e:.2f}", f"{f / MIB:.1f}")
            for area, (a, b, c, d, e, f) in rows.items()]
    tot = [sum(int(r[k]) for r in body) for k in (1, 2, 3, 4)]
    body.append(("total", *map(str, tot), f"{max((r.cpu for r in results), default=0):.2f}",
                 f"{max((r.peak for r in results), default=0) / MIB:.1f}"))
    w = [max(len(x[c]) for x in [head, *body]) for c in range(len(head))]
    lines = ["  ".join(x[c].ljust(w[c]) if c == 0 else x[c].rjust(w[c])
                       for c in range(len(head))) for x in [head, *body]]
    return "\n".join(lines)


def failures(results, limit: int = 20) -> str:
    """The failed cases, one paragraph each."""
    bad = [r for r in results if r.failure is not None]
    out = [f"{len(bad)} failed case(s):"]
    for r in bad[:limit]:
        out.append(f"- [{r.case.area}] {r.case.label} ({r.case.path}): {r.failure}")
    if len(bad) > limit:
        out.append(f"... and {len(bad) - limit} more")
    return "\n".join(out)
