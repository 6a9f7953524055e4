"""matting.ordering: the nested-dissection order of unknown pixels used by the direct solver."""
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from matting import ordering, solvers
from matting.synthetic import make_composite


def _ring(h=90, w=110, width=7):
    """A trimap-like band: the outline of an ellipse, ``width`` pixels wide (flat mask, shape)."""
    y, x = np.mgrid[:h, :w]
    r = np.hypot((y - h / 2) / (h / 2 - 5), (x - w / 2) / (w / 2 - 5))
    return (np.abs(r - 0.8) * min(h, w) / 2 < width / 2).ravel(), (h, w)


def _chebyshev_gap(ys, xs, a, b):
    """Smallest max(|Δy|, |Δx|) between a pixel of a and one of b."""
    dy = np.abs(ys[a][:, None] - ys[b][None, :])
    dx = np.abs(xs[a][:, None] - xs[b][None, :])
    return np.maximum(dy, dx).min()


@pytest.mark.parametrize("mask", ["ring", "random", "line", "single", "empty", "two blobs"])
def test_order_is_a_permutation(mask):
    rng = np.random.default_rng(0)
    shapes = {
        "ring": _ring()[0].reshape(90, 110),
        "random": rng.random((60, 70)) < 0.3,
        "line": np.eye(1, 300, dtype=bool).repeat(3, axis=0) | np.ones((3, 300), bool),
        "single": np.eye(1, 5, 2, dtype=bool),
        "empty": np.zeros((4, 4), bool),
        "two blobs": np.pad(np.ones((20, 20), bool), ((0, 0), (0, 40))) | np.pad(np.ones((20, 20), bool), ((0, 0), (40, 0))),
    }
    unknown = shapes[mask]
    order = ordering.pixel_order(unknown.ravel(), unknown.shape[1], leaf=16)
    np.testing.assert_array_equal(np.sort(order), np.arange(int(unknown.sum())))


@pytest.mark.parametrize("reach", [1, 2, 4])
def test_separator_disconnects_the_two_sides(reach):
    unknown, (h, w) = _ring()
    ys, xs = np.divmod(np.flatnonzero(unknown), w)
    first, second, separator = ordering.bisect(ys, xs, reach)
    assert first.size and second.size
    assert first.size + second.size + separator.size == ys.size
    assert _chebyshev_gap(ys, xs, first, second) > reach  # no stencil of that reach couples them
    assert min(first.size, second.size) >= ordering.BALANCE * ys.size
    # Across a band the separator is a short strip, not a line through the whole bounding box.
    assert separator.size <= 2 * reach * 12


def test_free_split_between_uncoupled_pieces():
    # Two blobs 10 columns apart: the best strip is empty, nothing has to be ordered last.
    unknown = np.zeros((20, 50), bool)
    unknown[:, :20] = unknown[:, 30:] = True
    ys, xs = np.divmod(np.flatnonzero(unknown.ravel()), 50)
    first, second, separator = ordering.bisect(ys, xs, reach=2)
    assert separator.size == 0 and first.size == second.size == 400


def test_top_separator_is_ordered_last():
    unknown, (h, w) = _ring()
    ys, xs = np.divmod(np.flatnonzero(unknown), w)
    _, _, separator = ordering.bisect(ys, xs, 2)
    order = ordering.nested_dissection(ys, xs, 2)
    np.testing.assert_array_equal(np.sort(order[-separator.size:]), separator)


def test_reach_is_read_off_the_laplacian():
    from matting import _pymatting  # noqa: F401  (numba cache directory)
    from pymatting.laplacian.cf_laplacian import cf_laplacian

    scene = make_composite(40, 50, edge=3.0)
    trimap = scene.trimap(band=6) / 255.0
    for radius in (1, 2):
        L = cf_laplacian(scene.image.astype(np.float64), 1e-7, radius)
        system = solvers.reduced_system(L, trimap)
        ys, xs = np.divmod(np.flatnonzero(system.unknown), trimap.shape[1])
        assert ordering.coupling_reach(system.A, ys, xs) == 2 * radius


def test_less_fill_than_raster_order_and_same_solution():
    scene = make_composite(160, 200, edge=4.0, hole_fraction=0.4, strands=3)
    trimap = scene.trimap(band=10) / 255.0
    image = scene.image.astype(np.float64)
    system = solvers.closed_form_system(image, trimap)
    order = ordering.unknown_order(system.A, system.unknown, trimap.shape[1])
    A = scipy.sparse.csc_matrix(system.A)

    def fill(matrix):
        lu = scipy.sparse.linalg.splu(matrix, permc_spec="NATURAL", diag_pivot_thresh=0.0,
                                      options={"SymmetricMode": True})
        return lu.L.nnz + lu.U.nnz

    assert fill(A[order][:, order]) < 0.7 * fill(A)
    x = solvers.solve(system, solvers.direct_preconditioner(system.A, "double", order))
    np.testing.assert_allclose(system.A @ x, system.b, atol=1e-7 * np.abs(system.b).max() * 10)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        ordering.nested_dissection(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError):
        ordering.nested_dissection(np.zeros(3), np.zeros(3), reach=0)


def test_long_range_couplings_fall_back_to_minimum_degree():
    # A pixel coupled to one far away (a KNN-like link): no strip separates it, so no geometric order,
    # and the direct preconditioner (order=None: minimum degree) still inverts the matrix.
    unknown = np.ones(40 * 40, bool)
    n = unknown.size
    A = scipy.sparse.lil_matrix(scipy.sparse.identity(n) * 4.0)
    A[0, n - 1] = A[n - 1, 0] = -1.0
    assert ordering.unknown_order(A.tocsr(), unknown, 40) is None
    M = solvers.direct_preconditioner(A.tocsr(), "double", None)
    r = np.arange(n, dtype=np.float64)
    np.testing.assert_allclose(A.tocsr() @ M(r), r, atol=1e-9)
    assert ordering.bisect(np.zeros(0), np.zeros(0)) is None
