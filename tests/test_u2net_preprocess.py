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


def test_float32_photo_is_resized_in_float64_and_results_do_not_share_buffers():
    rng = np.random.default_rng(2)
    first_photo, second_photo = (rng.random((512, 384, 3)).astype(np.float32) for _ in range(2))
    first = resize_like_skimage(first_photo, INPUT_SIZE, INPUT_SIZE)
    kept = first.copy()
    second = resize_like_skimage(second_photo, INPUT_SIZE, INPUT_SIZE)  # reuses the scratch buffers
    np.testing.assert_array_equal(first, kept)
    assert first.dtype == second.dtype == np.float64 and not np.shares_memory(first, second)
    np.testing.assert_allclose(second, skimage_resize(second_photo.astype(np.float64), INPUT_SIZE, INPUT_SIZE),
                               rtol=0, atol=1e-12)
    assert not np.shares_memory(preprocess(first_photo), preprocess(second_photo))


@settings(max_examples=40, deadline=None)
@given(width=st.integers(1, 700), height=st.integers(1, 700), seed=st.integers(0, 2**16))
def test_side_maps_at_image_size_follow_pil_bilinear(width, height, seed):
    from PIL import Image

    from matting.adapters.u2net import _resize_float

    side_map = np.random.default_rng(seed).random((INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    pil = np.asarray(Image.fromarray(side_map, mode="F").resize((width, height), Image.BILINEAR))
    ours = _resize_float(side_map, width, height)
    assert ours.shape == (height, width) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, np.clip(pil, 0, 1), rtol=0, atol=2.5e-7)
