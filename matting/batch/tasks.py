"""What a batch run is made of: items (one image and its partner files), method runs, and tasks.

A *task* is one (item, method run). Its outputs live in a stable folder,
``<out>/<method label>/<item key>/`` (``alpha.png``, ``foreground.png``, ``cutout.png``,
``composite.png``, ``maps/``, ``result.json`` — the layout of :func:`matting.export.save_result`), and
it is *done* when that folder holds ``done.json``. The marker is written last, after every output
file, and atomically (temporary file + rename), so a task killed half-way is never taken as done. The
marker records a fingerprint of the task (method, parameters, input files with their size and
modification time): a task whose inputs or parameters changed is run again.

Items come from

* a folder of images, with optional partner folders (or single files) for trimaps, scribbles,
  background plates and ground truth, matched by file stem (:func:`items_from_folder`);
* a glob such as ``"photos/*.jpg"`` (the same, :func:`items_from_glob`);
* a manifest, CSV or JSON lines, one row per image with the columns ``image``, ``trimap``,
  ``scribbles``, ``background``, ``gt`` (also ``alpha`` / ``ground_truth``) and optionally ``name``;
  relative paths are relative to the manifest's folder (:func:`items_from_manifest`);
* an alphamatting.com-style dataset folder (``input/``, ``trimap1/``, ``trimap2/``, ``gt/``), one item
  per image and trimap set, keyed ``trimap1/GT02`` (:func:`items_from_dataset`).
"""
from __future__ import annotations

import csv
import glob as globbing
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import MattingError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
MANIFEST_SUFFIXES = {".csv", ".jsonl", ".json", ".ndjson"}
PARTNERS = ("trimap", "scribbles", "background", "gt")
PARTNER_LABELS = {"trimap": "trimap", "scribbles": "scribbles", "background": "background plate",
                  "gt": "ground-truth alpha"}
MANIFEST_ALIASES = {"alpha": "gt", "ground_truth": "gt", "groundtruth": "gt", "plate": "background",
                    "id": "name", "key": "name"}
DONE_MARKER = "done.json"
FAILED_RECORD = "failed.json"


@dataclass(frozen=True)
class Item:
    """One image and its partner files. ``key`` names its output folder (unique within a run);
    ``problem`` is set when the item cannot run (a missing partner): its tasks fail with that message."""

    key: str
    image: str
    trimap: str | None = None
    scribbles: str | None = None
    background: str | None = None
    gt: str | None = None
    variant: str = ""  # e.g. the trimap set of a dataset item
    problem: str = ""

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def files(self) -> dict[str, str]:
        return {k: v for k, v in (("image", self.image), *((p, getattr(self, p)) for p in PARTNERS)) if v}


@dataclass(frozen=True)
class MethodRun:
    """A method with its parameters, and the label that names its output folder."""

    method: str
    params: dict = field(default_factory=dict, hash=False)
    label: str = ""

    def __post_init__(self):
        if not self.label:
            object.__setattr__(self, "label", default_label(self.method, self.params))


@dataclass(frozen=True)
class Task:
    item: Item
    run: MethodRun

    @property
    def key(self) -> str:
        return f"{self.run.label}/{self.item.key}"

    def folder(self, out) -> Path:
        return Path(out) / self.run.label / self.item.key

    def fingerprint(self) -> str:
        """Method, parameters and every input file with its size and modification time."""
        files = {}
        for role, path in self.item.files().items():
            try:
                stat = Path(path).stat()
                files[role] = [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]
            except OSError:
                files[role] = [str(path), None, None]
        text = json.dumps({"method": self.run.method, "params": self.run.params, "files": files,
                           "variant": self.item.variant, "problem": self.item.problem},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def payload(self, out, save: dict | None = None) -> dict:
        """Everything the worker needs, as plain data (cheap to send, no pickled objects)."""
        return {"key": self.key, "method": self.run.method, "label": self.run.label, "params": dict(self.run.params),
                "item": asdict(self.item), "folder": str(self.folder(out)), "fingerprint": self.fingerprint(),
                "save": dict(save or {})}


def default_label(method: str, params: dict) -> str:
    """``closed_form`` or, with parameters, ``closed_form,epsilon=1e-06`` (safe as a folder name)."""
    if not params:
        return method
    text = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return safe_name(f"{method},{text}")


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._,=+@-]+", "_", text).strip("._") or "_"


