"""ViTMatte and SAM through transformers, with tiny random-config models (no download).

* ViTMatte: the adapter's raw alpha equals transformers' own pipeline (VitMatteImageProcessor →
  VitMatteForImageMatting → crop) on the same random model; padding to multiples of 32 and the crop back;
  the trimap's known pixels are kept.
* SAM: :func:`segment` equals SamProcessor → SamModel → post_process_masks on the same random model
  (points, negative points, a box, best-of-three for one click); the image embedding is computed once
  per photo (the second click does not call ``get_image_embeddings``); the whole 'click → mask → trimap
  → closed-form' method runs end to end.
* Offline, the methods say what to fetch.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

import matting  # noqa: E402
from matting import prompts as P, trimap as T, weights  # noqa: E402
from matting.adapters import sam_pipeline, torch_utils  # noqa: E402
from matting.errors import MattingError  # noqa: E402

from hf_tiny import save_tiny_sam, save_tiny_vitmatte  # noqa: E402

H, W = 50, 80  # neither side a multiple of 32: ViTMatte pads to 64×96


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_tiny")
    return {"sam": save_tiny_sam(folder / "sam"), "vitmatte": save_tiny_vitmatte(folder / "vitmatte")}


@pytest.fixture
def use_tiny(tiny, monkeypatch):
    monkeypatch.setenv("MATTING_WEIGHTS_SAM_SLIMSAM_77", str(tiny["sam"]))
    monkeypatch.setenv("MATTING_WEIGHTS_VITMATTE_SMALL_C1K", str(tiny["vitmatte"]))
    yield tiny
    torch_utils.clear_cache()


@pytest.fixture(scope="module")
def scene():
    rng = np.random.RandomState(0)
    image = rng.rand(H, W, 3).astype(np.float32)
    image = np.round(image * 255) / 255  # 8-bit exact, so the reference sees the same pixels
    mask = np.zeros((H, W), np.float32)
    mask[12:40, 20:62] = 1
    return image, T.from_mask(mask, erode=4, dilate=4)


def test_vitmatte_equals_transformers_pipeline(use_tiny, scene):
    from transformers import VitMatteForImageMatting

    from matting.models.vitmatte import build_processor

    image, trimap = scene
    result = matting.run("vitmatte", image, trimap=trimap, foreground="none")
    assert result.alpha.shape == (H, W) and result.run_resolution == (96, 64)  # padded to multiples of 32

    folder = use_tiny["vitmatte"].parent
    model = VitMatteForImageMatting.from_pretrained(str(folder), use_safetensors=True).eval()
    processor = build_processor(folder)
    encoded = processor(images=(image * 255).round().astype(np.uint8), trimaps=trimap, return_tensors="pt")
    assert tuple(encoded["pixel_values"].shape) == (1, 4, 64, 96)
    with torch.no_grad():
        reference = model(**encoded).alphas[0, 0, :H, :W].numpy()
    raw = result.maps["raw_alpha"].array
    difference = float(np.abs(raw - np.clip(reference, 0, 1)).max())
    print(f"ViTMatte adapter vs transformers: max |Δ| = {difference:.3g}")
    assert difference <= 1e-6
    assert float(np.ptp(reference)) > 1e-4  # the tiny model's output does depend on the input
    assert (result.alpha[trimap == 255] == 1).all() and (result.alpha[trimap == 0] == 0).all()
    unknown = trimap == 128
    assert np.allclose(result.alpha[unknown], np.clip(reference[unknown], 0, 1), atol=1e-6)


def _reference_sam(folder, image_u8, points=None, labels=None, box=None, multimask=False):
    from transformers import SamModel

    from matting.models.sam import build_processor

    model = SamModel.from_pretrained(str(folder), use_safetensors=True).eval()
    processor = build_processor(folder)
    kwargs = {}
    if points is not None:
        kwargs.update(input_points=[[points]], input_labels=[[labels]])
    if box is not None:
        kwargs.update(input_boxes=[[box]])
    encoded = processor(images=image_u8, return_tensors="pt", **kwargs)
    with torch.no_grad():
        output = model(**encoded, multimask_output=multimask)
    masks = processor.post_process_masks(output.pred_masks, encoded["original_sizes"],
                                         encoded["reshaped_input_sizes"], binarize=False)[0]
    best = int(output.iou_scores[0, 0].argmax())
    return masks[0, best].numpy(), float(output.iou_scores[0, 0, best])


@pytest.mark.parametrize("prompts, multimask", [
    ({"points": [[40, 25, 1], [5, 5, 0], [70, 44, 1]]}, False),
    ({"points": [[30, 20, 1]]}, True),  # one click: best of SAM's three masks
    ({"box": [15, 10, 65, 42]}, False),
    ({"points": [[40, 25, 1]], "box": [15, 10, 65, 42]}, False),
])
def test_sam_segment_equals_transformers_pipeline(use_tiny, scene, prompts, multimask):
    image, _ = scene
    parsed = P.validate(P.parse(prompts), image.shape)
    bundle = sam_pipeline.load_segmenter()
    found = sam_pipeline.segment(bundle, image, parsed, multimask=multimask)
    image_u8 = (image * 255).round().astype(np.uint8)
    points = [[x, y] for x, y, _ in parsed.points] or None
    labels = [label for _, _, label in parsed.points] or None
    reference, score = _reference_sam(use_tiny["sam"].parent, image_u8, points, labels,
                                      list(parsed.box) if parsed.box else None, multimask)
    difference = float(np.abs(found["logits"] - reference).max())
    print(f"SAM segment vs transformers ({prompts}): max |Δ| = {difference:.3g}")
    assert found["logits"].shape == (H, W) and difference <= 1e-6
    assert abs(found["score"] - score) <= 1e-6
    assert (found["mask"] == (reference > 0)).all()



def test_sam_segment_at_another_size_is_the_same_post_processing(use_tiny, scene):
    """The app's click asks for the mask at its preview size (and passes the photo's key): the same
    transformers post-processing with that target size, and the best of three picked before it."""
    image, _ = scene
    parsed = P.validate(P.parse({"points": [[30, 20, 1]]}), image.shape)
    bundle = sam_pipeline.load_segmenter()
    image_u8 = (image * 255).round().astype(np.uint8)
    key = sam_pipeline.image_key(image_u8)
    found = sam_pipeline.segment(bundle, image, parsed, key=key, size=(32, 48))

    from transformers import SamModel

    from matting.models.sam import build_processor

    folder = use_tiny["sam"].parent
    model = SamModel.from_pretrained(str(folder), use_safetensors=True).eval()
    processor = build_processor(folder)
    encoded = processor(images=image_u8, input_points=[[[[30, 20]]]], input_labels=[[[1]]], return_tensors="pt")
    with torch.no_grad():
        output = model(**encoded, multimask_output=True)
    masks = processor.post_process_masks(output.pred_masks, [(32, 48)], encoded["reshaped_input_sizes"],
                                         binarize=False)[0]
    reference = masks[0, int(output.iou_scores[0, 0].argmax())].numpy()
    assert found["logits"].shape == (32, 48)
    assert float(np.abs(found["logits"] - reference).max()) <= 1e-6

def test_sam_embedding_is_computed_once_per_photo(use_tiny, scene):
    image, _ = scene
    bundle = sam_pipeline.load_segmenter()
    bundle.embeddings.clear()
    calls = []
    original = bundle.model.get_image_embeddings

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    bundle.model.get_image_embeddings = counting
    try:
        first = sam_pipeline.segment(bundle, image, P.parse({"points": [[40, 25, 1]]}))
        second = sam_pipeline.segment(bundle, image, P.parse({"points": [[40, 25, 1], [10, 10, 0]]}))
        assert len(calls) == 1, "the second click recomputed the image embedding"
        assert not first["reused"] and second["reused"]
        result = matting.run("sam_trimap", image, prompts={"points": [[40, 25, 1]]}, erode=2, dilate=2)
        assert len(calls) == 1 and "reused" in result.maps["sam_mask"].description
        sam_pipeline.segment(bundle, image[::-1].copy(), P.parse({"points": [[40, 25, 1]]}))
        assert len(calls) == 2  # another photo: a new embedding
    finally:
        bundle.model.get_image_embeddings = original
    print(f"get_image_embeddings calls: {len(calls)} for 4 clicks on 2 photos")


def test_click_mask_trimap_closed_form_end_to_end(use_tiny, scene, monkeypatch):
    image, _ = scene
    bundle = sam_pipeline.load_segmenter()
    prompts = P.parse({"points": [[40, 25, 1]]})
    found = sam_pipeline.segment(bundle, image, prompts)
    if not found["mask"].any() or found["mask"].all():  # a random SAM may select nothing or everything
        pytest.skip("the random tiny SAM's mask is empty or full at this click")
    result = matting.run("sam_trimap", image, prompts=prompts, refine="closed_form", erode=1, dilate=1,
                         scale_band=False)
    assert result.alpha.shape == (H, W) and np.isfinite(result.alpha).all()
    assert set(result.maps) == {"sam_mask", "sam_probability", "trimap", "refined_alpha"}
    trimap = np.round(result.maps["trimap"].array * 255).astype(np.uint8)
    assert (trimap[found["mask"]] != 0).all() and (trimap[~found["mask"]] != 255).all()
    assert np.allclose(result.alpha[trimap == 255], 1, atol=1e-4)
    assert np.allclose(result.alpha[trimap == 0], 0, atol=1e-4)
    # ViTMatte as the refine step, through its own session and the same tiny checkpoint
    with_vitmatte = matting.run("sam_trimap", image, prompts=prompts, refine="vitmatte", erode=1, dilate=1)
    assert (with_vitmatte.alpha[trimap == 255] == 1).all() and (with_vitmatte.alpha[trimap == 0] == 0).all()


def test_hf_model_folder_from_a_renamed_file_and_its_companions(tiny, tmp_path, monkeypatch):
    from matting.weights import hf_model

    monkeypatch.setenv("MATTING_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("MATTING_CACHE_DIR", str(tmp_path / "cache"))
    alone = tmp_path / "alone" / "tiny.safetensors"
    alone.parent.mkdir()
    shutil.copyfile(tiny["vitmatte"], alone)
    with pytest.raises(MattingError, match="config.json"):
        hf_model.model_folder(alone, "someone/tiny")
    companions = hf_model.companion_dir("someone/tiny")
    companions.mkdir(parents=True)
    for name in hf_model.COMPANIONS:
        shutil.copyfile(tiny["vitmatte"].parent / name, companions / name)
    folder = hf_model.model_folder(alone, "someone/tiny")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    from matting.models.vitmatte import load_file

    assert load_file(alone, repo_id="someone/tiny").model.config.hidden_size == 32
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(MattingError, match="safetensors"):
        hf_model.model_folder(tmp_path / "bad.safetensors", "someone/tiny")


def test_offline_the_methods_say_what_to_fetch(tmp_path, monkeypatch, scene):
    image, trimap = scene
    monkeypatch.setenv("MATTING_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("MATTING_AUTO_FETCH", raising=False)
    for name in ("MATTING_WEIGHTS_VITMATTE_SMALL_C1K", "MATTING_WEIGHTS_SAM_SLIMSAM_77"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MattingError, match="python -m matting.weights fetch vitmatte_small_c1k"):
        matting.run("vitmatte", image, trimap=trimap)
    with pytest.raises(MattingError, match="python -m matting.weights fetch sam_slimsam_77"):
        matting.run("sam_trimap", image, prompts={"points": [[40, 25, 1]]})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MattingError, match="HF_HUB_OFFLINE"):
        weights.fetch("vitmatte_small_c1k", progress=False)
    assert not (tmp_path / "vitmatte-small-composition-1k.safetensors").exists()


def test_cli_takes_points_and_a_box(use_tiny, scene, tmp_path, capsys):
    from matting import cli, io

    image, _ = scene
    photo = io.save_png(tmp_path / "photo.png", image)
    code = cli.main(["run", "sam_trimap", "--image", str(photo), "--points", "40,25,+", "5,5,-",
                     "--box", "10,8,70,45", "-p", "erode=1", "-p", "dilate=1", "--out", str(tmp_path / "out")])
    if code != 0:
        pytest.skip("the random tiny SAM left no definite foreground or background here: " + capsys.readouterr().err)
    assert (tmp_path / "out" / "alpha.png").is_file()
    assert cli.main(["run", "sam_trimap", "--image", str(photo), "--points", "400,25,+",
                     "--out", str(tmp_path / "bad")]) == 2
    assert "outside the image" in capsys.readouterr().err
    assert cli.main(["run", "sam_trimap", "--image", str(photo), "--prompts", '{"points": [[1, 2',
                     "--out", str(tmp_path / "bad")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
