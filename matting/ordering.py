"""Geometric nested-dissection ordering of the unknown pixels, for the direct factorisation.

The reduced systems of the window-based matting Laplacians (closed-form, learning-based, radius r)
couple two pixels only if they share a (2r+1)×(2r+1) window, i.e. if they are at most 2r apart along
each axis. So a strip of 2r pixel rows (or columns) cut across the unknown region disconnects what
lies on its two sides. Nested dissection uses this recursively: cut the pixels with the smallest
such strip (over both axes) that leaves at least BALANCE of them on each side, order the two sides
first (each dissected the same way) and the strip last. Eliminating in that order creates fill only
inside each side and in the separators; across a trimap's band a strip holds only 2r × the band's
width pixels, and an empty strip (a gap between pieces of the band) splits for free.

Measured with SuperLU (float32, diagonal pivots), against minimum degree on AᵀA + A: on the large
alphamatting bands the factor has about as many entries (GT04 trimap2: 55M vs 57M) but forms larger
dense blocks and factorises 1.3–2× faster; see matting/solvers.py, ``direct_preconditioner``.

The pixels' positions are known, so no graph partitioner is needed: the dissection is a few numba
loops over the unknown pixels' coordinates (0.1–0.2 s for 220k pixels).
"""
from __future__ import annotations

import numba
import numpy as np
import scipy.sparse

LEAF = 32  # parts at most this large stay in raster order (GT02/GT11/GT19 trimap1: 5–10 % faster than 64)
BALANCE = 0.4  # each side of a cut keeps at least this fraction of the part's pixels
MAX_REACH = 16  # widest separator strip (window radius 8); the methods' radius limit of 5 gives 10


@numba.njit(cache=True, nogil=True)
def _best_cut(work, lo, hi, ys, xs, reach, balance):
    """Axis (0: y, 1: x, −1: none) and cut of the smallest separator strip [cut, cut + reach).

    Over the pixels work[lo:hi]; candidate cuts leave at least ``balance`` of them on each side
    (if none does, the most balanced cuts); balance ≥ 0.5 means the most balanced cut along the
    longer side of the bounding box (plain median bisection).
    """
    n = hi - lo
    best_axis, best_cut, best_size = -1, 0, n + 1
    extent = np.zeros(2, np.int64)
    low = np.zeros(2, np.int64)
    for axis in range(2):
        coord = ys if axis == 0 else xs
        first, last = coord[work[lo]], coord[work[lo]]
        for k in range(lo, hi):
            first, last = min(first, coord[work[k]]), max(last, coord[work[k]])
        low[axis], extent[axis] = first, last - first + 1
    for axis in range(2):
        if balance >= 0.5 and extent[axis] < extent[1 - axis]:
            continue
        if balance >= 0.5 and axis == 1 and extent[0] == extent[1]:
            continue
        coord = ys if axis == 0 else xs
        span = extent[axis]
        if span < reach + 2:
            continue
        before = np.zeros(span + 1, np.int64)  # before[c]: pixels with coord − low < c
        for k in range(lo, hi):
            before[coord[work[k]] - low[axis] + 1] += 1
        for c in range(span):
            before[c + 1] += before[c]
        # Pass 1: how balanced the best cut can be; pass 2: the smallest strip among good enough cuts.
        most = 0
        for c in range(1, span - reach):
            most = max(most, min(before[c], n - before[c + reach]))
        need = min(balance * n, most)
        axis_size, axis_cut, axis_gap = n + 1, 0, n + 1
        for c in range(1, span - reach):
            left, right = before[c], n - before[c + reach]
            if min(left, right) < need:
                continue
            size, gap = before[c + reach] - before[c], abs(left - right)
            if balance >= 0.5:
                size = 0  # the most balanced cut only
            if size < axis_size or (size == axis_size and gap < axis_gap):
                axis_size, axis_cut, axis_gap = size, c, gap
        if axis_size < best_size:
            best_axis, best_cut, best_size = axis, axis_cut + low[axis], axis_size
    return best_axis, best_cut


@numba.njit(cache=True, nogil=True)
def _dissect(ys, xs, reach, leaf, balance):
    """Nested dissection by in-place stable three-way partitions of one index array.

    A part occupying work[lo:hi] is rearranged as [first side | second side | separator]: the
    separator is then already in its final place (after everything it separates) and both sides
    are dissected in place the same way. Stable partitions keep raster order inside the leaves.
    """
    n = ys.size
    work = np.arange(n)
    buffer = np.empty(n, np.int64)
    stack = np.empty((n + 2, 2), np.int64)  # disjoint non-empty parts: never more than n
    stack[0, 0], stack[0, 1] = 0, n
    top = 1
    while top > 0:
        top -= 1
        lo, hi = stack[top, 0], stack[top, 1]
        if hi - lo <= leaf:
            continue
        axis, cut = _best_cut(work, lo, hi, ys, xs, reach, balance)
        if axis < 0:
            continue
        coord = ys if axis == 0 else xs
        n_first = n_second = 0
        for k in range(lo, hi):
            c = coord[work[k]]
            if c < cut:
                n_first += 1
            elif c >= cut + reach:
                n_second += 1
        a, b, s = lo, lo + n_first, lo + n_first + n_second
        for k in range(lo, hi):
            i, c = work[k], coord[work[k]]
            if c < cut:
                buffer[a] = i
                a += 1
            elif c >= cut + reach:
                buffer[b] = i
                b += 1
            else:
                buffer[s] = i
                s += 1
        work[lo:hi] = buffer[lo:hi]
        stack[top, 0], stack[top, 1] = lo, lo + n_first
        stack[top + 1, 0], stack[top + 1, 1] = lo + n_first, lo + n_first + n_second
        top += 2
    return work


