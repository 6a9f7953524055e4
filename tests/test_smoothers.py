"""matting.smoothers.BlockGaussSeidel: Gauss–Seidel within two row blocks, block Jacobi across the cut."""
import numpy as np
import pytest
import scipy.sparse
from pyamg.relaxation.relaxation import gauss_seidel

from matting import smoothers, solvers
from matting.bench.classical import strokes_from_trimap
from matting.synthetic import make_composite


@pytest.fixture(scope="module")
def system():
    composite = make_composite(40, 50, edge=4.0, hole_fraction=0.3, seed=7)  # small: the checks are dense
    trimap = strokes_from_trimap(composite.trimap(band=4), fraction=0.10) / 255.0
    image = composite.image.astype(np.float64)
    return image, solvers.closed_form_system(image, trimap)


def _dense_block_gauss_seidel(A, bounds, r, x0):
    """The definition, densely: forward x = B⁻¹ r with B = the block-diagonal lower triangle; backward
    x ← x + Bᵀ⁻¹ (r − A x)."""
    B = np.zeros_like(A)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        B[start:stop, start:stop] = np.tril(A[start:stop, start:stop])
    forward = np.linalg.solve(B, r)
    backward = x0 + np.linalg.solve(B.T, r - A @ x0)
    return forward, backward


@pytest.mark.parametrize("blocks", [1, 2])
@pytest.mark.parametrize("threads", [1, 2])
def test_sweeps_match_their_definition(system, monkeypatch, blocks, threads):
    _, sys_ = system
    monkeypatch.setattr(smoothers, "MIN_ROWS_PER_BLOCK", 1 if blocks == 2 else 10**9)
    A = sys_.A
    smoother = smoothers.BlockGaussSeidel(A, np.float64, threads)
    assert smoother.bounds.size - 1 == blocks
    rng = np.random.default_rng(0)
    r, x0 = rng.standard_normal((2, A.shape[0]))
    dense = A.toarray()
    want_forward, want_backward = _dense_block_gauss_seidel(dense, smoother.bounds, r, x0)
    x, residual = smoother.forward_from_zero(r)
    np.testing.assert_allclose(x, want_forward, rtol=1e-9, atol=1e-9 * np.abs(want_forward).max())
    np.testing.assert_allclose(residual, r - dense @ x, atol=1e-9 * np.abs(r).max())
    got_backward = smoother.backward(x0.copy(), r)
    np.testing.assert_allclose(got_backward, want_backward, rtol=1e-9, atol=1e-9 * np.abs(want_backward).max())


def test_one_block_is_pyamgs_gauss_seidel(system, monkeypatch):
    _, sys_ = system
    monkeypatch.setattr(smoothers, "MIN_ROWS_PER_BLOCK", 10**9)
    A = scipy.sparse.csr_matrix(sys_.A)
    smoother = smoothers.BlockGaussSeidel(A, np.float64, 1)
    r = np.random.default_rng(1).standard_normal(A.shape[0])
    want = np.zeros_like(r)
    gauss_seidel(A, want, r, iterations=1, sweep="forward")
    np.testing.assert_allclose(smoother.forward_from_zero(r)[0], want, rtol=1e-12, atol=1e-12)
    x0 = want + 0.1 * r
    want = x0.copy()
    gauss_seidel(A, want, r, iterations=1, sweep="backward")
    np.testing.assert_allclose(smoother.backward(x0.copy(), r), want, rtol=1e-12, atol=1e-12)


def test_two_block_preconditioner_is_symmetric_and_thread_count_free(system, monkeypatch):
    """The V-cycle with the block smoother stays SPD (CG needs it) and gives the same result on 1 or 2
    threads; CG still needs only tens of iterations."""
    image, sys_ = system
    monkeypatch.setattr(smoothers, "MIN_ROWS_PER_BLOCK", 1)
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal((2, sys_.A.shape[0]))
    results = []
    for threads in (1, 2):
        M = solvers.multigrid_preconditioner(sys_.A, image, sys_.unknown, dtype=np.float64, threads=threads)
        assert abs(u @ M(v) - v @ M(u)) < 1e-9 * np.linalg.norm(u) * np.linalg.norm(M(v))
        assert u @ M(u) > 0
        results.append(M(v))
        count = solvers._IterationCounter()
        solvers.solve(sys_, M, rtol=1e-7, callback=count)
        assert count.n < 40
    np.testing.assert_array_equal(results[0], results[1])
