"""Sparse solver set-up for the Laplacian matting methods (closed-form, learning-based, random walk).

pymatting builds good matting Laplacians; what costs time is solving with them. Its defaults are a
thresholded incomplete Cholesky (ichol) preconditioner for conjugate gradients (CG), and for most
methods the trimap enters as a soft penalty (λ = 100) on the full image-sized system. On the
closed-form Laplacian (ε = 1e-7, nearly singular along colour lines) ichol needs a lot of fill to be a
good preconditioner, so the factorisation dominates; with strokes (most pixels unknown) it can fail at
shift 0, is retried with larger diagonal shifts ('PERFORMANCE WARNING') and the factor grows to tens
of millions of entries.

This module replaces that with three pieces, one function per concern:

* :func:`reduced_system` – hard constraints: only the unknown pixels are variables,
  ``L_UU x_U = −L_UK x_K``. Known pixels stay exactly what the trimap says and the system is
  smaller (pymatting's closed-form already does this; for the others it is the limit λ → ∞ of
  their soft penalty).
* :func:`choose_preconditioner` – a direct factorisation when the unknown region is small enough
  (trimaps: a band around the edge), an algebraic two-level method when it is large (strokes; for
  closed-form also on trimap bands of more than 50k unknowns).

  - :func:`direct_preconditioner`: a single-precision sparse LU (SuperLU, symmetric mode, diagonal
    pivots) used as the CG preconditioner, in a geometric nested-dissection order of the unknown
    pixels (:mod:`matting.ordering`: the pixels' positions give the separators, no graph
    partitioner needed). Float32 halves the memory traffic of the factorisation; CG in float64
    recovers full accuracy in two or three iterations, so the answer is the float64 one to the
    requested tolerance. There is no shift and nothing to fail.
  - :func:`multigrid_preconditioner`: smoothed aggregation with *colour-affine* candidates on
    square pixel blocks. The near-null space of a matting Laplacian is the set of alphas that are
    locally affine in colour (α ≈ aᵀI + b in every window: exactly the colour-line model), so
    the coarse space spans {1, R, G, B} on each block. With only the constant (standard AMG,
    pymatting's geometric ``vcycle``) CG needs hundreds of iterations on the closed-form
    Laplacian; with the four colour-affine candidates it needs tens. Smoother: symmetric
    Gauss–Seidel (in two row blocks that run side by side, :mod:`matting.smoothers`); coarse level:
    sparse LU; the cycle in float32 (it is only a preconditioner). The set-up's products and CG's
    matrix-vector products run in row blocks on the cores (:mod:`matting.sparse_threads`).
* :func:`solve` – preconditioned CG (pymatting's ``cg`` algorithm, same stopping rule ``‖r‖ ≤ rtol ‖b‖``)
  from an initial guess.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

SOLVERS = ("auto", "direct", "multigrid", "ichol", "pymatting")

# 'auto' picks by the size and shape of the unknown region (measured on the alphamatting images):
# a direct factorisation for every system up to SMALL_SYSTEM unknowns and for trimap bands up to
# DIRECT_MAX_UNKNOWNS, the colour-affine multigrid when most of the image is unknown (strokes: there
# ichol's factor reaches 35M entries and may need shifts), and pymatting's ichol beyond (the
# factor's fill grows faster than linearly with the band's area). With the nested-dissection order
# and diagonal pivots (direct_preconditioner) the factor of the largest alphamatting bands
# (GT04/GT26 trimap2, 210–220k unknowns) has 54–55M entries and the direct solve beats ichol there
# too, where with minimum degree and threshold pivoting (80–100M entries) it did not and ichol took
# over above 120k. GT04 trimap2 scaled 1.35× (399k unknowns, one process each, loaded machine):
# direct 32.6 s / peak 1.10 GiB, our ichol 67.5 s / 0.93 GiB, pymatting 91.8 s / 1.06 GiB. Beyond
# 400k it is not measured, so ichol (whose memory stays bounded) takes over there. Closed-form, whose
# Laplacian has the colour-affine near-null space exactly, takes the multigrid on bands too now that
# its set-up and sweeps run on both cores (BAND_MULTIGRID_MIN_UNKNOWNS).
SMALL_SYSTEM = 120_000
DIRECT_MAX_UNKNOWNS = 400_000
MULTIGRID_MIN_FRACTION = 0.6  # of the image unknown
# Closed-form only (band_multigrid): the multigrid from this many unknowns whatever the region's shape.
# On the 29 alphamatting trimap bands above it (trimaps 1 and 2, 2 idle cores) the multigrid took a
# median 0.72× the direct solve's time (0.51–1.03×; GT04 trimap2, 219k unknowns: 1.21 against 2.39 s)
# at the same SAD; on one core (five images) 0.70–0.89× on three of the four bands above 75k (GT11
# trimap2: 1.15×), 0.91–1.25× on the three between 50k and 75k. Below 50k neither wins everywhere
# (0.76–1.19× on two cores). One core is the exception (solver_threads: another process busy), so the
# choice does not depend on it: the same input gets the same solver. Learning-based keeps the direct
# solve on bands: there the multigrid gained nothing (0.83–1.38×; its Laplacian's assembly is most
# of the time).
BAND_MULTIGRID_MIN_UNKNOWNS = 50_000
TILE = 64  # side of the squares on which closed_form_system runs pymatting's Laplacian kernel
SMOOTHING_WEIGHT = 1.8  # ω·ρ of the prolongation smoother (see multigrid_preconditioner)
BLOCK = 6  # side of the square pixel blocks that form the coarse aggregates (see multigrid_preconditioner)


@dataclass
class ReducedSystem:
    """``A x = b`` over the unknown pixels; ``unknown`` (flat bool) says which pixels these are."""

    A: scipy.sparse.csr_matrix
    b: np.ndarray
    unknown: np.ndarray
    known_values: np.ndarray  # flat, the trimap value (0 or 1) on known pixels, 0 elsewhere

    def alpha(self, x: np.ndarray, shape) -> np.ndarray:
        """The full alpha: solution on unknown pixels, the trimap's value on known ones, clipped to [0, 1]."""
        out = self.known_values.copy()
        out[self.unknown] = x
        return np.clip(out, 0.0, 1.0).reshape(shape)


