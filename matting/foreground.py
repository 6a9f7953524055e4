"""pymatting's multi-level foreground estimate (Germer et al. 2020), with a faster sweep.

:func:`estimate_foreground_ml` returns exactly what ``pymatting.estimate_foreground_ml`` returns for
RGB images (same levels, same iteration counts, same raster-order in-place updates, the same float32
and float64 operations in the same order), bit for bit; ``tests/test_foreground.py`` checks that.

Why not call pymatting: its kernel is written for any number of channels, so the per-pixel
right-hand side lives in a small array in memory and the channel loops are not unrolled. For three
channels every quantity fits in registers, and the same arithmetic runs 2–3× faster
(``python -m matting.bench foreground``). Other channel counts go to pymatting. On an idle machine
the large levels run on two threads with the same result (:func:`_pipelined_sweeps`).

The number types follow pymatting's kernel as numba compiles it: alpha, image and F/B are float32,
``1 − α`` is float64 (``1.0`` is a double), so the background half of the 2×2 system and the solve are
double, while the right-hand side is stored back to float32 after each term.
"""
from __future__ import annotations

import threading

import numpy as np
from numba import float32, njit

from .sparse_threads import pool, side_by_side
from .threads import solver_threads

REGULARIZATION = 1e-5
SMALL_ITERATIONS = 10
BIG_ITERATIONS = 2
SMALL_SIZE = 32
GRADIENT_WEIGHT = 1.0
# Pixels per row band of a two-thread level (:func:`_pipelined_sweeps`); levels with fewer than two
# bands run serially. At 512² bands of 8k, 16k and 32k pixels measured the same, 64k was 10 % slower
# (fewer bands: longer stretches where one thread waits at the start and end of a level).
PIXELS_PER_BAND = 32_768


