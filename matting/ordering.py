"""Geometric nested-dissection ordering of the unknown pixels, for the direct factorisation.

The reduced systems of the window-based matting Laplacians (closed-form, learning-based, radius r)
couple two pixels only if they share a (2r+1)×(2r+1) window, i.e. if they are at most 2r apart along
each axis. So a strip of 2r pixel rows (or columns) cut across the unknown region disconnects what
lies on its two sides. Nested dissection uses this recursively: split the pixels along the longer
side of their bounding box at the median coordinate, order the two halves first (each dissected
the same way) and the separating strip last. Eliminating in that order creates fill only inside
each half and in the separators, whose sizes stay ~√(area) for a 2-D region — the classic O(n^1.5)
factor cost instead of minimum degree's worse behaviour on wide bands (measured: see
matting/solvers.py, ``direct_preconditioner``).

The pixels' positions are known, so no graph partitioner is needed: everything here is a handful
of NumPy sorts over the unknown pixels' coordinates.
"""
from __future__ import annotations

import numpy as np

LEAF = 64  # parts at most this large are left in raster order (their dense block is tiny)
BALANCE = 0.4  # each side of a cut keeps at least this fraction of the part's pixels


def _best_cut(y: np.ndarray, x: np.ndarray, reach: int, balance: float):
    """(coordinate array, cut) of the smallest separator strip [cut, cut + reach) over both axes.

    Candidate cuts leave at least ``balance`` of the pixels on each side; balance 0.5 is the median
    cut along the longer side. (None, None) when no strip leaves two non-empty sides.
    """
    best = None
    axes = (y, x) if balance < 0.5 else ((y,) if np.ptp(y) >= np.ptp(x) else (x,))
    for coord in axes:
        low = coord.min()
        counts = np.bincount(coord - low)
        if counts.size < reach + 2:
            continue
        before = np.concatenate([[0], np.cumsum(counts)])  # before[c] = pixels with coord − low < c
        cuts = np.arange(1, counts.size - reach)  # both sides keep at least one line
        sizes = before[cuts + reach] - before[cuts]
        left, right = before[cuts], coord.size - before[cuts + reach]
        if balance >= 0.5:
            pick = np.argmin(np.abs(left - right))
        else:
            ok = np.minimum(left, right) >= balance * coord.size
            if not ok.any():
                ok = np.minimum(left, right) == np.minimum(left, right).max()
            sizes = np.where(ok, sizes, np.iinfo(np.int64).max)
            pick = np.argmin(sizes)
        if best is None or sizes[pick] < best[0]:
            best = (sizes[pick], coord, int(cuts[pick] + low))
    return (None, None) if best is None else best[1:]


def nested_dissection(ys: np.ndarray, xs: np.ndarray, reach: int = 2, leaf: int = LEAF,
                      balance: float = BALANCE) -> np.ndarray:
    """Elimination order (a permutation of ``range(len(ys))``) for pixels at (ys, xs).

    ``reach`` is the largest coordinate distance along an axis at which two pixels are coupled
    (2·radius for the closed-form and learning-based Laplacians); each separator is ``reach``
    rows or columns wide. Parts of at most ``leaf`` pixels are kept in their given order.
    Returns ``order`` such that ``A[order][:, order]`` is the matrix to factorise.
    """
    ys = np.asarray(ys, np.int64)
    xs = np.asarray(xs, np.int64)
    if ys.shape != xs.shape or ys.ndim != 1:
        raise ValueError("ys and xs must be 1-D arrays of the same length")
    if reach < 1:
        raise ValueError(f"reach must be at least 1, not {reach}")
    out = np.empty(ys.size, np.int64)
    # Work list of (indices, first output slot); a part's separator goes at the end of its slots.
    stack = [(np.arange(ys.size), 0)]
    while stack:
        index, start = stack.pop()
        if index.size <= leaf:
            out[start:start + index.size] = index
            continue
        coord, cut = _best_cut(ys[index], xs[index], reach, balance)
        if coord is None:  # too thin to leave two non-empty sides; keep as is
            out[start:start + index.size] = index
            continue
        left = coord < cut
        right = coord >= cut + reach
        separator = ~(left | right)
        first, second, middle = index[left], index[right], index[separator]
        out[start + first.size + second.size:start + index.size] = middle
        stack.append((first, start))
        stack.append((second, start + first.size))
    return out


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
    coo = A.tocoo()
    if coo.nnz == 0:
        return 1
    dy = np.abs(ys[coo.row] - ys[coo.col]).max()
    dx = np.abs(xs[coo.row] - xs[coo.col]).max()
    return max(int(dy), int(dx), 1)


def unknown_order(A, unknown: np.ndarray, width: int) -> np.ndarray:
    """Nested-dissection order for the reduced system ``A`` over the unknown pixels (raster order)."""
    ys, xs = np.divmod(np.flatnonzero(unknown), width)
    return nested_dissection(ys, xs, coupling_reach(A, ys, xs))
