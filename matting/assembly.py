"""Compiled gather for :func:`matting.solvers.closed_form_system`: unknown rows of a banded Laplacian.

pymatting's closed-form kernel writes the Laplacian as (pixel, dy, dx) stencils: row i, column
i + dy·w + dx. The reduced system needs, for every unknown pixel, the entries whose column is
unknown (a CSR row of ``A``, columns ascending because (dy, dx) runs in raster order) and the sum of
those whose column is known foreground (minus the right-hand side). With NumPy that is a dozen
passes over (unknowns × 25) index arrays, as slow as the solve on an 800-pixel image with strokes;
here it is one pass.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def unknown_rows(stencils, local, foreground):
    """CSR rows of the unknown pixels from their (dy, dx) stencils (``stencils[i]``: unknown pixel i).

    ``local`` maps a pixel to its index among the unknowns (raster order, −1 for known pixels).
    Columns that are unknown pixels go to ``A`` (ascending within a row, as raster order over
    (dy, dx) visits them), known foreground ones to ``b = −L_UK α_K``.
    """
    h, w = local.shape
    n, size, _ = stencils.shape
    reach = size // 2
    indptr = np.zeros(n + 1, np.int64)
    for pass_ in range(2):  # count, then fill
        if pass_ == 1:
            for i in range(n):
                indptr[i + 1] += indptr[i]
            indices = np.empty(indptr[n], np.int32)
            data = np.empty(indptr[n], np.float64)
            b = np.zeros(n, np.float64)
        for y in range(h):
            for x in range(w):
                row = local[y, x]
                if row < 0:
                    continue
                k = indptr[row]
                for dy in range(-reach, reach + 1):
                    for dx in range(-reach, reach + 1):
                        cy, cx = y + dy, x + dx
                        if cy < 0 or cy >= h or cx < 0 or cx >= w:
                            continue
                        column = local[cy, cx]
                        if pass_ == 0:
                            indptr[row + 1] += column >= 0
                        elif column >= 0:
                            indices[k] = column
                            data[k] = stencils[row, dy + reach, dx + reach]
                            k += 1
                        elif foreground[cy, cx]:
                            b[row] -= stencils[row, dy + reach, dx + reach]
    return indptr, indices, data, b


@njit(cache=True, nogil=True)
def scale_rows(indptr, data, factors):
    """In place: row i of a CSR matrix (its ``indptr`` and ``data``) times ``factors[i]``."""
    for i in range(indptr.size - 1):
        for k in range(indptr[i], indptr[i + 1]):
            data[k] *= factors[i]


@njit(cache=True, nogil=True)
def block_prolongator(unknown, candidates, block, tol):
    """Tentative prolongator of block aggregation: CSR (indptr, indices, data) and the column count.

    ``unknown`` (h, w) marks the rows (unknown pixels, raster order); ``candidates`` (rows × k). The
    unknown pixels of each block × block tile form one aggregate; its candidate columns are
    orthonormalised (modified Gram–Schmidt, twice for stability) and a column whose remainder falls
    below ``tol`` times its own norm (linearly dependent on the earlier ones, as R, G, B are on 1 in
    a tile of one flat colour) gets no coarse column. Tiles are numbered in raster order, their kept
    columns consecutively.
    """
    h, w = unknown.shape
    n, k = candidates.shape
    local = np.full(h * w, -1, np.int64)
    count = 0
    for i in range(h * w):
        if unknown[i // w, i % w]:
            local[i] = count
            count += 1
    q = np.zeros((n, k))
    kept = np.zeros(n, np.int64)  # columns of each row's tile
    first = np.zeros(n, np.int64)  # first coarse column of each row's tile
    members = np.empty(block * block, np.int64)
    column = 0
    for ty in range(0, h, block):
        for tx in range(0, w, block):
            m = 0
            for y in range(ty, min(ty + block, h)):
                for x in range(tx, min(tx + block, w)):
                    if unknown[y, x]:
                        members[m] = local[y * w + x]
                        m += 1
            if m == 0:
                continue
            basis = np.zeros((m, k))
            r = 0
            for j in range(k):
                v = np.empty(m)
                for a in range(m):
                    v[a] = candidates[members[a], j]
                norm0 = np.sqrt(np.sum(v * v))
                for _ in range(2):
                    for c in range(r):
                        v -= np.sum(basis[:, c] * v) * basis[:, c]
                norm = np.sqrt(np.sum(v * v))
                if norm > tol * norm0 and norm > 0.0:
                    basis[:, r] = v / norm
                    r += 1
            for a in range(m):
                row = members[a]
                kept[row] = r
                first[row] = column
                for c in range(r):
                    q[row, c] = basis[a, c]
            column += r
    indptr = np.zeros(n + 1, np.int64)
    for row in range(n):
        indptr[row + 1] = indptr[row] + kept[row]
    indices = np.empty(indptr[n], np.int32)
    data = np.empty(indptr[n])
    for row in range(n):
        for c in range(kept[row]):
            indices[indptr[row] + c] = first[row] + c
            data[indptr[row] + c] = q[row, c]
    return indptr, indices, data, column
