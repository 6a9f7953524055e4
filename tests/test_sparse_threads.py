"""matting.sparse_threads: products and set-up steps on several threads give the serial results, to the bit."""
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings, strategies as st

from matting import solvers, sparse_threads
from matting.bench.classical import strokes_from_trimap
from matting.synthetic import make_composite


@pytest.fixture
def small_blocks(monkeypatch):
    """Split even small matrices, so the tests exercise the threaded paths."""
    monkeypatch.setattr(sparse_threads, "MIN_ROWS_PER_THREAD", 1)


def _random_csr(rows, columns, density, seed, dtype=np.float64):
    return scipy.sparse.random(rows, columns, density=density, format="csr", random_state=seed, dtype=dtype)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 300), inner=st.integers(1, 200), columns=st.integers(1, 200),
       density=st.floats(0.0, 0.2), threads=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_split_product_and_matvec_equal_the_serial_ones(rows, inner, columns, density, threads, seed):
    original = sparse_threads.MIN_ROWS_PER_THREAD
    sparse_threads.MIN_ROWS_PER_THREAD = 1
    try:
        A, B = _random_csr(rows, inner, density, seed), _random_csr(inner, columns, density, seed + 1)
        serial, split = (A @ B).tocsr(), sparse_threads.product(A, B, threads)
        assert split.shape == serial.shape
        for name in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(split, name), getattr(serial, name))
        x = np.random.default_rng(seed).standard_normal(inner)
        for vector in (x, x.astype(np.float32)):
            np.testing.assert_array_equal(sparse_threads.split(A, threads) @ vector, A @ vector)
    finally:
        sparse_threads.MIN_ROWS_PER_THREAD = original


def test_row_blocks_are_views_covering_every_row(small_blocks):
    A = _random_csr(1000, 50, 0.05, 0)
    blocks = sparse_threads.row_blocks(A, 3)
    assert len(blocks) == 3 and sum(b.shape[0] for b in blocks) == A.shape[0]
    assert all(np.shares_memory(b.data, A.data) for b in blocks if b.nnz)
    assert abs(blocks[0].nnz - A.nnz / 3) < 0.1 * A.nnz  # about equal entries per block
    np.testing.assert_array_equal(sparse_threads.stack_rows(blocks, 50).toarray(), A.toarray())


def test_side_by_side_keeps_the_order_of_results():
    assert sparse_threads.side_by_side(2, lambda: 1, lambda: 2, lambda: 3) == [1, 2, 3]
    assert sparse_threads.side_by_side(1, lambda: "a", lambda: "b") == ["a", "b"]
    with pytest.raises(ZeroDivisionError):
        sparse_threads.side_by_side(2, lambda: 1, lambda: 1 / 0)


def test_multigrid_set_up_and_solve_are_the_same_on_one_and_two_threads(small_blocks, monkeypatch):
    composite = make_composite(90, 110, edge=4.0, hole_fraction=0.3, seed=5)
    trimap = strokes_from_trimap(composite.trimap(band=4), fraction=0.10) / 255.0
    image = composite.image.astype(np.float64)
    system = solvers.closed_form_system(image, trimap)
    r = np.random.default_rng(0).standard_normal(system.A.shape[0])
    results = {}
    for threads in (1, 2):
        monkeypatch.setattr("matting.threads.solver_threads", lambda: threads)
        M = solvers.multigrid_preconditioner(system.A, image, system.unknown, threads=threads)
        results[threads] = M(r), solvers.solve(system, M, rtol=1e-7)
    for one, two in zip(results[1], results[2]):
        np.testing.assert_array_equal(one, two)
