"""U²-Net's RescaleT(320): our two-tap bilinear equals scikit-image's resize (the official code's call)."""
import numpy as np
from hypothesis import given, settings, strategies as st
from skimage.transform import resize

from matting.adapters.u2net import INPUT_SIZE, preprocess, resize_like_skimage


def skimage_resize(image, height, width):
    return resize(image, (height, width), order=1, mode="constant", anti_aliasing=False)


@settings(max_examples=200, deadline=None)
@given(height=st.integers(1, 700), width=st.integers(1, 700), out_h=st.integers(1, 400),
       out_w=st.integers(1, 400), channels=st.sampled_from([1, 3]), seed=st.integers(0, 2**16))
def test_resize_equals_skimage_up_and_down(height, width, out_h, out_w, channels, seed):
    image = np.random.default_rng(seed).random((height, width, channels))
    ours = resize_like_skimage(image, out_h, out_w)
    expected = skimage_resize(image, out_h, out_w)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_preprocess_equals_the_official_steps_on_a_photo_sized_input():
    image = np.random.default_rng(1).random((563, 800, 3))
    small = skimage_resize(image, INPUT_SIZE, INPUT_SIZE)
    small = small / small.max()
    expected = ((small - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)[None].astype(np.float32)
    np.testing.assert_array_equal(preprocess(image), expected)
