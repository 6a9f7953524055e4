"""The ``hf_model`` container: a Hugging Face ``transformers`` checkpoint (SAM, ViTMatte).

A Hub checkpoint is a folder: ``config.json`` (the architecture's hyper-parameters), often
``preprocessor_config.json`` (the official pre/post-processing settings), and the weights. This
container keeps the workbench's one-file rules for the part that matters:

* the manifest entry's ``file`` is the repository's **safetensors weights file** (``model.safetensors``
  at the source's ``revision``), fetched, size/sha256-checked (or pinned on first download),
  overridden (``MATTING_WEIGHTS_<ID>``, uploads) and verified exactly like every other checkpoint;
* the **revision is pinned**: a source names a 40-hex commit, or else a branch or ref (``main``,
  ``refs/pr/3``) that is resolved to its commit on the first download; that commit is pinned in
  ``local_pins.json`` (key ``hf:<repo id>``, :func:`revision_to_fetch`) and every later download asks for
  it, so the weights and the config files always come from one commit, the first one seen;
* its small **companion files** (:data:`COMPANIONS`) are fetched from the same repository and commit
  by the ``hf`` transport right after it, into ``<weights dir>/hf/<owner>__<name>/``
  (:func:`companion_dir`), honouring ``HF_HUB_OFFLINE`` like the weights file. Each is checked against
  the sha256 the manifest source gives (``companion_sha256``) or else pinned on first download beside
  the commit, and checked again whenever a model folder is assembled (:func:`verify_companions`): a
  configuration changed after the download is refused with a clear message, never loaded;
* :func:`model_folder` assembles what ``from_pretrained(folder, local_files_only=True,
  use_safetensors=True)`` wants: the weights file's own folder when ``config.json`` sits beside it (a
  ``save_pretrained`` folder, e.g. the tests' tiny random models or a user's fine-tuned model), else a
  folder of links to the companions and the weights under ``<cache dir>/hf_models/``.

Only safetensors are ever loaded (never ``pytorch_model.bin`` pickles): the folder that
``from_pretrained`` sees holds no other weights file, and the loaders pass ``use_safetensors=True``.
The architecture's manifest ``model_kwargs`` name the Hub repository (``repo_id``), so that a file
given by hand still finds its configuration. This module imports no Hub or transformers code at import.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from ..errors import MattingError
from ..paths import cache_dir, weights_dir
from .pins import read_pin, sha256_file, write_pin

COMPANIONS = ("config.json", "preprocessor_config.json")
REQUIRED_COMPANIONS = ("config.json",)
WEIGHTS_NAME = "model.safetensors"
PIN_PREFIX = "hf:"


def is_commit(revision) -> bool:
    return isinstance(revision, str) and re.fullmatch(r"[0-9a-f]{40}", revision) is not None


def companion_dir(repo_id: str) -> Path:
    """Where the configuration files of the Hub repository ``repo_id`` are kept."""
    return weights_dir() / "hf" / repo_id.replace("/", "__")


def _pin(repo_id: str) -> dict | None:
    return read_pin(PIN_PREFIX + repo_id)


def revision_to_fetch(repo_id: str, revision: str | None) -> str:
    """The revision to ask the Hub for: a commit as it is; a branch or ref, the commit it was resolved to
    on the first download (when the manifest still names that branch), else the branch itself."""
    revision = revision or "main"
    if is_commit(revision):
        return revision
    pin = _pin(repo_id)
    if pin and pin.get("requested") == revision and is_commit(pin.get("commit")):
        return pin["commit"]
    return revision


def commit_of(cached_path, filename: str) -> str | None:
    """The commit of a file returned by ``hf_hub_download`` (``…/snapshots/<commit>/<filename>``)."""
    snapshot = Path(cached_path)
    for _ in Path(filename).parts:
        snapshot = snapshot.parent
    return snapshot.name if snapshot.parent.name == "snapshots" and is_commit(snapshot.name) else None


def expected_companions(repo_id: str, commit: str | None = None) -> tuple[dict, str]:
    """The sha256 each companion file of ``repo_id`` must have, and where that comes from: the manifest
    source's ``companion_sha256``, else the pin of the first download (of ``commit``, if given)."""
    from .manifest import manifest

    for item in manifest().values():
        for source in item.sources:
            if source.kind == "hf" and source.repo_id == repo_id and source.companion_sha256:
                return dict(source.companion_sha256), "the manifest"
    pin = _pin(repo_id)
    if pin and isinstance(pin.get("files"), dict) and (commit is None or pin.get("commit") == commit):
        return dict(pin["files"]), f"the pin of the first download ({pin.get('pinned_at', '?')})"
    return {}, ""


