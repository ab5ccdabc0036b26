"""dv.histogram end to end against the float64 reference, and the Histogram object."""

import math

import numpy as np
import pytest

import dlviz_gpu as dv
from dlviz_gpu.backend import cuda_status
from dlviz_gpu.kernels.reference import histogram as ref_histogram

torch = pytest.importorskip("torch")


def _check(h, values, edges=None):
    edges = h.edges if edges is None else edges
    want, want_s = ref_histogram.histogram(values, edges)
    np.testing.assert_array_equal(h.counts, want)
    assert {s: getattr(h, s) for s in ref_histogram.SPECIALS} == want_s
    assert h.total == np.asarray(values).size


def test_default_range_is_symmetric_with_zero_an_edge(rng):
    a = (rng.standard_normal((64, 50)) * 0.02 + 0.003).astype(np.float32)
    a[0, 0] = 0.0
    h = dv.histogram(a, bins=100)
    m = float(np.abs(a).max())
    assert h.edges[0] == -m and h.edges[-1] == m and h.edges[50] == 0.0
    assert h.counts.shape == (100,) and h.counts.dtype == np.int64
    assert h.edges.shape == (101,) and h.edges.dtype == np.float64
    assert h.scale == "linear" and h.backend == "cpu" and h.dtypes == "float32"
    _check(h, a)
    assert h.counts.sum() == a.size   # range=None: nothing falls outside


def test_default_range_unsigned_constant_and_nonfinite():
    h = dv.histogram(np.array([2, 5, 9], np.uint8), bins=7)
    assert (h.edges[0], h.edges[-1]) == (2.0, 9.0)
    _check(h, [2, 5, 9])
    h = dv.histogram(np.full(4, 3.0), bins=2)
    assert (h.edges[0], h.edges[-1]) == (2.5, 3.5)
    h = dv.histogram(np.array([np.nan, np.inf, -np.inf, np.nan]), bins=4)
    assert (h.edges[0], h.edges[-1]) == (0.0, 1.0)
    assert (h.nan, h.posinf, h.neginf, h.counts.sum(), h.total) == (2, 1, 1, 0, 4)


def test_given_range_counts_outside_separately(rng):
    a = rng.standard_normal(10_000)
    a[:7] = [np.nan, np.inf, -np.inf, -1.0, 1.0, 0.25, -0.25]
    h = dv.histogram(a, bins=8, range=(-1, 1))
    np.testing.assert_array_equal(h.edges, np.linspace(-1, 1, 9))
    _check(h, a)
    fin = np.isfinite(a)
    assert h.underflow == (a[fin] < -1).sum() and h.overflow == (a[fin] > 1).sum()
    assert h.counts.sum() + h.underflow + h.overflow + h.nan + h.posinf + h.neginf == a.size


def test_explicit_edges_any_spacing(rng):
    a = rng.standard_normal(5000).astype(np.float32)
    edges = [-3.0, -1.0, -0.1, 0.0, 0.05, 2.0, 2.5]
    h = dv.histogram(a, bins=edges)
    np.testing.assert_array_equal(h.edges, edges)
    _check(h, a)
    h2 = dv.histogram(a, bins=np.array(edges))
    np.testing.assert_array_equal(h2.counts, h.counts)


def test_log_scale(rng):
    a = np.exp(rng.uniform(-8, 3, 20_000))
    a[:3] = [0.0, -1.0, np.nan]
    h = dv.histogram(a, bins=50, scale="log")
    pos = a[np.isfinite(a) & (a > 0)]
    assert h.edges[0] == pos.min() and h.edges[-1] == pos.max()
    np.testing.assert_allclose(np.diff(np.log(h.edges)), np.log(pos.max() / pos.min()) / 50)
    _check(h, a)
    assert h.underflow == 2 and h.nan == 1
    h = dv.histogram(a, bins=10, range=(1e-3, 1e2), scale="log")
    _check(h, a)
    np.testing.assert_allclose(h.centers, np.sqrt(h.edges[:-1] * h.edges[1:]))
    # nothing positive: a fallback range, every value still counted
    z = dv.histogram(np.array([0.0, -2.0]), bins=3, scale="log")
    assert z.underflow == 2 and z.total == 2


