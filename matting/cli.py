"""Command line: ``python -m matting methods | run | eval`` (see ``--help`` of each)."""
from __future__ import annotations

import argparse
import json
import sys
from importlib import import_module
from pathlib import Path

import numpy as np

from . import composite, io, metrics
from .errors import MattingError
from .export import save_result
from .registry import get, methods
from .runner import run, validate_params

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}


# --------------------------------------------------------------------------- helpers

def parse_param(text: str):
    """'name=value' → (name, value) with value as int, float, bool or string."""
    if "=" not in text:
        raise MattingError(f"Parameters are given as name=value; got {text!r}.")
    name, raw = text.split("=", 1)
    for convert in (int, float):
        try:
            return name.strip(), convert(raw)
        except ValueError:
            pass
    if raw.lower() in ("true", "false"):
        return name.strip(), raw.lower() == "true"
    return name.strip(), raw


def weights_status(spec) -> str:
    """Whether the method's checkpoints can be used now (the same rule as the app: weights.usable)."""
    if spec.unavailable:
        return "not runnable"
    if not spec.weights:
        return "not needed"
    from . import weights

    ready = [w for w in spec.weights if weights.usable(w)]
    if spec.can_run_with(weights.usable):
        return "present" if len(ready) == len(spec.weights) else f"present: {', '.join(ready)}"
    missing = [w for w in spec.checkpoints_for({}) if not weights.usable(w)] or spec.weights[:1]
    return "missing (python -m matting.weights fetch " + " ".join(missing) + ")"


def format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _partner(folder_or_file: str | None, stem: str, what: str) -> Path | None:
    """In batch mode, the trimap/scribbles/plate with the same file stem as the image."""
    if folder_or_file is None:
        return None
    path = Path(folder_or_file)
    if not path.is_dir():
        return path
    matches = [p for p in image_files(path) if p.stem == stem]
    if not matches:
        raise MattingError(f"No {what} named {stem}.* in {path} for the image {stem}.")
    return matches[0]


# --------------------------------------------------------------------------- commands

def cmd_methods(args) -> int:
    rows = [[m.id, m.family, m.describe_needs(), weights_status(m), m.name] for m in methods()]
    print(format_table(rows, ["id", "family", "inputs", "weights", "name"]))
    for m in methods():
        if m.unavailable:
            print(f"\n{m.id} is not runnable: {m.unavailable}")
    return 0