def parse_method(text: str, parse_value) -> MethodRun:
    """``ID`` or ``ID:name=value,name=value`` (``parse_value('name=value') -> (name, value)``)."""
    method, _, rest = text.partition(":")
    params = dict(parse_value(p) for p in rest.split(",") if p.strip()) if rest else {}
    return MethodRun(method.strip(), params)


# --------------------------------------------------------------------------- items

def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _unique_keys(paths: list[Path]) -> list[str]:
    """File stems, with the suffix added where two files share a stem (a.png and a.jpg)."""
    stems = [p.stem for p in paths]
    return [safe_name(p.stem if stems.count(p.stem) == 1 else p.name) for p in paths]


def _partner_lookup(source, what: str):
    """stem → path for a partner folder; a single file is every image's partner; None: no partner."""
    if source is None:
        return None
    path = Path(source)
    if path.is_dir():
        return {p.stem: str(p) for p in image_files(path)}
    if not path.exists():
        raise MattingError(f"The {PARTNER_LABELS[what]} {str(path)!r} does not exist (give a file or a folder).")
    return str(path)


def _items(paths: list[Path], partners: dict, variant: str = "", key_prefix: str = "") -> list[Item]:
    lookups = {what: _partner_lookup(source, what) for what, source in partners.items()}
    items = []
    for path, key in zip(paths, _unique_keys(paths)):
        files, problems = {}, []
        for what, lookup in lookups.items():
            if lookup is None:
                continue
            if isinstance(lookup, str):
                files[what] = lookup
            elif path.stem in lookup:
                files[what] = lookup[path.stem]
            else:
                problems.append(f"no {PARTNER_LABELS[what]} named {path.stem}.* in {partners[what]}")
        items.append(Item(key=key_prefix + key, image=str(path), variant=variant,
                          problem=_sentence("; ".join(problems)), **files))
    return items


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "." if text else ""


