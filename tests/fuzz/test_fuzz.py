"""The fuzz corpus in CI: every case clean, within its limits, and like the reference.

About 3,000 cases (every named case of the issue, the serde_json parity
cases, shard-path cases, npy/npz/torch hostile files, and mutations of real
headers and hypothesis-drawn headers, each checked against the
``safetensors`` package).  Deterministic: the same seed every run.
``python scripts/fuzz.py --cases N --seed S`` runs a longer campaign.
"""

from __future__ import annotations

import os

import pytest

from . import corpus, harness
from .harness import Case, judge
from .reference import KNOWN_DIVERGENCES

pytestmark = pytest.mark.fuzz

SEED = 20261204


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-corpus")
    cases = corpus.build(root, seed=SEED)
    return harness.run(cases, workers=min(2, os.cpu_count() or 1))


@pytest.mark.timeout(900)
def test_every_case_is_clean(results):
    print("\n" + harness.table(results))
    assert len(results) >= 2500
    bad = [r for r in results if r.failure is not None]
    assert not bad, harness.failures(results) + "\n" + harness.table(results)


def test_the_corpus_covers_each_area(results):
    by_area = {}
    for r in results:
        by_area.setdefault(r.case.area, []).append(r)
    for area in ("safetensors: named cases", "safetensors: JSON parity",
                 "index: shard paths", "safetensors: byte mutations of real headers",
                 "safetensors: structured mutations of real headers",
                 "safetensors: hypothesis headers", "safetensors: number range",
                 "safetensors: not regular files", "npy: hostile files",
                 "npz: hostile files"):
        assert area in by_area, area
    # mutations that only ever make refused files would test one branch
    for area in ("safetensors: byte mutations of real headers",
                 "safetensors: structured mutations of real headers",
                 "safetensors: hypothesis headers", "safetensors: number range"):
        outcomes = {r.outcome for r in by_area[area]}
        assert {"accepted", "refused"} <= outcomes, (area, outcomes)
    # every differential case really was compared with the reference
    compared = [r for r in results if r.case.reference]
    assert len(compared) >= 2000
    assert all("reference" in r.answer for r in compared)


def test_divergences_from_the_reference_are_only_the_known_ones(results):
    kinds = {r.divergence for r in results if r.divergence is not None}
    assert kinds <= set(KNOWN_DIVERGENCES)
    # and the repeated-name refusals are really there (the corpus writes them)
    assert "repeated-tensor-name" in kinds


# --------------------------------------------------------------------------
# The harness notices what it must notice
# --------------------------------------------------------------------------

def _honest(folder) -> str:
    return corpus.write_st(folder / "ok.safetensors", {"a": corpus.entry()}, corpus.D4)


@pytest.mark.timeout(600)
def test_harness_reports_hangs_memory_cpu_and_crashes(tmp_path):
    ok = _honest(tmp_path)
    cases = [
        Case("t", "hang", ok, debug={"sleep": 30}),
        Case("t", "after the hang", ok, "accept", reference=True),
        Case("t", "memory", ok, budget=20 * harness.MIB, debug={"alloc": 200 * harness.MIB}),
        Case("t", "after the memory", ok, "accept"),
        Case("t", "cpu", ok, debug={"spin": 0.6}),
        Case("t", "crash", ok, debug={"exit": 3}),
        Case("t", "after the crash", ok, "accept"),
        Case("t", "wrong expectation", ok, "refuse"),
    ]
    res = harness.run(cases, cpu_limit=0.5, hang_s=3)
    got = {r.case.label: r for r in res}
    assert got["hang"].outcome == "hang" and "no answer within 3 s" in got["hang"].failure
    assert got["memory"].outcome == "memory" and "over its 20 MiB budget" in \
        got["memory"].failure
    assert "of CPU (limit 0.5 s)" in got["cpu"].failure
    assert got["crash"].outcome == "crash" and "exit status 3" in got["crash"].failure
    for label in ("after the hang", "after the memory", "after the crash"):
        assert got[label].failure is None and got[label].outcome == "accepted", got[label]
    assert "expected refused; accepted" in got["wrong expectation"].failure


def _answer(rc=1, stderr=None, stdout="", outcome="refused", message=None, path="/f/x"):
    message = f"{path}: bad" if message is None else message
    return {"inspect": {"rc": rc, "stdout": stdout,
                        "stderr": f"dlviz: error: {message}\n" if stderr is None else stderr,
                        "traceback": None},
            "api": {"outcome": outcome, "message": message}, "cpu": 0.01, "wall": 0.01,
            "peak": 0}


@pytest.mark.parametrize("answer, failure", [
    (_answer(), None),
    (_answer(message="/f/x: two\nlines"), "not one line"),
    (_answer(message="elsewhere: bad"), "does not start with the file"),
    (_answer(stderr="Traceback (most recent call last):\n  ...\nValueError: x\n"),
     "not one 'dlviz: error:' line"),
    (_answer(rc=0, stderr=""), "dlviz inspect exit 0 but the API: refused"),
    (_answer(rc=2), "exit status 2"),
    (_answer(stdout="partial table"), "refused but wrote to stdout"),
    (dict(_answer(), api={"outcome": "error", "traceback": "Traceback...\nKeyError: 'x'\n"}),
     "the API raised: KeyError: 'x'"),
    (dict(_answer(), peak=300 * harness.MIB), "resident set grew by 300 MiB"),
    (dict(_answer(), reference={"mismatch": "tensor 'a': different bytes",
                                "divergence": None}), "differs from the safetensors package"),
])
def test_judge(answer, failure):
    r = judge(Case("t", "t", "/f/x", budget=100 * harness.MIB), answer)
    if failure is None:
        assert r.failure is None and r.outcome == "refused"
    else:
        assert r.failure is not None and failure in r.failure
