"""Sparse matrix products split by rows over a few threads, and independent steps run side by side.

SciPy's sparse products release the GIL, and row ``i`` of ``A @ B`` depends only on row ``i`` of
``A``: computing contiguous row blocks of ``A`` in threads and stacking the blocks gives exactly the
serial product (the same values in the same order within every row). On the alphamatting strokes
(GT04: A 402k × 402k with 9.8M entries, P 4.4M entries) ``A @ P`` took 265–376 ms serially and
168–197 ms on two threads, plus 16–19 ms to stack the blocks; two different products side by side
took the time of one. The multigrid set-up (:func:`matting.solvers.multigrid_preconditioner`) uses
both.

How many threads: :func:`matting.threads.solver_threads` (the fixed split waits for the slowest
block, so on a busy two-core machine it is one, and everything here runs serially in the caller).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse

MIN_ROWS_PER_THREAD = 20_000  # below this a product is too short to be worth handing out

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool with at least ``workers`` threads (made on first use, grown when asked)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)  # its running tasks finish; new ones go to the larger pool
            _pool, _pool_size = ThreadPoolExecutor(workers, thread_name_prefix="matting-sparse"), workers
        return _pool


def row_blocks(A: scipy.sparse.csr_matrix, count: int) -> list[scipy.sparse.csr_matrix]:
    """``count`` contiguous row blocks of ``A`` with about equal numbers of entries (views, no copies)."""
    cuts = np.searchsorted(A.indptr, np.linspace(0, A.nnz, count + 1)[1:-1])
    bounds = [0, *sorted(set(int(c) for c in cuts) - {0, A.shape[0]}), A.shape[0]]
    blocks = []
    for top, bottom in zip(bounds[:-1], bounds[1:]):
        start, stop = A.indptr[top], A.indptr[bottom]
        # Made empty and given the arrays afterwards: the constructor would copy views of under half
        # of their base ("pruning"), i.e. every block of a split into three or more.
        block = scipy.sparse.csr_matrix((bottom - top, A.shape[1]), dtype=A.dtype)
        block.data, block.indices = A.data[start:stop], A.indices[start:stop]
        block.indptr = (A.indptr[top:bottom + 1] - start).astype(A.indptr.dtype)
        blocks.append(block)
    return blocks


def stack_rows(blocks: list[scipy.sparse.csr_matrix], columns: int) -> scipy.sparse.csr_matrix:
    """The row blocks one under the other, entries in the order each block has them."""
    if len(blocks) == 1:
        return blocks[0]
    offsets = np.cumsum([0] + [b.nnz for b in blocks])
    indptr = np.concatenate([b.indptr[:-1] + offset for b, offset in zip(blocks, offsets[:-1])]
                            + [np.array([offsets[-1]])]).astype(np.int64)
    indices = np.concatenate([b.indices for b in blocks])
    data = np.concatenate([b.data for b in blocks])
    if max(offsets[-1], columns) <= np.iinfo(np.int32).max:
        indptr, indices = indptr.astype(np.int32), indices.astype(np.int32, copy=False)
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(indptr.size - 1, columns), copy=False)


def product(A, B, threads: int) -> scipy.sparse.csr_matrix:
    """``A @ B`` in CSR, its row blocks computed on up to ``threads`` threads; equal to the serial product."""
    A = scipy.sparse.csr_matrix(A)
    count = min(threads, A.shape[0] // MIN_ROWS_PER_THREAD)
    if count <= 1:
        return (A @ B).tocsr()
    parts = list(pool(count).map(lambda block: (block @ B).tocsr(), row_blocks(A, count)))
    return stack_rows(parts, B.shape[1])


class RowSplit:
    """``A @ x`` for a vector ``x`` with ``A``'s row blocks on several threads; the same result to the bit.

    Stands in for ``A`` where only ``@`` with vectors and ``shape`` are used (CG, the V-cycle).
    A CSR product with a vector reads the matrix once, so it is bound by memory bandwidth, and two
    cores still share it out better than one: GT04's strokes matrix (9.8M entries) 6.9–7.0 ms
    serially, 4.0–4.2 ms in two blocks.
    """

    def __init__(self, A, threads: int):
        self.matrix = scipy.sparse.csr_matrix(A)
        self.shape = self.matrix.shape
        self.dtype = self.matrix.dtype
        count = min(threads, self.shape[0] // MIN_ROWS_PER_THREAD)
        self.blocks = row_blocks(self.matrix, count) if count > 1 else [self.matrix]
        self.starts = np.cumsum([0] + [b.shape[0] for b in self.blocks])

    def __matmul__(self, x):
        if len(self.blocks) == 1:
            return self.matrix @ x
        x = np.asarray(x)
        out = np.empty(self.shape[0], np.result_type(self.dtype, x.dtype))

        def block(i):
            out[self.starts[i]:self.starts[i + 1]] = self.blocks[i] @ x

        futures = [pool(len(self.blocks) - 1).submit(block, i) for i in range(1, len(self.blocks))]
        block(0)
        for future in futures:
            future.result()
        return out


def split(A, threads: int | None = None):
    """``A`` itself for one thread or a matrix too small to split, else a :class:`RowSplit` of it.

    ``threads`` None: :func:`matting.threads.solver_threads`, asked only for a matrix large enough.
    """
    if A.shape[0] < 2 * MIN_ROWS_PER_THREAD:
        return A
    if threads is None:
        from .threads import solver_threads

        threads = solver_threads()
    return A if threads <= 1 else RowSplit(A, threads)


def side_by_side(threads: int, *steps):
    """Results of the callables ``steps``: the first in the calling thread, the others on the pool
    (all in the caller, in order, when ``threads`` is 1). A step must not itself wait on the pool
    (no :func:`product` with threads inside a step): its blocks could queue behind it."""
    if threads <= 1 or len(steps) == 1:
        return [step() for step in steps]
    futures = [pool(len(steps) - 1).submit(step) for step in steps[1:]]
    first = steps[0]()
    return [first] + [future.result() for future in futures]
