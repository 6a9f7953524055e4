"""Input loading and every kind of bad input: one clear MattingError, nothing else."""
import io as stdio

import numpy as np
import pytest
from PIL import Image

import matting
from matting import io
from matting.synthetic import make_composite


@pytest.fixture()
def composite():
    return make_composite(64, 80)


def png_bytes(array, mode=None):
    buffer = stdio.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def run_cf(composite, **kwargs):
    kwargs.setdefault("trimap", composite.trimap())
    kwargs.setdefault("foreground", "none")
    return matting.run("closed_form", kwargs.pop("image", composite.image), **kwargs)


# --------------------------------------------------------------------------- accepted forms

def test_all_source_kinds_give_the_same_image(tmp_path, composite):
    u8 = io.to_uint8(composite.image)
    path = tmp_path / "photo.png"
    Image.fromarray(u8).save(path)
    expected = u8.astype(np.float32) / 255
    for source in (path, str(path), path.read_bytes(), Image.open(path), u8, expected):
        np.testing.assert_allclose(io.load_image(source), expected, atol=1e-6)


def test_greyscale_becomes_rgb_and_sixteen_bit_is_scaled():
    grey = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
    image = io.load_image(png_bytes(grey))
    assert image.shape == (64, 64, 3) and np.allclose(image[:, :, 0], image[:, :, 2])
    sixteen = (grey.astype(np.uint16) * 257)
    np.testing.assert_allclose(io.load_image(sixteen)[:, :, 0], grey / 255, atol=1e-6)
    buffer = stdio.BytesIO()
    Image.fromarray(sixteen).save(buffer, format="PNG")
    np.testing.assert_allclose(io.load_image(buffer.getvalue())[:, :, 0], grey / 255, atol=1e-6)


def test_rgba_alpha_is_discarded_with_a_warning(composite):
    rgba = np.dstack([io.to_uint8(composite.image), np.full((64, 80), 100, np.uint8)])
    warnings = []
    image = io.load_image(png_bytes(rgba), warnings=warnings)
    assert image.shape == (64, 80, 3) and "alpha channel was discarded" in warnings[0]
    result = run_cf(composite, image=png_bytes(rgba))
    assert any("discarded" in w for w in result.warnings)


def test_exif_orientation_is_applied():
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = 255  # left half white
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    buffer = stdio.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=100)
    loaded = io.load_image(buffer.getvalue())
    assert loaded.shape == (40, 20, 3)
    assert loaded[:20].mean() > 0.9 and loaded[20:].mean() < 0.1  # white half is now on top


def test_trimap_forms_and_snapping():
    levels = np.array([[0, 128, 255, 127], [5, 140, 250, 120]] * 4, np.uint8)
    levels = np.tile(levels, (2, 4))
    snapped = io.load_trimap(levels)
    assert set(np.unique(snapped)) == {0, 128, 255}
    assert (snapped[:, 3] == 128).all()
    as_float = io.load_trimap(snapped.astype(np.float32) / 255)
    np.testing.assert_array_equal(as_float, snapped)
    np.testing.assert_array_equal(io.load_trimap(np.where(snapped == 128, 0.5, snapped / 255).astype(np.float64)), snapped)


def test_rgba_trimap_and_scribbles_treat_transparent_as_unknown():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:4, :, :3] = 255
    rgba[:4, :, 3] = 255
    rgba[-4:, :, 3] = 255  # black, opaque: background strokes
    trimap = io.load_trimap(png_bytes(rgba))
    assert (trimap[:4] == 255).all() and (trimap[-4:] == 0).all() and (trimap[4:-4] == 128).all()
    scribbles = io.load_scribbles(png_bytes(rgba))
    assert scribbles.foreground[:4].all() and scribbles.background[-4:].all()
    assert not (scribbles.foreground[4:-4] | scribbles.background[4:-4]).any()


# --------------------------------------------------------------------------- bad input

BAD_IMAGE_FILES = {
    "not an image": (b"%PDF-1.4 this is not an image at all", "not an image"),
    "empty file": (b"", "is empty"),
}


@pytest.mark.parametrize("name", list(BAD_IMAGE_FILES))
def test_bad_files_are_rejected_clearly(tmp_path, composite, name):
    data, message = BAD_IMAGE_FILES[name]
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    with pytest.raises(matting.MattingError, match=message) as info:
        run_cf(composite, image=path)
    assert "upload.png" in str(info.value)


def test_truncated_png_is_rejected(tmp_path, composite):
    data = png_bytes(io.to_uint8(np.random.default_rng(0).random((64, 80, 3))))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(matting.MattingError, match="truncated or corrupt"):
        run_cf(composite, image=path)


def test_missing_file_and_folder(tmp_path, composite):
    with pytest.raises(matting.MattingError, match="does not exist"):
        run_cf(composite, image=tmp_path / "nope.png")
    with pytest.raises(matting.MattingError, match="is a folder"):
        run_cf(composite, image=tmp_path)


def test_one_pixel_image_is_rejected():
    with pytest.raises(matting.MattingError, match="at least 8 pixels"):
        matting.run("closed_form", png_bytes(np.zeros((1, 1, 3), np.uint8)), trimap=np.zeros((1, 1), np.uint8))