def test_symlog_scale(rng):
    a = np.concatenate([rng.standard_normal(5000) * 10, [0.0, 1e-7, -1e-7]]).astype(np.float32)
    h = dv.histogram(a, bins=64, scale="symlog")
    m = float(np.abs(a).max())
    assert h.linthresh == pytest.approx(1e-3 * m)
    assert h.edges[0] == -m and h.edges[-1] == m and h.edges[32] == 0.0
    _check(h, a)
    h2 = dv.histogram(a, bins=64, scale="symlog", linthresh=0.5)
    assert h2.linthresh == 0.5
    _check(h2, a)
    inner = (np.abs(h2.edges) <= 0.5)
    widths = np.diff(h2.edges[inner])
    np.testing.assert_allclose(widths, widths[0])    # linear inside [-c, c]


def test_many_tensors_one_call_stacked(rng):
    """A whole model's worth: mixed dtypes, devices of torch, names, an empty tensor."""
    model = {
        "w1": torch.randn(32, 16),
        "b1": torch.zeros(16),
        "w2": torch.randn(8, 32, dtype=torch.float64).T,
        "emb": torch.randn(10, 4).to(torch.bfloat16),
        "ln": torch.randn(4).to(torch.float16),
        "mask": torch.rand(3, 3) > 0.5,
        "conv": torch.randn(4, 3, 3, 3)[:, :, ::1, :],
        "steps": torch.arange(-5, 5, dtype=torch.int32),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(0.5),
    }
    h = dv.histogram(model, bins=20)
    assert h.stacked and len(h) == len(model) and h.names == tuple(model)
    assert h.counts.shape == (len(model), 20) and h.edges.shape == (21,)
    assert h.dtypes[3] == "bfloat16" and h.dtypes[5] == "bool"
    values = [t.float().numpy() if t.dtype in (torch.bfloat16, torch.float16) else
              t.numpy().astype(np.float64) for t in model.values()]
    lo = min(v.min() for v in values if v.size)
    hi = max(v.max() for v in values if v.size)
    m = max(-lo, hi)
    assert h.edges[0] == -m and h.edges[-1] == m       # one range for all: comparable rows
    for i, v in enumerate(values):
        want, want_s = ref_histogram.histogram(v, h.edges)
        np.testing.assert_array_equal(h.counts[i], want, err_msg=h.names[i])
        assert h.total[i] == v.size
    assert h.total[list(model).index("empty")] == 0
    # a generator (model.parameters()) and a list give the same rows
    h2 = dv.histogram(iter(list(model.values())), bins=20)
    np.testing.assert_array_equal(h2.counts, h.counts)
    assert h2.names is None
    one = h["emb"]
    assert not one.stacked and one.total == 40 and one.dtypes == "bfloat16"
    np.testing.assert_array_equal(one.counts, h.counts[3])
    np.testing.assert_array_equal(h[-1].counts, h.counts[-1])


def test_per_tensor_ranges(rng):
    a, b = rng.standard_normal(300), rng.standard_normal(200) * 10 + 100
    h = dv.histogram([a, b], bins=10, shared_range=False)
    assert h.edges.shape == (2, 11)
    assert h.edges[1, 0] == b.min() and h.edges[1, -1] == b.max()
    for i, v in enumerate((a, b)):
        want, _ = ref_histogram.histogram(v, h.edges[i])
        np.testing.assert_array_equal(h.counts[i], want)
    assert h.counts.sum(axis=1).tolist() == [300, 200]
    assert h.percentile(50).shape == (2,)
    assert "per-tensor edges" in repr(h)
    da = h.to_xarray()
    assert da.dims == ("tensor", "bin") and da["center"].shape == (2, 10)
    np.testing.assert_array_equal(h[1].edges, h.edges[1])