def split_trimap(trimap01: np.ndarray):
    """Flat masks (foreground, known, unknown) with pymatting's thresholds (≥ 0.9 fg, ≤ 0.1 bg)."""
    flat = np.asarray(trimap01, np.float64).ravel()
    foreground = flat >= 0.9
    known = foreground | (flat <= 0.1)
    return foreground, known, ~known


def reduced_system(L, trimap01: np.ndarray) -> ReducedSystem:
    """Restrict the Laplacian to the unknown pixels, with the known pixels as hard (Dirichlet) values.

    Minimising αᵀLα with α fixed on known pixels K gives ``L_UU α_U = −L_UK α_K``. ``L`` must be
    symmetric positive semi-definite (closed-form, learning-based and random-walk Laplacians are);
    then ``L_UU`` is SPD whenever every connected part of the unknown region touches a known pixel.
    Rows of known pixels are never read, so a Laplacian built with pymatting's ``is_known`` (which
    skips windows that hold only known pixels) gives the same system.
    """
    foreground, known, unknown = split_trimap(trimap01)
    L = scipy.sparse.csr_matrix(L)
    rows = L[unknown]
    A = rows[:, unknown].tocsr()
    A.sum_duplicates()
    b = -(rows[:, known] @ foreground[known].astype(np.float64))
    return ReducedSystem(A=A, b=np.ascontiguousarray(b), unknown=unknown,
                         known_values=foreground.astype(np.float64))