def fetch_companions(repo_id: str, revision: str | None, offline: bool, requested: str | None = None) -> Path:
    """Download :data:`COMPANIONS` of ``repo_id`` at ``revision`` (a commit) into :func:`companion_dir`,
    each checked against its known sha256 (or pinned now, with the commit, under ``requested``).

    Raises ``LookupError`` with a short reason when a required file cannot be had or one differs."""
    from huggingface_hub import hf_hub_download

    folder = companion_dir(repo_id)
    folder.mkdir(parents=True, exist_ok=True)
    expected, where = expected_companions(repo_id, revision if is_commit(revision) else None)
    digests = {}
    for name in COMPANIONS:
        try:
            cached = hf_hub_download(repo_id, name, revision=revision, local_files_only=offline)
        except Exception as exc:  # noqa: BLE001 - the hub client raises many types
            if name in REQUIRED_COMPANIONS:
                raise LookupError(f"{name} of {repo_id} could not be fetched ({type(exc).__name__})") from None
            continue
        digest = sha256_file(Path(cached), use_cache=False)
        if name in expected and digest != expected[name]:
            raise LookupError(f"{name} of {repo_id} at {revision} has sha256 {digest}, but {where} says "
                              f"{expected[name]}: not the configuration this checkpoint was checked with")
        digests[name] = digest
        temporary = folder / f".{name}.tmp"
        shutil.copyfile(cached, temporary)
        os.replace(temporary, folder / name)
    write_pin(PIN_PREFIX + repo_id, {"requested": requested or revision, "commit": revision if is_commit(revision)
                                     else None, "files": {**expected, **digests}})
    return folder


def verify_companions(repo_id: str, folder: Path) -> None:
    """Raise unless every companion file in ``folder`` has the sha256 it was fetched (or first seen) with;
    a companion that nothing knows yet is pinned now (trust on first use, as for the weights)."""
    expected, where = expected_companions(repo_id)
    present = {name: sha256_file(folder / name) for name in COMPANIONS if (folder / name).is_file()}
    for name, digest in present.items():
        if name in expected and digest != expected[name]:
            raise MattingError(
                f"{folder / name} has changed since it was fetched (sha256 {digest}, but {where} says "
                f"{expected[name]}): the model is not loaded with a configuration nobody checked. Delete "
                f"{folder} and fetch the checkpoint again (python -m matting.weights fetch <id>), or put the "
                "configuration you trust next to the weights file.")
    unknown = {name: digest for name, digest in present.items() if name not in expected}
    if unknown:
        pin = _pin(repo_id) or {}
        write_pin(PIN_PREFIX + repo_id, {**pin, "files": {**pin.get("files", {}), **unknown},
                                         "how": "first load (files placed by hand)"})


def check_weights_file(file_path: Path) -> Path:
    """Raise unless ``file_path`` is a readable safetensors file (its header; no tensor is loaded)."""
    from safetensors import safe_open

    try:
        with safe_open(str(file_path), framework="pt") as handle:
            handle.keys()
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError, ValueError
        raise MattingError(f"{file_path} is not a readable safetensors file ({type(exc).__name__}: {exc}). "
                           "Hugging Face checkpoints are loaded from model.safetensors only.") from None
    return file_path


def model_folder(file_path, repo_id: str | None = None) -> Path:
    """A folder ``from_pretrained`` can load: config (+ preprocessor config) and this weights file."""
    file_path = Path(file_path).resolve()
    check_weights_file(file_path)
    beside = file_path.parent
    if (beside / "config.json").is_file() and file_path.name == WEIGHTS_NAME:
        return beside
    sources = beside if (beside / "config.json").is_file() else (companion_dir(repo_id) if repo_id else None)
    if sources is None or not (sources / "config.json").is_file():
        where = f" or into {companion_dir(repo_id)}" if repo_id else ""
        raise MattingError(
            f"The configuration (config.json) for {file_path.name} is missing. Fetch the checkpoint with "
            "python -m matting.weights fetch <id> (which fetches its config too), or put the config.json of "
            f"the Hugging Face repository{f' {repo_id}' if repo_id else ''} next to the file{where}.")
    if repo_id and sources == companion_dir(repo_id):
        verify_companions(repo_id, sources)
    stat = file_path.stat()
    key = hashlib.sha1(f"{file_path}|{stat.st_size}|{stat.st_mtime_ns}|{sources}".encode()).hexdigest()[:16]
    folder = cache_dir() / "hf_models" / key
    folder.mkdir(parents=True, exist_ok=True)
    links = {WEIGHTS_NAME: file_path, **{name: sources / name for name in COMPANIONS if (sources / name).is_file()}}
    for name, target in links.items():
        link = folder / name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == target:
                continue
            link.unlink()
        try:
            link.symlink_to(target)
        except OSError:  # no symlinks (some file systems): copy the small files, hard-link or copy the weights
            shutil.copyfile(target, link)
    return folder