def test_strided_memmap_and_half_precision_inputs(rng, tmp_path):
    base = rng.standard_normal((40, 30)).astype(np.float32)
    mm = np.memmap(tmp_path / "w.bin", dtype=np.float32, mode="w+", shape=base.shape)
    mm[:] = base
    mm.flush()
    ro = np.memmap(tmp_path / "w.bin", dtype=np.float32, mode="r", shape=base.shape)
    for view in (ro, ro.T, ro[::-3, 1::2]):
        _check(dv.histogram(view, bins=16, range=(-2, 2)), np.asarray(view))
    t = torch.from_numpy(base)
    for dt in (torch.bfloat16, torch.float16):
        x = t.to(dt)[::2].T
        h = dv.histogram(x, bins=16, range=(-2, 2))
        _check(h, x.double().numpy())
        assert h.dtypes == str(dt).replace("torch.", "")


def test_public_name_survives_importing_the_module(tmp_path):
    import subprocess
    import sys

    code = ("import dlviz_gpu.histograms; import dlviz_gpu as dv; "
            "print(dv.histogram([1.0, 2.0, 3.0], bins=2).counts.tolist(), "
            "dv.Histogram.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[1, 2] Histogram"


def test_empty_tensor_and_python_numbers():
    h = dv.histogram(np.zeros((0, 4)), bins=4, range=(0, 1))
    assert h.total == 0 and h.counts.sum() == 0
    h = dv.histogram(np.zeros((0, 4)), bins=4)
    assert (h.edges[0], h.edges[-1]) == (0.0, 1.0)
    h = dv.histogram([1, 2, 3, 4], bins=3)
    assert h.counts.tolist() == [1, 1, 2] and not h.stacked
    assert dv.histogram(2.5, bins=1).counts.tolist() == [1]


def test_density_fraction_centers_widths(rng):
    a = rng.standard_normal(20_000)
    a[:10] = np.nan
    h = dv.histogram(a, bins=40, range=(-2, 2))
    d = h.density()
    assert (d * h.widths).sum() == pytest.approx(1.0)
    ref, _ = np.histogram(a[np.isfinite(a)], bins=h.edges, density=True)
    np.testing.assert_allclose(d, ref)
    f = h.fraction()
    assert f.sum() + (h.underflow + h.overflow + h.nan) / h.total == pytest.approx(1.0)
    np.testing.assert_allclose(h.centers, (h.edges[1:] + h.edges[:-1]) / 2)
    np.testing.assert_allclose(h.widths, 0.1)
    empty = dv.histogram(np.zeros((0,)), bins=3, range=(0, 1))
    assert empty.fraction().tolist() == [0.0, 0.0, 0.0] and np.isnan(empty.density()).all()


@pytest.mark.parametrize("scale", ["linear", "log", "symlog"])
def test_percentile_within_one_bin(rng, scale):
    a = np.exp(rng.standard_normal(50_000)) if scale == "log" else rng.standard_normal(50_000)
    h = dv.histogram(a, bins=200, scale=scale)
    q = [0, 1, 25, 50, 75, 99, 100]
    got = h.percentile(q)
    want = np.percentile(a, q)
    k = np.clip(np.searchsorted(h.edges, want, side="right") - 1, 0, 199)
    assert (np.abs(got - want) <= h.widths[k] * 1.0001).all(), (got, want)
    assert h.percentile(50) == pytest.approx(got[3])
    assert math.isnan(dv.histogram(np.zeros(0), bins=3, range=(0, 1)).percentile(50))
    with pytest.raises(ValueError, match=r"q: expected percentiles in \[0, 100\]; got 101"):
        h.percentile(101)


def test_merge_equals_whole(rng):
    a, b = rng.standard_normal(3000), rng.standard_normal(2000) * 3
    b[:5] = np.nan
    whole = dv.histogram(np.concatenate([a, b]), bins=30, range=(-4, 4))
    parts = dv.histogram(a, bins=30, range=(-4, 4)).merge(dv.histogram(b, bins=30, range=(-4, 4)))
    np.testing.assert_array_equal(parts.counts, whole.counts)
    assert (parts.underflow, parts.overflow, parts.nan, parts.total) == (
        whole.underflow, whole.overflow, whole.nan, whole.total)
    s1 = dv.histogram([a, b], bins=30, range=(-4, 4))
    s2 = s1.merge(s1)
    np.testing.assert_array_equal(s2.counts, 2 * s1.counts)
    np.testing.assert_array_equal(s2.nan, 2 * s1.nan)
    with pytest.raises(ValueError, match="other: expected the same edges"):
        whole.merge(dv.histogram(a, bins=30, range=(-4, 5)))
    with pytest.raises(ValueError, match=r"other: expected counts of shape \(30,\); got \(2, 30\)"):
        whole.merge(s1)
    with pytest.raises(TypeError, match="other: expected a Histogram; got ndarray"):
        whole.merge(whole.counts)


def test_to_xarray_and_repr(rng):
    xr = pytest.importorskip("xarray")
    a = rng.standard_normal(1000)
    h = dv.histogram(a, bins=10, range=(-1, 1))
    da = h.to_xarray()
    assert isinstance(da, xr.DataArray) and da.dims == ("bin",)
    np.testing.assert_allclose(da["bin"].values, h.centers)
    np.testing.assert_allclose(da["left"].values, h.edges[:-1])
    assert da.attrs["underflow"] == h.underflow and da.attrs["total"] == 1000
    hs = dv.histogram({"a": a, "b": a[:10]}, bins=10, range=(-1, 1))
    ds = hs.to_xarray()
    assert ds.dims == ("tensor", "bin") and list(ds["tensor"].values) == ["a", "b"]
    assert ds["overflow"].values.tolist() == hs.overflow.tolist()
    text = repr(hs)
    assert text.startswith("<Histogram 2 tensors x 10 bins, linear [-1, 1]")
    assert "total=1010" in text and "on cpu" in text


def test_histogram_constructor_validates():
    h = dv.Histogram([1, 2], [0.0, 1.0, 2.0], nan=3)
    assert h.total == 6 and h.bins == 2
    with pytest.raises(ValueError, match=r"edges: expected shape \(3,\) for counts of shape \(2,\)"):
        dv.Histogram([1, 2], [0.0, 1.0])
    with pytest.raises(ValueError, match="edges: expected finite, strictly increasing values"):
        dv.Histogram([1, 2], [0.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="counts: expected integers; got dtype float64"):
        dv.Histogram([1.5, 2], [0.0, 1.0, 2.0])
    with pytest.raises(TypeError, match="key: only a stacked"):
        h[0]


A = np.linspace(-1, 1, 50).astype(np.float32)


@pytest.mark.parametrize("kw,exc,match", [
    ({"bins": 0}, ValueError, "bins: expected a positive integer no larger than 16777216; got 0"),
    ({"bins": -3}, ValueError, "bins: expected a positive integer .*; got -3"),
    ({"bins": 2.5}, TypeError, "bins: expected a positive integer or an array of edges; got 2.5"),
    ({"bins": True}, TypeError, "bins: expected a positive integer or an array of edges; got True"),
    ({"bins": "auto"}, TypeError, "bins: expected a positive integer or an array of edges; got 'auto'"),
    ({"bins": [1.0]}, ValueError, r"bins: expected at least 2 edges in a 1-D array; got shape \(1,\)"),
    ({"bins": [[0, 1], [2, 3]]}, ValueError, r"bins: expected at least 2 edges in a 1-D array; got shape \(2, 2\)"),
    ({"bins": [0.0, 0.0, 1.0]}, ValueError, r"bins: expected strictly increasing edges; got \[0. 0. 1.\]"),
    ({"bins": [0.0, 2.0, 1.0]}, ValueError, "bins: expected strictly increasing edges"),
    ({"bins": [0.0, np.nan]}, ValueError, r"bins: expected finite edges; got \[ 0. nan\]"),
    ({"bins": [0.0, np.inf]}, ValueError, "bins: expected finite edges"),
    ({"bins": 2 ** 25}, ValueError, "bins: expected a positive integer no larger than 16777216; got 33554432"),
    ({"scale": "ln"}, ValueError, "scale: expected one of 'linear', 'log', 'symlog'; got 'ln'"),
    ({"scale": None}, ValueError, "scale: expected one of 'linear', 'log', 'symlog'; got None"),
    ({"range": (1, 0)}, ValueError, r"range: expected low < high; got \(1.0, 0.0\)"),
    ({"range": (0, np.inf)}, ValueError, r"range: expected finite bounds; got \(0.0, inf\)"),
    ({"range": 5}, TypeError, r"range: expected a \(low, high\) pair of numbers or None; got 5"),
    ({"range": (0, 1), "bins": [0, 1, 2]}, ValueError, r"range: expected None when bins is an array of edges .*; got \(0, 1\)"),
    ({"scale": "log", "range": (-1, 1)}, ValueError, r"range: scale='log' needs a positive range; got a lower bound of -1.0"),
    ({"scale": "log", "range": (0, 1)}, ValueError, "range: scale='log' needs a positive range; got a lower bound of 0.0"),
    ({"scale": "log", "bins": [0.0, 1.0]}, ValueError, "bins: scale='log' needs a positive range; got a lower edge of 0.0"),
    ({"linthresh": -1}, ValueError, "linthresh: expected a positive finite number; got -1"),
    ({"linthresh": "x"}, TypeError, "linthresh: expected a positive number; got 'x'"),
    ({"backend": "gpu"}, ValueError, "backend: expected one of 'auto', 'cpu', 'cuda'; got 'gpu'"),
    ({"shared_range": "yes"}, TypeError, "shared_range: expected True or False; got 'yes'"),
    ({"range": (0, 1e-321), "bins": 1000}, ValueError, r"range: \(0.0, 1e-321\) cannot be cut into 1000 strictly increasing"),
], ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(f"{k}={v[k]!r}" for k in v))
def test_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        dv.histogram(A, **kw)


@pytest.mark.parametrize("tensors,exc,match", [
    ([], ValueError, "tensors: expected at least one tensor; got an empty list"),
    ((), ValueError, "tensors: expected at least one tensor; got an empty tuple"),
    ({}, ValueError, "tensors: expected at least one tensor; got an empty mapping"),
    (iter([]), ValueError, "tensors: expected at least one tensor; got an empty iterable"),
    ("weights", TypeError, "tensors: expected a tensor, or a list, tuple, mapping or iterable of tensors; got builtins.str"),
    ([A, np.ones(3, complex)], TypeError, r"tensors\[1\]: expected a real numeric dtype"),
    ({"w": A, "z": np.ones(2, complex)}, TypeError, r"tensors\['z'\]: expected a real numeric dtype"),
    (np.ones(3, complex), TypeError, "tensor: expected a real numeric dtype"),
], ids=["list", "tuple", "dict", "iter", "str", "complex-item", "complex-named", "complex"])
def test_bad_tensors(tensors, exc, match):
    with pytest.raises(exc, match=match):
        dv.histogram(tensors)


@pytest.mark.skipif(cuda_status()[0], reason="a CUDA device (or the simulator) is usable here")
def test_explicit_cuda_without_a_gpu_says_why():
    with pytest.raises(RuntimeError, match="backend='cuda' was requested but CUDA cannot be used"):
        dv.histogram(A, backend="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_status()[0], reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")
def test_cuda_backend_matches_cpu(rng):
    a = rng.standard_normal((6, 7)).astype(np.float32)
    a[0, 0] = np.nan
    items = {"a": a, "b": torch.from_numpy(a).to(torch.bfloat16).T}
    hc = dv.histogram(items, bins=5, backend="cpu")
    hg = dv.histogram(items, bins=5, backend="cuda")
    assert hg.backend == "cuda"
    np.testing.assert_array_equal(hg.counts, hc.counts)
    np.testing.assert_array_equal(hg.edges, hc.edges)
    np.testing.assert_array_equal(hg.nan, hc.nan)