def closed_form_system(image: np.ndarray, trimap01: np.ndarray, epsilon: float = 1e-7,
                       radius: int = 1, tile: int = TILE) -> ReducedSystem:
    """The closed-form reduced system, assembled straight from pymatting's Laplacian kernel.

    Same numbers as ``reduced_system(cf_laplacian(image, epsilon, radius, is_known), trimap01)``, built
    with less memory traffic, which on an 800-pixel image costs as much as the solve itself:

    * the kernel (pymatting's ``_cf_laplacian``, unchanged) runs tile by tile, on the ``tile``×``tile``
      squares that hold unknown pixels, each grown by 2r: that holds every window that touches one of
      the square's pixels and every pixel such a window reaches, so the rows of the square's unknown
      pixels are exact (the margin's rows are dropped). The kernel writes a 25-entry stencil for every
      pixel it is given, known or not, so skipping the squares without unknown pixels saves most of
      its time on a thin band (GT19 trimap1: 0.34 s on the band's bounding box);
    * the unknown rows are taken from those (pixel, dy, dx) stencils directly (:func:`matting.assembly.unknown_rows`):
      columns that are unknown pixels form ``A`` (sorted within each row), known ones go to the
      right-hand side. No image-sized sparse matrix is built and then sliced twice.
    """
    from pymatting.laplacian.cf_laplacian import _cf_laplacian

    from .assembly import unknown_rows
    from .sparse_threads import side_by_side
    from .threads import solver_threads

    h, w = trimap01.shape
    foreground, known, unknown = split_trimap(trimap01)
    if not unknown.any():
        return ReducedSystem(scipy.sparse.csr_matrix((0, 0)), np.zeros(0), unknown, foreground.astype(np.float64))
    image = np.asarray(image, np.float64)
    known2, unknown2 = known.reshape(h, w), unknown.reshape(h, w)
    reach, size = 2 * radius, 4 * radius + 1
    local = np.full((h, w), -1, np.int64)  # pixel → index among the unknowns, raster order (−1: known)
    local[unknown2] = np.arange(int(unknown.sum()))
    stencils = np.empty((int(unknown.sum()), size, size))
    tiles = [(ty, tx) for ty in range(0, h, tile) for tx in range(0, w, tile)
             if unknown2[ty:ty + tile, tx:tx + tile].any()]

    def kernel_on(tiles):
        for ty, tx in tiles:
            core = np.s_[ty:ty + tile, tx:tx + tile]
            y0, x0 = max(ty - reach, 0), max(tx - reach, 0)
            y1, x1 = min(ty + tile + reach, h), min(tx + tile + reach, w)
            ch, cw = y1 - y0, x1 - x0
            values = np.zeros((ch, cw, size, size))
            _cf_laplacian(np.ascontiguousarray(image[y0:y1, x0:x1]), float(epsilon), int(radius),
                          values.reshape(ch * cw, size, size), np.zeros(ch * cw * size * size, np.int64),
                          np.zeros(ch * cw + 1, np.int64), np.ascontiguousarray(known2[y0:y1, x0:x1]))
            inner = values[ty - y0:ty - y0 + tile, tx - x0:tx - x0 + tile]
            mask = unknown2[core]
            stencils[local[core][mask]] = inner[mask]

    # The tiles write disjoint rows and the kernel releases the GIL: every other tile on a second
    # thread where cores are free (GT04's strokes: 0.2 s of kernel calls).
    threads = solver_threads() if len(tiles) > 8 else 1
    side_by_side(threads, *(lambda part=part: kernel_on(tiles[part::threads]) for part in range(threads)))
    indptr, indices, data, b = unknown_rows(stencils, local, foreground.reshape(h, w))
    A = scipy.sparse.csr_matrix((data, indices, indptr), shape=(b.size, b.size))
    return ReducedSystem(A=A, b=b, unknown=unknown, known_values=foreground.astype(np.float64))


