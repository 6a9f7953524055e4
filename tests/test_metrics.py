"""Metrics against values worked out by hand on small arrays."""
import math

import numpy as np
import pytest

from matting import metrics

PRED = np.array([[0.5, 1.0], [0.0, 0.25]])
GT = np.array([[0.0, 1.0], [0.0, 1.0]])


def test_sad_and_mse_by_hand():
    everywhere = np.full((2, 2), 128, np.uint8)
    assert metrics.sad(PRED, GT, trimap=everywhere) == pytest.approx((0.5 + 0.75) / 1000)
    assert metrics.mse(PRED, GT, trimap=everywhere) == pytest.approx((0.25 + 0.5625) / 4 * 1000)
    only_first_row = np.array([[128, 128], [255, 0]], np.uint8)
    assert metrics.sad(PRED, GT, trimap=only_first_row) == pytest.approx(0.5 / 1000)
    assert metrics.mse(PRED, GT, trimap=only_first_row) == pytest.approx(0.25 / 2 * 1000)
    assert metrics.sad(PRED, GT, mask=np.array([[0, 0], [0, 1]], bool)) == pytest.approx(0.75 / 1000)
    assert metrics.sad(PRED, GT) == pytest.approx(1.25 / 1000)  # no region: whole image


def test_gradient_error_of_two_ramps_by_hand():
    width = 64
    x = np.arange(width, dtype=np.float64)
    ramp_a = np.tile(x * 0.01, (32, 1))
    ramp_b = np.tile(x * 0.004, (32, 1))
    sigma = 1.4
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 1e-2)))
    u = np.arange(-half, half + 1)
    g = np.exp(-u**2 / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dg = -u * g / sigma**2
    norm = math.sqrt((np.outer(g, dg) ** 2).sum())
    # Convolving a ramp of slope s with the normalised derivative-of-Gaussian gives s·Σg·Σ(u·dg)/norm.
    gain = abs(g.sum() * (u * dg).sum() / norm)
    interior = np.zeros((32, width), bool)
    interior[half + 1:-half - 1, half + 1:-half - 1] = True
    expected = interior.sum() * ((0.01 - 0.004) * gain) ** 2 / 1000
    assert metrics.grad(ramp_a, ramp_b, mask=interior) == pytest.approx(expected, rel=1e-9)
    assert metrics.grad(ramp_a, ramp_a) == 0.0


def test_connectivity_error_by_hand():
    # The last ground-truth pixel is an island the prediction misses: it is cut off from the largest
    # common region at the first threshold (ℓ = 0), so φ_gt = 1 − 1 = 0 there while φ_pred = 1.
    gt = np.array([[1.0, 1.0, 0.0, 1.0]])
    pred = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert metrics.conn(pred, gt) == pytest.approx(1 / 1000)
    np.testing.assert_array_equal(metrics.connectivity_levels(pred, gt), [[1, 1, 0, 0]])
    assert metrics.conn(gt, gt) == 0.0


def test_connectivity_differences_below_theta_do_not_count():
    gt = np.array([[1.0, 1.0, 0.0, 0.1]])
    pred = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert metrics.conn(pred, gt) == 0.0  # d = 0.1 < θ = 0.15


def test_all_metrics_are_zero_for_a_perfect_answer():
    rng = np.random.default_rng(0)
    alpha = rng.random((20, 30))
    trimap = np.full((20, 30), 128, np.uint8)
    assert metrics.all_metrics(alpha, alpha, trimap=trimap) == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0}


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        metrics.sad(np.zeros((2, 2)), np.zeros((3, 3)))


def test_real_benchmark_image_closed_form(alphamatting_dir):
    import matting
    from matting import io

    image = io.load_image(alphamatting_dir / "input" / "GT04.png")
    trimap = io.load_trimap(alphamatting_dir / "trimap1" / "GT04.png", image.shape)
    gt = io.load_alpha(alphamatting_dir / "gt" / "GT04.png", image.shape)
    alpha = matting.run("closed_form", image, trimap=trimap, foreground="none").alpha
    scores = metrics.all_metrics(alpha, gt, trimap=trimap)
    trivial = metrics.all_metrics(np.where(trimap == 255, 1.0, np.where(trimap == 0, 0.0, 0.5)), gt, trimap=trimap)
    for name in metrics.METRIC_NAMES:
        assert 0 <= scores[name] < trivial[name]