def nested_dissection(ys: np.ndarray, xs: np.ndarray, reach: int = 2, leaf: int = LEAF,
                      balance: float = BALANCE) -> np.ndarray:
    """Elimination order (a permutation of ``range(len(ys))``) for pixels at (ys, xs).

    ``reach`` is the largest coordinate distance along an axis at which two pixels are coupled
    (2·radius for the closed-form and learning-based Laplacians); each separator is ``reach``
    rows or columns wide, chosen as the smallest such strip over both axes that leaves at least
    ``balance`` of the part's pixels on each side (an empty strip splits a part into pieces that
    were never coupled, for free). Parts of at most ``leaf`` pixels are kept in their given order.
    Returns ``order`` such that ``A[order][:, order]`` is the matrix to factorise.
    """
    ys = np.ascontiguousarray(ys, np.int64)
    xs = np.ascontiguousarray(xs, np.int64)
    if ys.shape != xs.shape or ys.ndim != 1:
        raise ValueError("ys and xs must be 1-D arrays of the same length")
    if reach < 1:
        raise ValueError(f"reach must be at least 1, not {reach}")
    if ys.size == 0:
        return np.zeros(0, np.int64)
    return _dissect(ys, xs, int(reach), int(leaf), float(balance))


def bisect(ys: np.ndarray, xs: np.ndarray, reach: int = 2, balance: float = BALANCE):
    """The first level of :func:`nested_dissection`: index arrays (first side, second side, separator).

    Returns None when no strip leaves two non-empty sides (the part is then not dissected).
    """
    ys = np.ascontiguousarray(ys, np.int64)
    xs = np.ascontiguousarray(xs, np.int64)
    if ys.size == 0:
        return None
    axis, cut = _best_cut(np.arange(ys.size), 0, ys.size, ys, xs, int(reach), float(balance))
    if axis < 0:
        return None
    coord = ys if axis == 0 else xs
    first, second = coord < cut, coord >= cut + reach
    return np.flatnonzero(first), np.flatnonzero(second), np.flatnonzero(~(first | second))


def pixel_order(unknown: np.ndarray, width: int, reach: int = 2, leaf: int = LEAF,
                balance: float = BALANCE) -> np.ndarray:
    """Nested-dissection order of the unknown pixels (flat bool mask of an image ``width`` wide).

    Indices refer to the unknown pixels in raster order (the rows and columns of a reduced system).
    """
    ys, xs = np.divmod(np.flatnonzero(unknown), width)
    return nested_dissection(ys, xs, reach, leaf, balance)


def coupling_reach(A, ys: np.ndarray, xs: np.ndarray) -> int:
    """The largest |Δy| or |Δx| between two pixels that a nonzero of ``A`` couples (at least 1).

    Read off the matrix, so the separators are wide enough for any window radius (2r for the
    closed-form and learning-based Laplacians, r for random walk) without being told it.
    """
    A = scipy.sparse.csr_matrix(A)
    return max(int(_reach(A.indptr, A.indices, np.ascontiguousarray(ys, np.int64),
                          np.ascontiguousarray(xs, np.int64))), 1)


@numba.njit(cache=True, nogil=True)
def _reach(indptr, indices, ys, xs):
    reach = 0
    for row in range(indptr.size - 1):
        for k in range(indptr[row], indptr[row + 1]):
            col = indices[k]
            reach = max(reach, abs(ys[row] - ys[col]), abs(xs[row] - xs[col]))
    return reach


def unknown_order(A, unknown: np.ndarray, width: int):
    """Nested-dissection order for the reduced system ``A`` over the unknown pixels (raster order).

    None when ``A`` couples pixels more than MAX_REACH apart (not a window Laplacian: KNN-like
    long-range links), where strips cannot separate anything; minimum degree is used then.
    """
    ys, xs = np.divmod(np.flatnonzero(unknown), width)
    reach = coupling_reach(A, ys, xs)
    if reach > MAX_REACH:
        return None
    return nested_dissection(ys, xs, reach)


def permuted_rows(A, order: np.ndarray, dtype=np.float32):
    """``A[order][:, order]`` in CSR (rows ascending within each row), cast to ``dtype``, in one pass.

    Half the time of scipy's two fancy-indexing steps plus the cast, which on the direct solver's
    small bands is a few per cent of the whole run.
    """
    A = scipy.sparse.csr_matrix(A)
    order = np.ascontiguousarray(order, np.int64)
    indptr, indices, data = _permute_rows(A.indptr.astype(np.int64), A.indices, A.data, order,
                                          np.zeros(0, dtype))
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=A.shape)


@numba.njit(cache=True, nogil=True)
def _permute_rows(indptr, indices, data, order, like):
    n = order.size
    inverse = np.empty(n, np.int64)
    for new in range(n):
        inverse[order[new]] = new
    out_ptr = np.zeros(n + 1, np.int64)
    for new in range(n):
        out_ptr[new + 1] = out_ptr[new] + indptr[order[new] + 1] - indptr[order[new]]
    out_idx = np.empty(out_ptr[n], np.int32)
    out_val = np.empty(out_ptr[n], like.dtype)
    for new in range(n):
        old = order[new]
        start = out_ptr[new]
        count = 0
        for k in range(indptr[old], indptr[old + 1]):  # insertion sort by new column: rows are short
            column, value = inverse[indices[k]], data[k]
            m = start + count
            while m > start and out_idx[m - 1] > column:
                out_idx[m], out_val[m] = out_idx[m - 1], out_val[m - 1]
                m -= 1
            out_idx[m], out_val[m] = column, value
            count += 1
    return out_ptr, out_idx, out_val