def auto_choice(system: ReducedSystem, multigrid: bool = True, band_multigrid: bool = False) -> str:
    """'direct' up to SMALL_SYSTEM unknowns, 'multigrid' when most of the image is unknown, 'direct' up to
    DIRECT_MAX_UNKNOWNS, else 'ichol'.

    ``band_multigrid=True`` (closed-form): 'multigrid' for every system above BAND_MULTIGRID_MIN_UNKNOWNS,
    trimap bands included, 'direct' below.

    ``multigrid=False`` for Laplacians without the colour-affine near-null space (random walk: its
    near-zero modes are pixel clusters cut off by vanishing edge weights, which no block-wise
    colour-affine coarse space represents; the two-level method stalls, and so does CG with ichol):
    then always 'direct'.
    """
    n = int(system.unknown.sum())
    if multigrid and band_multigrid:
        return "multigrid" if n > BAND_MULTIGRID_MIN_UNKNOWNS else "direct"
    if n <= SMALL_SYSTEM or not multigrid:
        return "direct"
    if n >= MULTIGRID_MIN_FRACTION * system.unknown.size:
        return "multigrid"
    return "direct" if n <= DIRECT_MAX_UNKNOWNS else "ichol"


def choose_preconditioner(system: ReducedSystem, image: np.ndarray, solver: str = "auto",
                          precision: str = "single", multigrid: bool = True, band_multigrid: bool = False):
    """The preconditioner for ``system``: 'direct', 'multigrid' or 'ichol', or 'auto' (see DIRECT_MAX_UNKNOWNS).

    Returns ``(name, M)`` with ``M`` a function r ↦ M⁻¹r. ``precision`` applies to 'direct'.
    'ichol' is pymatting's thresholded incomplete Cholesky with its default shifts, on our system.
    """
    if solver not in ("auto", "direct", "multigrid", "ichol"):
        raise ValueError(f"unknown solver {solver!r}")
    if solver == "auto":
        solver = auto_choice(system, multigrid, band_multigrid)
    if solver == "direct":
        return solver, system_direct_preconditioner(system, image, precision)
    if solver == "ichol":
        from pymatting.preconditioner.ichol import ichol

        return solver, ichol(scipy.sparse.csc_matrix(system.A))
    return solver, multigrid_preconditioner(system.A, image, system.unknown)


def system_direct_preconditioner(system: ReducedSystem, image: np.ndarray, precision: str = "single"):
    """:func:`direct_preconditioner` of ``system.A`` in the nested-dissection order of its pixels."""
    from .ordering import unknown_order

    return direct_preconditioner(system.A, precision, unknown_order(system.A, system.unknown, image.shape[1]))


