import numpy as np
import pytest

import matting
from matting import composite, io, trimap
from matting.synthetic import make_composite


def disc(size=64, radius=20):
    yy, xx = np.mgrid[:size, :size]
    return (np.hypot(yy - size / 2, xx - size / 2) < radius).astype(np.float32)


def test_trimap_from_binary_mask_has_bands_of_the_requested_width():
    mask = disc()
    result = trimap.from_mask(mask, erode=3, dilate=5)
    assert set(np.unique(result)) == {0, 128, 255}
    row = result[32]
    # Along the middle row the disc spans x = 13…51; foreground shrinks by 3, background starts 5 outside.
    inside = np.flatnonzero(row == 255)
    outside_left = np.flatnonzero(row[:32] == 0)
    assert inside.min() == 13 + 3 and outside_left.max() == 13 - 5 - 1
    assert (result[mask == 0] != 255).all() and (result[mask == 1] != 0).all()


def test_soft_mask_pixels_stay_unknown():
    mask = disc() * 0.98
    mask[10, 10] = 0.5
    result = trimap.from_mask(mask, erode=0, dilate=0)
    assert result[10, 10] == 128


def test_zero_width_bands_and_validation():
    mask = disc()
    result = trimap.from_mask(mask, erode=0, dilate=0)
    assert (result == 128).sum() == 0
    with pytest.raises(matting.MattingError, match="no unknown"):
        trimap.validate(result)
    with pytest.raises(matting.MattingError, match="whole number of pixels"):
        trimap.from_mask(mask, erode=-1)
    with pytest.raises(matting.MattingError, match="no definite foreground"):
        trimap.validate(trimap.from_mask(disc(radius=2), erode=10, dilate=10))


def test_trimap_from_layers_and_scribbles():
    fg = np.zeros((16, 16), bool)
    bg = np.zeros((16, 16), bool)
    fg[:4] = True
    bg[-4:] = True
    layered = trimap.from_layers(foreground=fg, background=bg)
    assert (layered[:4] == 255).all() and (layered[-4:] == 0).all() and (layered[4:-4] == 128).all()
    unknown = np.zeros_like(fg)
    unknown[:2] = True
    assert (trimap.from_layers(foreground=fg, background=bg, unknown=unknown)[:2] == 128).all()
    sparse = trimap.from_scribbles(io.Scribbles(fg, bg))
    np.testing.assert_array_equal(sparse, layered)
    with pytest.raises(matting.MattingError, match="painted background layer is 8×8"):
        trimap.from_layers(foreground=fg, background=np.zeros((8, 8), bool))


def test_dense_trimap_from_scribbles_feeds_a_trimap_only_method():
    scene = make_composite(edge=4.0)
    fg = np.zeros(scene.alpha.shape, bool)
    bg = np.zeros_like(fg)
    fg[44:52, 40:56] = True
    bg[:4] = True
    bg[-4:] = True
    dense = trimap.dense_from_scribbles(scene.image, io.Scribbles(fg, bg), band=2)
    trimap.validate(dense)
    edge = (scene.alpha > 0.02) & (scene.alpha < 0.98)
    assert (dense[edge] == 128).all()  # every soft pixel is left for the solver
    assert (dense == 128).mean() < 0.4
    alpha = matting.run("shared_sampling", scene.image, trimap=dense, foreground="none").alpha
    assert np.abs(alpha - scene.alpha).mean() < 0.02


def test_composite_equation_and_backdrops():
    scene = make_composite(32, 48)
    green = composite.over_colour(scene.foreground, scene.alpha, "#00ff00")
    a = scene.alpha[:, :, None]
    np.testing.assert_allclose(green, a * scene.foreground + (1 - a) * np.array([0, 1, 0]), atol=1e-6)
    np.testing.assert_allclose(composite.over(scene.foreground, scene.alpha, scene.background), scene.image, atol=1e-6)
    for backdrop in ("checkerboard", "colour", "blur"):
        out = composite.composite(backdrop, scene.image, scene.foreground, scene.alpha)
        assert out.shape == scene.image.shape and 0 <= out.min() and out.max() <= 1
    wide = np.zeros((10, 100, 3), np.float32)
    wide[:, 45:55] = 1.0
    fitted = composite.fit_cover(wide, 32, 48)
    assert fitted.shape == (32, 48, 3) and fitted[:, 24].mean() > 0.9  # centre-cropped, aspect kept
    with pytest.raises(matting.MattingError, match="Choose a picture"):
        composite.composite("image", scene.image, scene.foreground, scene.alpha)
    with pytest.raises(matting.MattingError, match="Cannot read the colour"):
        composite.parse_colour("greenish")


def test_rgba_export_is_straight_alpha(tmp_path):
    scene = make_composite(32, 48)
    path = composite.save_rgba_png(tmp_path / "cut.png", scene.foreground, scene.alpha)
    from PIL import Image

    saved = np.asarray(Image.open(path))
    assert saved.shape == (32, 48, 4)
    np.testing.assert_array_equal(saved[:, :, 3], io.to_uint8(scene.alpha))
    np.testing.assert_array_equal(saved[:, :, :3], io.to_uint8(scene.foreground))  # not premultiplied