def items_from_folder(folder, trimap=None, scribbles=None, background=None, gt=None) -> list[Item]:
    folder = Path(folder)
    paths = image_files(folder)
    if not paths:
        raise MattingError(f"The folder {folder} contains no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return _items(paths, {"trimap": trimap, "scribbles": scribbles, "background": background, "gt": gt})


def items_from_glob(pattern: str, trimap=None, scribbles=None, background=None, gt=None) -> list[Item]:
    paths = sorted(Path(p) for p in globbing.glob(pattern, recursive=True)
                   if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise MattingError(f"No image file matches {pattern!r}.")
    return _items(paths, {"trimap": trimap, "scribbles": scribbles, "background": background, "gt": gt})


def read_manifest(path) -> list[dict]:
    """Rows of a CSV (with a header) or JSON-lines manifest (a JSON array is accepted too)."""
    path = Path(path)
    if not path.is_file():
        raise MattingError(f"The manifest {str(path)!r} does not exist.")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        stripped = text.strip()
        try:
            if stripped.startswith("["):
                rows = json.loads(stripped)
            else:
                rows = [json.loads(line) for line in stripped.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise MattingError(f"The manifest {path.name} is not valid JSON lines: {exc}.") from None
    cleaned = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise MattingError(f"Row {number} of the manifest {path.name} is not an object.")
        row = {MANIFEST_ALIASES.get(str(k).strip().lower(), str(k).strip().lower()): v for k, v in row.items()}
        row = {k: (str(v).strip() if v is not None else None) for k, v in row.items()}
        row = {k: v for k, v in row.items() if v}
        if "image" not in row:
            raise MattingError(f"Row {number} of the manifest {path.name} has no 'image'.")
        cleaned.append(row)
    if not cleaned:
        raise MattingError(f"The manifest {path.name} lists no images.")
    return cleaned


def items_from_manifest(path) -> list[Item]:
    path = Path(path)
    base = path.resolve().parent
    rows = read_manifest(path)

    def resolve(value):
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else base / p)

    images = [Path(resolve(r["image"])) for r in rows]
    keys = [safe_name(r["name"]) if r.get("name") else k for r, k in zip(rows, _unique_keys(images))]
    if len(set(keys)) != len(keys):
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        raise MattingError(f"The manifest {path.name} names several rows {', '.join(duplicates)}; names must be unique.")
    return [Item(key=key, image=str(image), variant=row.get("variant", ""),
                 **{p: resolve(row[p]) for p in PARTNERS if row.get(p)})
            for row, key, image in zip(rows, keys, images)]


def items_from_dataset(data, trimap_sets=("trimap1", "trimap2"), limit: int | None = None) -> list[Item]:
    """An alphamatting.com-style folder: ``input/``, ``gt/`` and one folder per trimap set."""
    data = Path(data)
    for sub in ("input", "gt") + tuple(trimap_sets):
        if not (data / sub).is_dir():
            raise MattingError(f"{data} has no {sub}/ folder; expected input/, trimap1/, trimap2/ and gt/.")
    paths = image_files(data / "input")[:limit]
    items = []
    for trimap_set in trimap_sets:
        items += _items(paths, {"trimap": data / trimap_set, "gt": data / "gt"}, variant=trimap_set,
                        key_prefix=f"{safe_name(trimap_set)}/")
    return items


def is_dataset(folder) -> bool:
    folder = Path(folder)
    return (folder / "input").is_dir() and (folder / "gt").is_dir() and any(folder.glob("trimap*/"))


def find_items(source, trimap=None, scribbles=None, background=None, gt=None) -> list[Item]:
    """Items from a folder, a glob or a manifest file (by its suffix: .csv, .jsonl, .json)."""
    text = str(source)
    path = Path(text)
    partners = {"trimap": trimap, "scribbles": scribbles, "background": background, "gt": gt}
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        if any(partners.values()):
            raise MattingError("A manifest names each image's partner files; --trimap, --scribbles, --background "
                               "and --gt do not apply.")
        return items_from_manifest(path)
    if path.is_dir():
        return items_from_folder(path, **partners)
    if path.is_file():
        return _items([path], partners)
    if any(ch in text for ch in "*?["):
        return items_from_glob(text, **partners)
    raise MattingError(f"{text!r} is neither a folder, an image, a manifest (.csv, .jsonl) nor a glob that matches files.")


def make_tasks(items: list[Item], runs: list[MethodRun]) -> list[Task]:
    """One task per (item, method run), method-major so that a worker's first tasks share a network."""
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise MattingError(f"Two method runs share the label {next(l for l in labels if labels.count(l) > 1)!r}; "
                           "give them different parameters or labels.")
    keys = [i.key for i in items]
    if len(set(keys)) != len(keys):
        raise MattingError(f"Two images share the name {next(k for k in keys if keys.count(k) > 1)!r}.")
    return [Task(item, run) for run in runs for item in items]


# --------------------------------------------------------------------------- markers

def read_marker(folder) -> dict | None:
    """The done marker of a task folder, or None (absent or unreadable: not done)."""
    try:
        return json.loads((Path(folder) / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_done(task: Task, out) -> dict | None:
    """The task's done record when it finished with the same fingerprint, else None."""
    record = read_marker(task.folder(out))
    if record and record.get("status") == "ok" and record.get("fingerprint") == task.fingerprint():
        return record
    return None