def direct_preconditioner(A, precision: str = "single", order=None):
    """M⁻¹ = (LU of A)⁻¹ by SuperLU, in symmetric mode (diagonal pivots).

    ``order``: an elimination order (e.g. :func:`matting.ordering.unknown_order`, nested dissection
    of the pixels); SuperLU then factorises ``A[order][:, order]`` with its natural column order.
    Without one it orders by minimum degree on AᵀA + A.

    A direct factorisation has no drop tolerance and no diagonal shift, so it cannot break down on an
    ill-conditioned but SPD matrix the way a thresholded incomplete Cholesky does. The pivots stay on
    the diagonal (``diag_pivot_thresh=0``), as for an SPD matrix they may: SuperLU's default threshold
    (1.0) swaps rows wherever an off-diagonal entry is larger than the diagonal, which the matting
    Laplacians have in many columns, and that costs fill for no accuracy CG needs (GT04 trimap2:
    80M factor entries with minimum degree and threshold 1, 57M with threshold 0, 56M with nested
    dissection; GT26: 101M → 58M → 54M; factorisation 10.8 s → 6.3 s → 4.4 s on GT04, 53 s → 7.3 s →
    5.1 s on GT26, one process, loaded machine).
    In single precision it is an almost exact inverse for the closed-form and learning-based
    Laplacians (CG then converges in 2–3 iterations) at about two thirds of the cost of the float64
    factorisation. It is not for matrices whose condition number approaches 1/eps(float32) ≈ 10⁷:
    the random-walk Laplacian (Gaussian weights that vanish across edges, regularised by only 1e-8)
    needs ``precision="double"``, which makes M⁻¹ the exact inverse (CG stops after one step).
    """
    if precision not in ("single", "double"):
        raise ValueError(f"precision must be 'single' or 'double', not {precision!r}")
    dtype = np.float32 if precision == "single" else np.float64
    options = {"SymmetricMode": True}
    if order is None:
        lu = scipy.sparse.linalg.splu(scipy.sparse.csc_matrix(A).astype(dtype), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                      options=options)
        return lambda r: lu.solve(r.astype(dtype)).astype(np.float64)
    from .ordering import permuted_rows

    order = np.asarray(order)
    # The CSR arrays of B = A[order][:, order] are the CSC arrays of Bᵀ: factorise Bᵀ and solve with
    # trans='T', which is B⁻¹ exactly (no symmetry assumed), without a CSR → CSC conversion.
    B = permuted_rows(A, order, dtype)
    lu = scipy.sparse.linalg.splu(scipy.sparse.csc_matrix((B.data, B.indices, B.indptr), shape=B.shape),
                                  permc_spec="NATURAL", diag_pivot_thresh=0.0, options=options)

    def precondition(r):
        x = np.empty(r.shape, np.float64)
        x[order] = lu.solve(r[order].astype(dtype), trans="T")
        return x

    return precondition


def tentative_prolongator(shape, unknown: np.ndarray, candidates: np.ndarray, block: int = BLOCK,
                          tol: float = 1e-10):
    """Block aggregation's tentative prolongator T (n_unknown × n_coarse csr), orthonormal columns.

    The unknown pixels of each block × block tile form an aggregate; T holds an orthonormal basis of
    the candidates restricted to it (what pyamg's ``fit_candidates`` computes). Columns that are
    linearly dependent on earlier ones (R, G, B in a tile of one flat colour, any candidate beyond
    the tile's pixel count) are left out rather than stored as zero columns, so PᵀAP is non-singular.
    """
    from .assembly import block_prolongator

    h, w = shape[:2]
    indptr, indices, data, columns = block_prolongator(
        np.ascontiguousarray(np.asarray(unknown, bool).reshape(h, w)),
        np.ascontiguousarray(candidates, np.float64), int(block), float(tol))
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(candidates.shape[0], columns))


