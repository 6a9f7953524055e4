"""Gauss–Seidel smoothing for the strokes multigrid (matting.solvers), in two row blocks that run side by side.

The V-cycle smooths with one forward sweep from zero and one backward sweep. Plain Gauss–Seidel is
sequential: each row reads the rows updated before it. Here the rows are cut into two contiguous
blocks (:data:`BLOCKS`, about equal entries each). Within a block the sweep is ordinary Gauss–Seidel;
across the cut it reads the other block's values from before the sweep (block Jacobi). That is
still a symmetric smoother: the backward sweep is the exact adjoint of the forward one, so the
V-cycle stays SPD as CG needs. The two blocks run on two threads (the kernels release the GIL),
and the result does not depend on how many threads ran them. It only departs from plain
Gauss–Seidel along the one cut.

Each sweep reads only what it needs. The forward sweep from zero reads only the strictly lower
triangle. The residual it leaves is −(U + C)x, where U is the strict upper triangle within the
blocks and C holds the entries across the cut. Split this way, a cycle reads the matrix twice
instead of two and a half times (two full sweeps and the upper triangle).

Measured on GT04's strokes (402k rows, 9.8M entries, float32), ms per sweep:

    ==========================  ==============  ========
    what                        pyamg (1 block)  2 blocks
    ==========================  ==============  ========
    forward from zero + residual     11.5          5.0–6.6 (8.6–11 on one thread)
    backward                          8.0          5.6     (10.5 on one thread)
    ==========================  ==============  ========

CG took as many iterations as with pyamg's sweeps on GT04, GT10 and GT26 (32, 21, 42).

With one block (small systems) the sweeps are pyamg's ``gauss_seidel`` up to the order of the
float32 sums within a row (``tests/test_smoothers.py``).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
from numba import njit

BLOCKS = 2
MIN_ROWS_PER_BLOCK = 20_000  # smaller systems are smoothed as one block


LOWER, UPPER, ACROSS = 0, 1, 2  # the parts of the off-diagonal entries (within a block: below, above the diagonal)


@njit(cache=True, nogil=True)
def _part_of(i, j, block):
    return ACROSS if block[j] != block[i] else (LOWER if j < i else UPPER)


@njit(cache=True, nogil=True)
def _part(indptr, indices, data, block, part):
    """CSR arrays (indptr, indices, data) of one part of the off-diagonal entries, rows in their column order."""
    n = indptr.size - 1
    out_indptr = np.zeros(n + 1, np.int64)
    for i in range(n):
        kept = 0
        for k in range(indptr[i], indptr[i + 1]):
            if indices[k] != i and _part_of(i, indices[k], block) == part:
                kept += 1
        out_indptr[i + 1] = out_indptr[i] + kept
    out_indices = np.empty(out_indptr[n], indices.dtype)
    out_data = np.empty(out_indptr[n], data.dtype)
    for i in range(n):
        kept = out_indptr[i]
        for k in range(indptr[i], indptr[i + 1]):
            if indices[k] != i and _part_of(i, indices[k], block) == part:
                out_indices[kept] = indices[k]
                out_data[kept] = data[k]
                kept += 1
    return out_indptr, out_indices, out_data


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _row_sum(indptr, indices, data, x, i, zero):
    """Σ data·x over row i, in four interleaved partial sums (a row's products do not wait for each
    other: one running sum made the sweep add-latency bound, 7.7 against 4.9 ms on GT04's lower half)."""
    k, stop = indptr[i], indptr[i + 1]
    t0 = t1 = t2 = t3 = zero
    while k + 4 <= stop:
        t0 += data[k] * x[np.uint32(indices[k])]  # unsigned: no negative-index wrap-around test
        t1 += data[k + 1] * x[np.uint32(indices[k + 1])]
        t2 += data[k + 2] * x[np.uint32(indices[k + 2])]
        t3 += data[k + 3] * x[np.uint32(indices[k + 3])]
        k += 4
    while k < stop:
        t0 += data[k] * x[np.uint32(indices[k])]
        k += 1
    return (t0 + t1) + (t2 + t3)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward(Lp, Li, Lx, diagonal, x, r, start, stop):
    """x = (D + L)⁻¹ r on rows [start, stop) (Gauss–Seidel from zero within the block)."""
    zero = diagonal[start] - diagonal[start]  # 0 in the arrays' type
    for i in range(start, stop):
        x[i] = (r[i] - _row_sum(Lp, Li, Lx, x, i, zero)) / diagonal[i]


@njit(cache=True, nogil=True, error_model="numpy")
def _backward(Lp, Li, Lx, Up, Ui, Ux, diagonal, x, rhs, start, stop):
    """One backward Gauss–Seidel sweep over rows [start, stop) of the block's own entries."""
    zero = diagonal[start] - diagonal[start]
    for i in range(stop - 1, start - 1, -1):
        x[i] = (rhs[i] - (_row_sum(Lp, Li, Lx, x, i, zero) + _row_sum(Up, Ui, Ux, x, i, zero))) / diagonal[i]


class BlockGaussSeidel:
    """Forward and backward sweeps for ``A`` (CSR, sorted rows, positive diagonal) in ``dtype``."""

    def __init__(self, A, dtype=np.float32, threads: int = 1):
        from .sparse_threads import row_blocks, split

        A = scipy.sparse.csr_matrix(A)
        n = A.shape[0]
        count = BLOCKS if n >= BLOCKS * MIN_ROWS_PER_BLOCK else 1
        self.bounds = np.cumsum([0] + [b.shape[0] for b in row_blocks(A, count)]).astype(np.int64)
        data = A.data.astype(dtype)
        block = np.repeat(np.arange(count), np.diff(self.bounds))
        self.lower, self.upper, across = (
            scipy.sparse.csr_matrix(_part(A.indptr, A.indices, data, block, part)[::-1], shape=A.shape)
            for part in (LOWER, UPPER, ACROSS))
        self.diagonal = A.diagonal().astype(dtype)
        self.across = split(across, threads) if across.nnz else None
        self.upper_product = split(self.upper, threads)
        self.threads = threads

    def _each_block(self, kernel, *arrays):
        from .sparse_threads import side_by_side

        steps = [lambda b=b: kernel(*arrays, self.bounds[b], self.bounds[b + 1]) for b in range(self.bounds.size - 1)]
        side_by_side(self.threads, *steps)

    def forward_from_zero(self, r):
        """(x, r − A x): one forward sweep from x = 0, and the residual it leaves."""
        L = self.lower
        x = np.empty_like(r)
        self._each_block(_forward, L.indptr, L.indices, L.data, self.diagonal, x, r)
        residual = -(self.upper_product @ x)
        if self.across is not None:
            residual -= self.across @ x
        return x, residual

    def backward(self, x, r):
        """One backward sweep on A x = r from ``x``, in place."""
        L, U = self.lower, self.upper
        rhs = r if self.across is None else r - self.across @ x  # the other block's values from before the sweep
        self._each_block(_backward, L.indptr, L.indices, L.data, U.indptr, U.indices, U.data, self.diagonal, x, rhs)
        return x