def _bands(h: int, w: int) -> int:
    """Row bands of an h × w level on two threads; below 2 the level runs on one."""
    return min(h // 2, (h * w) // PIXELS_PER_BAND) if w >= 2 else 0


@njit(cache=True, nogil=True)
def _mean_colour(image, alpha, of_foreground):
    """Mean colour where α > 0.9 (``of_foreground``) or where α < 0.1, accumulated in float32 in
    raster order (pymatting computes both in one pass; each sum sees the same additions in the same order)."""
    h, w, _ = image.shape
    total = np.zeros(3, np.float32)
    count = 0
    for y in range(h):
        for x in range(w):
            a = alpha[y, x]
            if (a > 0.9) if of_foreground else (a < 0.1):
                for c in range(3):
                    total[c] += image[y, x, c]
                count += 1
    total /= count + 1e-5
    return total


@njit(cache=True, nogil=True)
def _sweep_rectangle(image, alpha, F, B, regularization, gradient_weight, top, bottom, left, right):
    """One raster-order pass of the per-pixel 2×2 least-squares update over rows ``top:bottom`` and
    columns ``left:right``, in place; neighbours are clamped at the image's border, not the rectangle's."""
    h, w = alpha.shape
    for y in range(top, bottom):
        up, down = max(y - 1, 0), min(y + 1, h - 1)
        for x in range(left, right):
            a0 = alpha[y, x]
            a1 = 1.0 - a0
            a00 = a0 * a0
            a01 = a0 * a1
            a11 = a1 * a1
            f0 = a0 * image[y, x, 0]
            f1 = a0 * image[y, x, 1]
            f2 = a0 * image[y, x, 2]
            g0 = float32(a1 * image[y, x, 0])
            g1 = float32(a1 * image[y, x, 1])
            g2 = float32(a1 * image[y, x, 2])
            # neighbours in pymatting's order: left, right, up, down (clamped at the border)
            for d in range(4):
                if d == 0:
                    y2, x2 = y, max(x - 1, 0)
                elif d == 1:
                    y2, x2 = y, min(x + 1, w - 1)
                elif d == 2:
                    y2, x2 = up, x
                else:
                    y2, x2 = down, x
                da = regularization + gradient_weight * abs(a0 - alpha[y2, x2])
                a00 += da
                a11 += da
                f0 = float32(f0 + da * F[y2, x2, 0])
                f1 = float32(f1 + da * F[y2, x2, 1])
                f2 = float32(f2 + da * F[y2, x2, 2])
                g0 = float32(g0 + da * B[y2, x2, 0])
                g1 = float32(g1 + da * B[y2, x2, 1])
                g2 = float32(g2 + da * B[y2, x2, 2])
            inv_det = 1.0 / (a00 * a11 - a01 * a01)
            b00 = inv_det * a11
            b01 = inv_det * -a01
            b11 = inv_det * a00
            F[y, x, 0] = max(0.0, min(1.0, b00 * f0 + b01 * g0))
            F[y, x, 1] = max(0.0, min(1.0, b00 * f1 + b01 * g1))
            F[y, x, 2] = max(0.0, min(1.0, b00 * f2 + b01 * g2))
            B[y, x, 0] = max(0.0, min(1.0, b01 * f0 + b11 * g0))
            B[y, x, 1] = max(0.0, min(1.0, b01 * f1 + b11 * g1))
            B[y, x, 2] = max(0.0, min(1.0, b01 * f2 + b11 * g2))


@njit(cache=True, nogil=True)
def _sweeps(image, alpha, F, B, regularization, gradient_weight, iterations):
    """``iterations`` Gauss–Seidel sweeps over the whole image, in place (pymatting's order)."""
    h, w = alpha.shape
    for _ in range(iterations):
        _sweep_rectangle(image, alpha, F, B, regularization, gradient_weight, 0, h, 0, w)


def _pipelined_sweeps(image, alpha, F, B, regularization, gradient_weight, iterations, threads):
    """The same sweeps as :func:`_sweeps`, to the bit, on two threads where the level is large enough.

    A pixel's update reads its left and upper neighbours after, and its right and lower neighbours
    before, their own update in the same sweep. Cut the image into a left and a right half and into
    row bands, and take the bands of all the sweeps one after the other (the next sweep's band 0
    follows the last band). The caller's thread runs the left halves in that order, a pool thread the
    right halves. Two waits keep every pixel's reads what the raster order gives it:

    * the right half of a band starts once the left half of the same band (and sweep) is done, for
      the left neighbours of its first column;
    * the left half of a band in the next sweep starts once the right half of that band in this
      sweep is done, so that it reads the right neighbours' new values and does not overwrite a
      column they still have to read.

    Nothing else is shared: the halves of different bands touch neither each other's pixels nor
    their 4-neighbours. So the left thread runs up to a sweep ahead and the two seldom wait.
    """
    h, w = alpha.shape
    bands = _bands(h, w)
    if threads < 2 or bands < 2:
        _sweeps(image, alpha, F, B, regularization, gradient_weight, iterations)
        return
    edges = [round(h * i / bands) for i in range(bands + 1)]
    middle = w // 2
    order = [(edges[i], edges[i + 1]) for _ in range(iterations) for i in range(bands)]
    left_done = [threading.Event() for _ in order]
    right_done = [threading.Event() for _ in order]
    failed = threading.Event()  # either side raised: the other stops waiting and returns

    def right_halves():
        try:
            for step, (top, bottom) in enumerate(order):
                left_done[step].wait()
                if failed.is_set():
                    return
                _sweep_rectangle(image, alpha, F, B, regularization, gradient_weight, top, bottom, middle, w)
                right_done[step].set()
        except BaseException:
            failed.set()
            raise
        finally:
            for event in right_done:  # after a failure, release a left side still waiting
                if failed.is_set():
                    event.set()

    right = pool(1).submit(right_halves)
    try:
        for step, (top, bottom) in enumerate(order):
            if step >= bands:
                right_done[step - bands].wait()
                if failed.is_set():
                    break
            _sweep_rectangle(image, alpha, F, B, regularization, gradient_weight, top, bottom, 0, middle)
            left_done[step].set()
    except BaseException:
        failed.set()
        for event in left_done:
            event.set()
        raise
    right.result()  # re-raises the right side's error, if any


@njit(cache=True, nogil=True)
def _nearest_into(dst, src):
    h, w = dst.shape[:2]
    H, W = src.shape[:2]
    for y in range(h):
        ys = y * H // h
        for x in range(w):
            xs = x * W // w
            for c in range(dst.shape[2]):
                dst[y, x, c] = src[ys, xs, c]


def _nearest(array: np.ndarray, h: int, w: int) -> np.ndarray:
    """pymatting's nearest-neighbour resize: destination pixel (y, x) reads source (y·H // h, x·W // w).

    At the source's own size that is the identity, and the array itself is returned (the sweeps
    never write to the image or alpha; F and B always come from the previous level's arrays).
    """
    if array.shape[:2] == (h, w):
        return array
    out = np.empty((h, w) + array.shape[2:], array.dtype)
    _nearest_into(out.reshape(h, w, -1), array.reshape(array.shape[0], array.shape[1], -1))
    return out


def estimate_foreground_ml(image, alpha, regularization: float = REGULARIZATION,
                           n_small_iterations: int = SMALL_ITERATIONS, n_big_iterations: int = BIG_ITERATIONS,
                           small_size: int = SMALL_SIZE, return_background: bool = False,
                           gradient_weight: float = GRADIENT_WEIGHT, threads: int | None = None):
    """Foreground (and background) colours from an image and its alpha; pymatting's arguments and result.

    ``threads``: 1 or 2 (more are not used); by default :func:`matting.threads.solver_threads`, so two
    only while the cores are idle. The result does not depend on it.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        from pymatting import estimate_foreground_ml as general

        return general(image, alpha, regularization, n_small_iterations, n_big_iterations, small_size,
                       return_background, gradient_weight)
    image = np.ascontiguousarray(image, np.float32)
    alpha = np.ascontiguousarray(alpha, np.float32)
    h0, w0 = alpha.shape
    if threads is None:
        threads = solver_threads() if _bands(h0, w0) >= 2 else 1
    # Two independent passes: side by side on two threads (the same sums either way).
    fg_mean, bg_mean = side_by_side(threads, lambda: _mean_colour(image, alpha, True),
                                    lambda: _mean_colour(image, alpha, False))
    F = np.empty((1, 1, 3), np.float32)
    B = np.empty((1, 1, 3), np.float32)
    F[:] = fg_mean
    B[:] = bg_mean
    levels = int(np.ceil(np.log2(max(w0, h0))))
    regularization, gradient_weight = np.float32(regularization), np.float32(gradient_weight)
    for level in range(levels + 1):
        # pymatting's level sizes: the image's sides raised to level/levels (0 levels: the 1×1 level only)
        exponent = level / levels if levels else 1.0  # a 1×1 image has one level (pymatting divides by 0)
        w, h = round(w0 ** exponent), round(h0 ** exponent)
        if threads > 1 and _bands(h, w) >= 2:  # mostly page faults of the new arrays: side by side
            F, B = side_by_side(threads, lambda: _nearest(F, h, w), lambda: _nearest(B, h, w))
        else:
            F, B = _nearest(F, h, w), _nearest(B, h, w)
        iterations = n_small_iterations if w <= small_size and h <= small_size else n_big_iterations
        _pipelined_sweeps(_nearest(image, h, w), _nearest(alpha, h, w), F, B, regularization, gradient_weight,
                          int(iterations), threads)
    return (F, B) if return_background else F
