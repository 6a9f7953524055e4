"""Example rows for the app, written at startup into ``cache_dir()/examples`` (nothing large is committed).

Photos come from scikit-image's bundled sample data (``skimage.data``), with the licences its
docstrings state:

* astronaut — Eileen Collins, a head-and-shoulders portrait (the example for the portrait methods), NASA Great Images database: "No known copyright restrictions, released
  into the public domain."
* chelsea — Chelsea the cat, photograph by Stefan van der Walt: "No copyright restrictions. CC0."
* coffee — coffee cup, Pikolo Espresso Bar, photograph by Rachel Michetti: "No copyright restrictions. CC0."
* rocket — DSCOVR launch on Falcon 9, SpaceX: released into the public domain by SpaceX.

The trimaps in ``assets/`` (a few kB each) were made from U²-NetP masks (the official weights,
``weights/u2netp.onnx``) with ``matting.trimap.from_mask(mask, erode=8, dilate=8)``; regenerate them with
``python -m matting.ui.examples --regenerate [METHOD]`` once an automatic method is registered.

The background-plate example is synthetic so that everything is known: the astronaut's alpha
(closed-form matting with her trimap) and foreground colours are composited over the rocket photo.
Its photo, plate and ground-truth alpha are exact, so metrics and error maps have something to show.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import composite, io, trimap
from ..paths import cache_dir
from ..runner import estimate_foreground, run

ASSETS = Path(__file__).resolve().parent / "assets"
VERSION = 1  # bump to rebuild every user's cached examples
# The astronaut is the portrait (Eileen Collins, head and shoulders): the example for the portrait
# methods (MODNet, selfie segmentation, the human-segmentation U²-Net). It is the best portrait among
# scikit-image's bundled photos; the only other person, "camera", is a greyscale full figure.
PHOTOS = {"astronaut": "Astronaut — portrait (for the portrait methods)", "chelsea": "Chelsea the cat",
          "coffee": "Coffee cup"}
# The app opens on this example result: the automatic pipeline (offline), else closed-form on the trimap.
FIRST_LOOK = (("automatic", "u2netp_closed_form"), ("trimap", "closed_form"))

LICENSE_NOTE = ("Example photos from scikit-image's sample data: astronaut (NASA, public domain), Chelsea the "
                "cat (Stefan van der Walt, CC0), coffee cup (Rachel Michetti, CC0), rocket (SpaceX, public "
                "domain). The last example composites the astronaut over the rocket photo, so its plate and "
                "true alpha are known.")
LICENSES = {
    "astronaut": "Eileen Collins, NASA (public domain), via scikit-image",
    "chelsea": "Chelsea the cat, Stefan van der Walt (CC0), via scikit-image",
    "coffee": "Coffee cup, Rachel Michetti / Pikolo Espresso Bar (CC0), via scikit-image",
    "rocket": "DSCOVR launch, SpaceX (public domain), via scikit-image",
}


@dataclass(frozen=True)
class Example:
    label: str
    photo: str
    trimap: str | None = None
    ground_truth: str | None = None
    plate: str | None = None

    def row(self) -> list:
        return [self.photo, self.trimap, self.ground_truth, self.plate]


def examples_dir() -> Path:
    return cache_dir() / "examples"


def _sample(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def _write_once(path: Path, make) -> str:
    if not path.exists():
        temporary = path.with_name(path.stem + ".tmp.png")
        io.save_png(temporary, make())
        temporary.replace(path)  # atomic: two app processes may start at once
    return str(path)


def _composite_example(folder: Path, astronaut_trimap: Path) -> Example:
    def alpha_gt():
        image = _sample("astronaut").astype(np.float32) / 255.0
        return run("closed_form", image, trimap=astronaut_trimap, foreground="none").alpha

    gt_path = Path(_write_once(folder / "astronaut_over_rocket_alpha.png", alpha_gt))
    plate_path = Path(_write_once(
        folder / "rocket_plate.png",
        lambda: composite.fit_cover(_sample("rocket").astype(np.float32) / 255.0, 512, 512)))

    def photo():
        image = _sample("astronaut").astype(np.float32) / 255.0
        alpha = io.load_alpha(gt_path)
        foreground = estimate_foreground(image, alpha, "multilevel")
        return composite.over(foreground, alpha, io.load_image(plate_path))

    photo_path = _write_once(folder / "astronaut_over_rocket.png", photo)
    trimap_path = _write_once(folder / "astronaut_over_rocket_trimap.png",
                              lambda: trimap.from_mask(io.load_alpha(gt_path), erode=8, dilate=8))
    return Example("Astronaut over a rocket: plate + true alpha",
                   photo_path, trimap_path, str(gt_path), str(plate_path))


def ensure_examples() -> list[Example]:
    """Write the example files if they are not there yet and return the rows (a few seconds, once)."""
    folder = examples_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "version.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("version") != VERSION:
        for old in folder.glob("*.png"):
            old.unlink()
    examples = []
    for name, label in PHOTOS.items():
        photo = _write_once(folder / f"{name}.png", lambda name=name: _sample(name))
        trimap_path = _write_once(folder / f"{name}_trimap.png",
                                  lambda name=name: io.load_trimap(ASSETS / f"{name}_trimap.png"))
        examples.append(Example(label, photo, trimap_path))
    examples.append(_composite_example(folder, Path(examples[0].trimap)))
    stamp.write_text(json.dumps({"version": VERSION, "licences": LICENSES}, indent=2) + "\n")
    return examples


def regenerate_trimaps(method_id: str, band: int = 8) -> None:
    """Rebuild the committed example trimaps from an automatic method's mask."""
    for name in PHOTOS:
        mask = run(method_id, _sample(name), foreground="none").alpha
        io.save_png(ASSETS / f"{name}_trimap.png", trimap.from_mask(mask, erode=band, dilate=band))
        print(f"wrote {ASSETS / f'{name}_trimap.png'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write the app's example files (or regenerate the trimaps).")
    parser.add_argument("--regenerate", nargs="?", const="u2netp", metavar="METHOD",
                        help="rebuild assets/*_trimap.png from this automatic method (default u2netp)")
    args = parser.parse_args(argv)
    if args.regenerate:
        regenerate_trimaps(args.regenerate)
    for example in ensure_examples():
        print(f"{example.label}: {example.photo}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