def colour_affine_candidates(image: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Near-null-space vectors of a matting Laplacian on the unknown pixels: 1, R − ½, G − ½, B − ½."""
    colours = np.asarray(image, np.float64).reshape(-1, image.shape[2])[unknown] - 0.5
    return np.column_stack([np.ones(colours.shape[0]), colours])


def jacobi_spectral_radius(A, steps: int = 10, seed: int = 0) -> float:
    """ρ(D⁻¹A) for SPD ``A`` (D its diagonal), from ``steps`` Lanczos steps in the D inner product.

    D⁻¹A is self-adjoint in ⟨u, v⟩_D = uᵀDv, so Lanczos applies without forming D⁻¹A or
    D^(−½)AD^(−½) (copies of A that cost more than the products). pyamg's default estimate on the
    non-symmetric D⁻¹A (restarted Arnoldi, up to 75 products) cost as much as the rest of the
    set-up; the prolongation smoother only needs ρ to a few per cent, which ten steps give.
    """
    from .cg import dot  # serial: BLAS's threaded dot is slower than the product on a busy machine

    d = A.diagonal()
    v = np.random.default_rng(seed).standard_normal(A.shape[0])
    v /= np.sqrt(dot(v, d * v))
    alphas, betas, previous, beta = [], [], np.zeros_like(v), 0.0
    for _ in range(min(steps, A.shape[0])):
        u = (A @ v) / d - beta * previous
        alpha = dot(u, d * v)
        u -= alpha * v
        alphas.append(alpha)
        beta = float(np.sqrt(max(dot(u, d * u), 0.0)))
        if beta <= 1e-12 * abs(alpha):
            break
        betas.append(beta)
        previous, v = v, u / beta
    k = len(alphas)
    tridiagonal = np.diag(alphas) + np.diag(betas[:k - 1], 1) + np.diag(betas[:k - 1], -1)
    return float(np.linalg.eigvalsh(tridiagonal)[-1])


def multigrid_preconditioner(A, image: np.ndarray, unknown: np.ndarray, block: int = BLOCK,
                             dtype=np.float32, threads: int | None = None):
    """Two-level smoothed aggregation: block aggregates, colour-affine candidates, Gauss–Seidel, LU coarse.

    Set-up: the tentative prolongator T fits the candidates {1, R, G, B} to each block
    (:func:`tentative_prolongator`, an orthonormal basis per block; blocks of one flat colour give
    fewer columns). One damped-Jacobi step smooths it, P = (I − ω D⁻¹A) T with
    ω = SMOOTHING_WEIGHT / ρ (ρ from :func:`jacobi_spectral_radius`), and the coarse matrix is PᵀAP,
    factorised once.
    Application (one symmetric V-cycle, so M is SPD as CG requires): forward Gauss–Seidel sweep,
    coarse correction, backward Gauss–Seidel sweep.

    Cost, measured on the alphamatting strokes (GT04, 400k unknowns): 6×6 blocks take a third of the
    CG iterations of 12×12 (31 against 90) for a coarse LU that is still cheap to factorise and apply
    (49k unknowns, 6.5M entries; 4×4 blocks: 14 iterations but a 42M-entry factor). The cycle runs in
    ``dtype`` (float32: 8 instead of 12 bytes per stored entry in every sweep and product, a
    float32 coarse factor; it is only the preconditioner, CG stays float64 and takes as many
    iterations). The sweeps are :class:`matting.smoothers.BlockGaussSeidel`'s: the forward one from
    zero reads only the lower triangle, and the residual it leaves costs half a product with A.
    """
    from . import sparse_threads
    from .assembly import scale_rows
    from .smoothers import BlockGaussSeidel
    from .threads import solver_threads

    threads = solver_threads() if threads is None else threads
    A = scipy.sparse.csr_matrix(A)
    # Independent steps side by side, products in row blocks (equal to the serial ones; see
    # matting.sparse_threads): the prolongator's fit and ρ, then the three Galerkin products, then
    # the coarse LU beside the float32 copies the cycle reads.
    T, rho = sparse_threads.side_by_side(
        threads, lambda: tentative_prolongator(image.shape, unknown, colour_affine_candidates(image, unknown), block),
        lambda: jacobi_spectral_radius(A))
    # ω = 1.8/ρ rather than the textbook 4/(3ρ): on the alphamatting strokes CG then needs fewer
    # iterations (GT02/GT04/GT26: 25/32/42 → 23/29/36; 2.0/ρ: no further gain). Any ω keeps the cycle
    # SPD (it only shapes P); ρ comes from below (Lanczos), so ω stays under 2/ρ_true by ~10 %.
    omega = SMOOTHING_WEIGHT / rho
    AT = sparse_threads.product(A, T, threads)
    scale_rows(AT.indptr, AT.data, -omega / A.diagonal())
    P = (T + AT).tocsr()  # (I − ω D⁻¹A) T, without a scaled copy of A
    del AT, T
    PT = P.T.tocsr()
    coarse = sparse_threads.product(PT, sparse_threads.product(A, P, threads), threads)

    def coarse_factor():
        # PᵀAP is symmetric: its CSR arrays are also its CSC arrays, so SuperLU gets it without a conversion.
        return scipy.sparse.linalg.splu(
            scipy.sparse.csc_matrix((coarse.data.astype(dtype), coarse.indices, coarse.indptr), shape=coarse.shape),
            permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})

    def cycle_matrices():
        return BlockGaussSeidel(A, dtype, threads), P.astype(dtype), PT.astype(dtype)

    coarse_lu, (smoother, P, PT) = sparse_threads.side_by_side(threads, coarse_factor, cycle_matrices)
    del coarse
    P, PT = sparse_threads.split(P, threads), sparse_threads.split(PT, threads)

    def precondition(r):
        r = r.astype(dtype)
        x, residual = smoother.forward_from_zero(r)
        x += P @ coarse_lu.solve(PT @ residual)
        return smoother.backward(x, r).astype(np.float64)

    return precondition


def solve(system: ReducedSystem, M, x0=None, rtol: float = 1e-7, maxiter: int = 10000,
          callback=None) -> np.ndarray:
    """Preconditioned CG (pymatting's, same stopping rule ‖b − Ax‖ ≤ rtol ‖b‖) from ``x0``.

    Raises ValueError('... did not converge ...') like pymatting when ``maxiter`` is exhausted.
    :func:`matting.cg.cg` is pymatting's iteration with compiled vector kernels (see there why).
    """
    from .cg import cg
    from .sparse_threads import split

    if system.A.shape[0] == 0:
        return np.zeros(0)
    A = split(system.A)  # products with A in row blocks on the cores where it pays: the same result
    return cg(A, system.b, x0=x0, M=M, rtol=rtol, maxiter=maxiter, callback=callback)


SINGLE_PRECISION_ITERATIONS = 30  # far above the 2–3 a float32 factor needs where it suits the matrix


def solve_laplacian(L, trimap01: np.ndarray, image: np.ndarray, solver: str = "auto",
                    rtol: float = 1e-7, maxiter: int = 10000, x0=None, precision: str = "single",
                    multigrid: bool = True, info: dict | None = None, band_multigrid: bool = False) -> np.ndarray:
    """Alpha from a matting Laplacian (or a ready :class:`ReducedSystem`) and a trimap, hard constraints.

    ``info``, if given, receives what was done: preconditioner, precision, CG iterations.
    A single-precision direct factor that has not converged after ``SINGLE_PRECISION_ITERATIONS``
    (the matrix is too ill-conditioned for float32) is replaced by the float64 one, continuing from
    the current iterate; ``info['precision']`` then says 'double' and the benchmark reports it.
    """
    system = L if isinstance(L, ReducedSystem) else reduced_system(L, trimap01)
    info = {} if info is None else info
    info.update(unknowns=int(system.A.shape[0]), iterations=0)
    if system.A.shape[0] == 0:
        return system.alpha(np.zeros(0), trimap01.shape)
    name, M = choose_preconditioner(system, image, solver, precision, multigrid, band_multigrid)
    info.update(preconditioner=name, precision=precision if name == "direct" else "double")
    x = None if x0 is None else np.asarray(x0, np.float64).ravel()[system.unknown]
    count = _IterationCounter()
    if name == "direct" and precision == "single":
        try:
            x = solve(system, M, x0=x, rtol=rtol, maxiter=min(maxiter, SINGLE_PRECISION_ITERATIONS),
                      callback=count)
            info["iterations"] = count.n
            return system.alpha(x, trimap01.shape)
        except ValueError:
            x, maxiter = count.x, maxiter - count.n
            M = system_direct_preconditioner(system, image, "double")
            info["precision"] = "double"
    x = solve(system, M, x0=x, rtol=rtol, maxiter=maxiter, callback=count)
    info["iterations"] = count.n
    return system.alpha(x, trimap01.shape)


class _IterationCounter:
    def __init__(self):
        self.n, self.x = 0, None

    def __call__(self, A, x, b, norm_b, r, norm_r):
        self.n += 1
        self.x = x
