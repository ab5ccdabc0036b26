"""dv.project: randomized PCA against an exact SVD, in the input's own library."""

import numpy as np
import pytest

import dlviz_gpu as dv


def _data(rng, n=3000, d=40):
    # two strong directions, the rest small noise, and a large offset
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    latent = rng.standard_normal((n, d)) * np.r_[10.0, 5.0, 0.3 * np.ones(d - 2)]
    return (latent @ basis.T + 100.0).astype(np.float32)


def _exact(x, k=2):
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return xc @ vt[:k].T


def _assert_same_up_to_sign(got, want, tol=1e-3):
    got = np.asarray(got, np.float64)
    for j in range(want.shape[1]):
        corr = np.corrcoef(got[:, j], want[:, j])[0, 1]
        assert abs(abs(corr) - 1) < tol, (j, corr)
        np.testing.assert_allclose(np.abs(got[:, j]).std(), np.abs(want[:, j]).std(), rtol=1e-2)


def test_pca_matches_exact_svd(rng):
    x = _data(rng)
    p = dv.project(x)
    assert p.shape == (3000, 2) and p.dtype == np.float32
    _assert_same_up_to_sign(p, _exact(x))
    # centred: the projection of the mean is the origin
    np.testing.assert_allclose(np.asarray(p).mean(0), 0, atol=1e-2)


def test_deterministic_and_sign_fixed(rng):
    x = _data(rng)
    np.testing.assert_array_equal(dv.project(x, seed=3), dv.project(x, seed=3))
    np.testing.assert_allclose(dv.project(x, seed=1), dv.project(x, seed=2), rtol=1e-3, atol=1e-2)


def test_torch_bf16_stays_torch_and_is_read_in_chunks(rng, monkeypatch):
    torch = pytest.importorskip("torch")
    import dlviz_gpu.projection as mod

    monkeypatch.setattr(mod, "_CHUNK_BYTES", 40 * 4 * 100)  # 100-row chunks
    x = _data(rng)
    t = torch.from_numpy(x).to(torch.bfloat16)
    p = dv.project(t)
    assert isinstance(p, torch.Tensor) and p.dtype == torch.float32 and p.shape == (3000, 2)
    _assert_same_up_to_sign(p.numpy(), _exact(t.float().numpy()), tol=1e-2)


def test_memmap_input(tmp_path, rng):
    x = _data(rng, n=500, d=12)
    path = tmp_path / "emb.f32"
    x.tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=x.shape)
    _assert_same_up_to_sign(dv.project(mm), _exact(x))


def test_first_is_a_view(rng):
    x = _data(rng, n=10, d=5)
    p = dv.project(x, method="first")
    assert np.shares_memory(p, x) and p.shape == (10, 2)


@pytest.mark.parametrize("kw,exc,match", [
    ({"method": "tsne"}, ValueError, "method: expected one of 'pca', 'first'; got 'tsne'"),
    ({"n_components": 0}, ValueError, "n_components: expected a positive integer; got 0"),
    ({"n_components": 9}, ValueError, r"embeddings: expected at least n_components=9 columns; got shape \(10, 5\)"),
])
def test_bad_arguments(rng, kw, exc, match):
    with pytest.raises(exc, match=match):
        dv.project(_data(rng, n=10, d=5), **kw)


def test_bad_embeddings():
    with pytest.raises(ValueError, match=r"embeddings: expected a 2-D \(N, D\) array; got shape \(7,\)"):
        dv.project(np.ones(7))
    with pytest.raises(TypeError, match="embeddings: expected a real numeric dtype; got complex128"):
        dv.project(np.ones((4, 3), complex))
