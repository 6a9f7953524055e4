"""Command line: ``python -m matting methods | run | eval`` (see ``--help`` of each)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib import import_module
from pathlib import Path

from . import composite, io
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


def prepare_output_folder(out: Path) -> list[Path]:
    """Make ``--out`` (and its missing parents) before anything runs, or raise a :class:`MattingError`
    saying why it cannot be: a file in its way, or a folder that cannot be written. Returns the folders
    it created, so that a run that fails can take them away again (nothing is left half-way)."""
    existing = next((p for p in (out, *out.parents) if p.exists() or p.is_symlink()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == out else f" ({existing} is in its path)"
        raise MattingError(f"The output folder {out} cannot be used: {existing} is a file, not a folder{where}. "
                           "Give --out a folder (it is created if needed).")
    missing = [p for p in (out, *out.parents) if not p.exists()][::-1]
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()  # the same check the writes will meet, before any run
    except OSError as exc:
        remove_empty_folders(missing)
        raise MattingError(f"The output folder {out} cannot be written: {exc.strerror or exc}. "
                           "Choose a folder you can write to.") from None
    return missing


def remove_empty_folders(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            break


# --------------------------------------------------------------------------- commands

def cmd_methods(args) -> int:
    rows = [[m.id, m.family, m.describe_needs(), weights_status(m), m.name] for m in methods()]
    print(format_table(rows, ["id", "family", "inputs", "weights", "name"]))
    for m in methods():
        if m.unavailable:
            print(f"\n{m.id} is not runnable: {m.unavailable}")
    return 0


def use_weights_file(spec, params: dict, file_path) -> None:
    """``--weights FILE``: use FILE as the checkpoint a run of ``spec`` with ``params`` loads."""
    from . import weights

    if not spec.weights:
        raise MattingError(f"{spec.name} uses no weights; --weights does not apply.")
    weights.use_file(spec.checkpoint_for(validate_params(spec, params)), file_path)


def cmd_run(args) -> int:
    spec = get(args.method)
    params = dict(parse_param(p) for p in args.param)
    if args.weights:
        use_weights_file(spec, params, args.weights)
    source = Path(args.image)
    if source.is_dir():
        images = image_files(source)
        if not images:
            raise MattingError(f"The folder {source} contains no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    else:
        images = [source]
    batch = len(images) > 1 or source.is_dir()
    from .prompts import from_cli, parse as parse_prompts

    prompts = parse_prompts(args.prompts) if args.prompts else from_cli(args.points, args.box)
    if prompts is not None and batch:
        raise MattingError("Prompts (--points, --box, --prompts) are pixel positions in one photo; give one --image, "
                           "not a folder.")
    created = prepare_output_folder(Path(args.out))
    try:
        return _run_images(args, spec, params, images, batch, prompts)
    except BaseException:
        remove_empty_folders(created)  # a run that failed leaves no empty output folders behind
        raise


def _run_images(args, spec, params, images, batch, prompts) -> int:
    from tqdm import tqdm

    failures = 0
    for path in tqdm(images, desc=spec.id, disable=not batch, unit="image"):
        out = Path(args.out) / path.stem if batch else Path(args.out)
        try:
            image = io.load_image(path)
            result = run(
                spec.id, image, prompts=prompts,
                trimap=_partner(args.trimap, path.stem, "trimap"),
                scribbles=_partner(args.scribbles, path.stem, "scribbles"),
                background=_partner(args.background, path.stem, "background plate"),
                **params,
            )
            try:
                save_result(result, image, out, backdrop=args.backdrop, colour=args.colour)
            except OSError as exc:  # e.g. the disk filled up: each file is written whole or not at all
                raise MattingError(f"Cannot write the results to {out}: {exc.strerror or exc}.") from None
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
    p.add_argument("--points", nargs="+", metavar="X,Y,±",
                   help="prompt clicks in image pixels: x,y,+ (on the object) or x,y,- (not it), for sam_trimap")
    p.add_argument("--box", metavar="X0,Y0,X1,Y1", help="prompt box in image pixels: left,top,right,bottom")
    p.add_argument("--prompts", metavar="JSON", help='prompts as JSON text or a .json file: '
                   '{"points": [[x, y, 1], [x, y, 0]], "box": [x0, y0, x1, y1]}')
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="method parameter, repeatable (see `methods` and matting.get(ID).params)")
    p.add_argument("--weights", help="use this checkpoint file instead of the downloaded one")
    p.add_argument("--backdrop", default="checkerboard", choices=composite.BACKDROPS[:2] + ("blur",))
    p.add_argument("--colour", default="#00b140", help="backdrop colour for --backdrop colour")

    for module_name in COMMAND_MODULES:
        commands.update(import_module(module_name).add_commands(sub))
    return parser


# Modules that add sub-commands: each has ``add_commands(subparsers) -> {name: handler(args) -> int}``
# (imported only when the parser is built, so ``import matting.cli`` stays light).
COMMAND_MODULES: tuple[str, ...] = ("matting.video.cli", "matting.batch.cli")  # video; batch, eval (on Dask)

commands = {"methods": cmd_methods, "run": cmd_run}  # eval: matting.batch.cli


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return commands[args.command](args)
    except MattingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the command must write or read: its own words, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