def cmd_run(args) -> int:
    spec = get(args.method)
    params = dict(parse_param(p) for p in args.param)
    if args.weights:
        from . import weights

        if not spec.weights:
            raise MattingError(f"{spec.name} uses no weights; --weights does not apply.")
        weights.use_file(spec.checkpoint_for(validate_params(spec, params)), args.weights)
    source = Path(args.image)
    if source.is_dir():
        images = image_files(source)
        if not images:
            raise MattingError(f"The folder {source} contains no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    else:
        images = [source]
    batch = len(images) > 1 or source.is_dir()
    from tqdm import tqdm

    failures = 0
    for path in tqdm(images, desc=spec.id, disable=not batch, unit="image"):
        out = Path(args.out) / path.stem if batch else Path(args.out)
        try:
            image = io.load_image(path)
            result = run(
                spec.id, image,
                trimap=_partner(args.trimap, path.stem, "trimap"),
                scribbles=_partner(args.scribbles, path.stem, "scribbles"),
                background=_partner(args.background, path.stem, "background plate"),
                **params,
            )
            save_result(result, image, out, backdrop=args.backdrop, colour=args.colour)
            if not batch:
                print(json.dumps(result.summary(), indent=2, default=str))
        except MattingError as exc:
            if not batch:
                raise
            failures += 1
            tqdm.write(f"{path.name}: {exc}")
    if batch:
        print(f"{len(images) - failures} of {len(images)} images written to {args.out}")
    return 1 if failures else 0


def evaluate(method_id: str, data: Path, trimap_sets=("trimap1", "trimap2"), limit: int | None = None,
             progress: bool = True, **params) -> list[dict]:
    """Per-image metrics of one method on a folder laid out as input/, trimap1/, trimap2/, gt/."""
    for sub in ("input", "gt") + tuple(trimap_sets):
        if not (data / sub).is_dir():
            raise MattingError(f"{data} has no {sub}/ folder; expected input/, trimap1/, trimap2/ and gt/.")
    from tqdm import tqdm

    names = [p.name for p in image_files(data / "input")][:limit]
    rows = []
    for trimap_set in trimap_sets:
        for name in tqdm(names, desc=f"{method_id} {trimap_set}", disable=not progress, unit="image"):
            image = io.load_image(data / "input" / name)
            trimap = io.load_trimap(data / trimap_set / name, image.shape)
            gt = io.load_alpha(data / "gt" / name, image.shape)
            spec = get(method_id)
            result = run(method_id, image, trimap=trimap if spec.accepts("trimap") else None,
                         foreground="none", **params)
            rows.append({"image": Path(name).stem, "trimap": trimap_set, "seconds": result.seconds,
                         **metrics.all_metrics(result.alpha, gt, trimap=trimap)})
    return rows


def cmd_eval(args) -> int:
    params = dict(parse_param(p) for p in args.param)
    sets = ("trimap1", "trimap2") if args.trimap == "both" else (args.trimap,)
    rows = evaluate(args.method, Path(args.data), sets, args.limit, **params)
    keys = ("sad", "mse", "grad", "conn", "seconds")
    table = [[r["image"], r["trimap"]] + [f"{r[k]:.3f}" for k in keys] for r in rows]
    for trimap_set in sets:
        subset = [r for r in rows if r["trimap"] == trimap_set]
        table.append(["mean", trimap_set] + [f"{np.mean([r[k] for r in subset]):.3f}" for k in keys])
    header = ["image", "trimap"] + [metrics.METRIC_UNITS.get(k, "s/image") for k in keys]
    print(format_table(table, header))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m matting", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("methods", help="table of methods, families, inputs and weights status")

    p = sub.add_parser("run", help="run one method on an image (or a folder of images)")
    p.add_argument("method")
    p.add_argument("--image", required=True, help="image file or folder (batch)")
    p.add_argument("--trimap", help="trimap file (or folder with the same file names in batch mode)")
    p.add_argument("--scribbles", help="scribbles: 255 = foreground stroke, 0 = background, 128 = none")
    p.add_argument("--background", help="background plate (BGMv2): the same shot without the subject")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="method parameter, repeatable (see `methods` and matting.get(ID).params)")
    p.add_argument("--weights", help="use this checkpoint file instead of the downloaded one")
    p.add_argument("--backdrop", default="checkerboard", choices=composite.BACKDROPS[:2] + ("blur",))
    p.add_argument("--colour", default="#00b140", help="backdrop colour for --backdrop colour")

    p = sub.add_parser("eval", help="SAD/MSE/Grad/Conn of a method on an alphamatting-style folder")
    p.add_argument("method")
    p.add_argument("--data", required=True, help="folder with input/, trimap1/, trimap2/, gt/")
    p.add_argument("--trimap", default="both", choices=("trimap1", "trimap2", "both"))
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--json", help="also write per-image rows to this JSON file")
    for module_name in COMMAND_MODULES:
        commands.update(import_module(module_name).add_commands(sub))
    return parser


# Modules that add sub-commands: each has ``add_commands(subparsers) -> {name: handler(args) -> int}``
# (imported only when the parser is built, so ``import matting.cli`` stays light).
COMMAND_MODULES: tuple[str, ...] = ()

commands = {"methods": cmd_methods, "run": cmd_run, "eval": cmd_eval}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return commands[args.command](args)
    except MattingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