def test_image_over_the_pixel_guard(composite, monkeypatch):
    with pytest.raises(matting.MattingError, match="above the limit.*Downscale it to about"):
        run_cf(composite, max_pixels=1000)
    big = Image.new("RGB", (5000, 4000))
    buffer = stdio.BytesIO()
    big.save(buffer, format="PNG")
    monkeypatch.setenv("MATTING_MAX_PIXELS", "16000000")
    with pytest.raises(matting.MattingError, match="20.0 megapixels"):
        io.load_image(buffer.getvalue())


@pytest.mark.parametrize("which", ["trimap", "scribbles"])
def test_inputs_of_another_size_name_both_sizes(composite, which):
    other = np.full((32, 40), 128, np.uint8)
    other[:4] = 0
    other[-4:] = 255
    with pytest.raises(matting.MattingError, match=r"is 40×32 but the image is 80×64"):
        matting.run("closed_form", composite.image, **{which: other})


def test_plate_of_another_size(composite):
    spec = matting.MethodSpec(
        id="_plate_probe", name="Plate probe", family="background",
        compute=lambda inputs, params: matting.MethodOutput(alpha=np.zeros(inputs.shape, np.float32)),
        card=matting.get("closed_form").card, required_inputs=("background",),
    )
    from matting import registry

    registry.register(spec)
    try:
        with pytest.raises(matting.MattingError, match="background plate is 40×32 but the image is 80×64"):
            matting.run("_plate_probe", composite.image, background=np.zeros((32, 40, 3), np.uint8))
        with pytest.raises(matting.MattingError, match="needs a background plate"):
            matting.run("_plate_probe", composite.image)
    finally:
        registry.unregister("_plate_probe")


@pytest.mark.parametrize("missing,fill", [("unknown", None), ("foreground", 255), ("background", 0)])
def test_trimap_without_a_region(composite, missing, fill):
    trimap = composite.trimap()
    if missing == "unknown":
        trimap = np.where(composite.alpha > 0.5, 255, 0).astype(np.uint8)
    else:
        trimap = np.where(trimap == fill, 128, trimap).astype(np.uint8)
    with pytest.raises(matting.MattingError, match=f"has no .*{missing}"):
        run_cf(composite, trimap=trimap)


def test_trimap_with_stray_values(composite):
    trimap = composite.trimap()
    trimap[10:12, 10:12] = 60
    with pytest.raises(matting.MattingError, match="values other than 0 .* e.g. 60"):
        run_cf(composite, trimap=trimap)


def test_colour_trimap_is_rejected(composite):
    trimap = np.dstack([composite.trimap()] * 3)
    trimap[0, 0] = (255, 0, 0)
    with pytest.raises(matting.MattingError, match="must be greyscale"):
        run_cf(composite, trimap=trimap)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_an_array(composite, bad):
    image = composite.image.copy()
    image[3, 3, 1] = bad
    with pytest.raises(matting.MattingError, match="NaN or infinite"):
        run_cf(composite, image=image)


def test_float_image_out_of_range(composite):
    with pytest.raises(matting.MattingError, match="divide by 255"):
        run_cf(composite, image=composite.image * 255)


def test_wrong_array_shapes_and_types(composite):
    with pytest.raises(matting.MattingError, match="expected H×W"):
        run_cf(composite, image=np.zeros((64, 80, 5), np.float32))
    with pytest.raises(matting.MattingError, match="file path, bytes, a PIL image or a numpy array"):
        run_cf(composite, image=12345)


def test_unknown_method_suggests_a_close_one(composite):
    with pytest.raises(matting.MattingError, match="Unknown method 'closed_from'.*Did you mean 'closed_form'"):
        matting.run("closed_from", composite.image)


@pytest.mark.parametrize("params,message", [
    ({"epsilon": 5.0}, "must be between"),
    ({"radius": 1.5}, "whole number"),
    ({"radius": "wide"}, "must be a number"),
    ({"foreground": "magic"}, "must be one of"),
    ({"alpha_boost": 2}, "has no parameter 'alpha_boost'"),
])
def test_parameters_out_of_range(composite, params, message):
    with pytest.raises(matting.MattingError, match=message):
        run_cf(composite, **params)


def test_missing_and_doubled_inputs(composite):
    with pytest.raises(matting.MattingError, match="needs a trimap or scribbles"):
        matting.run("closed_form", composite.image)
    trimap = composite.trimap()
    with pytest.raises(matting.MattingError, match="not both"):
        matting.run("closed_form", composite.image, trimap=trimap, scribbles=trimap)


def test_scribbles_need_both_kinds_of_stroke(composite):
    only_foreground = np.full((64, 80), 128, np.uint8)
    only_foreground[30:34, 30:40] = 255
    with pytest.raises(matting.MattingError, match="no background strokes"):
        matting.run("closed_form", composite.image, scribbles=only_foreground)


def test_large_kernel_radius_too_big_for_the_image(composite):
    with pytest.raises(matting.MattingError, match="at least 81 pixels on each side.*Lower the radius"):
        matting.run("large_kernel", composite.image, trimap=composite.trimap(), radius=20)
