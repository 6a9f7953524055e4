"""matting.foreground.estimate_foreground_ml returns pymatting's multi-level estimate to the bit."""
import numpy as np
import pymatting
import pytest
from hypothesis import assume, given, settings, strategies as st

from matting.foreground import estimate_foreground_ml
from matting.runner import estimate_foreground


def _alpha(rng, h, w, kind):
    if kind == "random":
        return rng.random((h, w))
    if kind == "hard":  # mostly 0 and 1, as a trimap-like matte: the gradient weights jump
        a = rng.random((h, w))
        return np.where(a > 0.7, 1.0, np.where(a < 0.3, 0.0, a))
    yy, xx = np.mgrid[:h, :w]  # a soft disc
    return np.clip(1.5 - np.hypot(yy - h / 2, xx - w / 2) / max(h, w, 1) * 4, 0, 1)


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 90), width=st.integers(1, 90), seed=st.integers(0, 2**16),
       kind=st.sampled_from(["random", "hard", "disc"]), dtype=st.sampled_from([np.float32, np.float64]))
def test_equal_to_pymatting_to_the_bit(height, width, seed, kind, dtype):
    assume(height * width > 1)  # pymatting cannot do 1×1 (see test_single_pixel_image)
    rng = np.random.default_rng(seed)
    image = rng.random((height, width, 3)).astype(dtype)
    alpha = _alpha(rng, height, width, kind).astype(dtype)
    ours = estimate_foreground_ml(image, alpha, return_background=True)
    theirs = pymatting.estimate_foreground_ml(image, alpha, return_background=True)
    for got, want in zip(ours, theirs):
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kwargs", [{}, {"regularization": 1e-2, "gradient_weight": 0.3},
                                    {"n_small_iterations": 3, "n_big_iterations": 5, "small_size": 8}])
def test_equal_on_a_photo_sized_input_and_with_other_parameters(kwargs):
    rng = np.random.default_rng(1)
    image, alpha = rng.random((301, 517, 3)), _alpha(rng, 301, 517, "disc")
    np.testing.assert_array_equal(estimate_foreground_ml(image, alpha, **kwargs),
                                  pymatting.estimate_foreground_ml(image, alpha, **kwargs))


def test_other_channel_counts_go_to_pymatting():
    rng = np.random.default_rng(2)
    image, alpha = rng.random((20, 30, 4)), rng.random((20, 30))
    np.testing.assert_array_equal(estimate_foreground_ml(image, alpha), pymatting.estimate_foreground_ml(image, alpha))


def test_single_pixel_image():
    """pymatting divides by its level count, which is 0 for a 1×1 image; ours runs the one level."""
    image, alpha = np.full((1, 1, 3), 0.25), np.full((1, 1), 1.0)
    foreground = estimate_foreground_ml(image, alpha)
    np.testing.assert_allclose(foreground, 0.25, atol=1e-6)


def test_runner_estimate_is_float32_in_unit_range_and_leaves_inputs_alone():
    rng = np.random.default_rng(3)
    image = rng.random((40, 50, 3)).astype(np.float32)
    alpha = _alpha(rng, 40, 50, "hard").astype(np.float32)
    before = image.copy(), alpha.copy()
    foreground = estimate_foreground(image, alpha, "multilevel")
    assert foreground.dtype == np.float32 and foreground.shape == image.shape
    assert foreground.min() >= 0.0 and foreground.max() <= 1.0
    np.testing.assert_array_equal(image, before[0])
    np.testing.assert_array_equal(alpha, before[1])
    np.testing.assert_array_equal(foreground, pymatting.estimate_foreground_ml(image, alpha))


@settings(max_examples=40, deadline=None)
@given(height=st.integers(2, 70), width=st.integers(2, 70), seed=st.integers(0, 2**16),
       pixels_per_band=st.integers(1, 400), iterations=st.integers(1, 3))
def test_two_threads_equal_to_pymatting_to_the_bit(height, width, seed, pixels_per_band, iterations):
    """The pipelined two-thread sweeps, with bands small enough that every level is cut into many
    (down to about two rows each), give pymatting's result to the bit."""
    import matting.foreground as foreground

    rng = np.random.default_rng(seed)
    image = rng.random((height, width, 3)).astype(np.float32)
    alpha = _alpha(rng, height, width, "hard").astype(np.float32)
    kwargs = {"n_small_iterations": iterations, "n_big_iterations": iterations, "return_background": True}
    theirs = pymatting.estimate_foreground_ml(image, alpha, **kwargs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(foreground, "PIXELS_PER_BAND", pixels_per_band)
        ours = estimate_foreground_ml(image, alpha, threads=2, **kwargs)
    for got, want in zip(ours, theirs):
        np.testing.assert_array_equal(got, want)


def test_two_threads_on_a_photo_sized_input():
    rng = np.random.default_rng(4)
    image, alpha = rng.random((400, 333, 3)), _alpha(rng, 400, 333, "disc")
    np.testing.assert_array_equal(estimate_foreground_ml(image, alpha, threads=2),
                                  pymatting.estimate_foreground_ml(image, alpha))
