"""The ``hf_model`` container: a Hugging Face ``transformers`` checkpoint (SAM, ViTMatte).

A Hub checkpoint is a folder: ``config.json`` (the architecture's hyper-parameters), often
``preprocessor_config.json`` (the official pre/post-processing settings), and the weights. This
container keeps the workbench's one-file rules for the part that matters:

* the manifest entry's ``file`` is the repository's **safetensors weights file** (``model.safetensors``
  at the source's ``revision``), fetched, size/sha256-checked (or pinned on first download),
  overridden (``MATTING_WEIGHTS_<ID>``, uploads) and verified exactly like every other checkpoint;
* its small **companion files** (:data:`COMPANIONS`) are fetched from the same repository and revision
  by the ``hf`` transport right after it, into ``<weights dir>/hf/<owner>__<name>/``
  (:func:`companion_dir`), honouring ``HF_HUB_OFFLINE`` like the weights file;
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
import shutil
from pathlib import Path

from ..errors import MattingError
from ..paths import cache_dir, weights_dir

COMPANIONS = ("config.json", "preprocessor_config.json")
REQUIRED_COMPANIONS = ("config.json",)
WEIGHTS_NAME = "model.safetensors"


def companion_dir(repo_id: str) -> Path:
    """Where the configuration files of the Hub repository ``repo_id`` are kept."""
    return weights_dir() / "hf" / repo_id.replace("/", "__")


def fetch_companions(repo_id: str, revision: str | None, offline: bool) -> Path:
    """Download :data:`COMPANIONS` of ``repo_id`` at ``revision`` into :func:`companion_dir`.

    Raises ``LookupError`` with a short reason when a required file cannot be had."""
    from huggingface_hub import hf_hub_download

    folder = companion_dir(repo_id)
    folder.mkdir(parents=True, exist_ok=True)
    for name in COMPANIONS:
        try:
            cached = hf_hub_download(repo_id, name, revision=revision, local_files_only=offline)
        except Exception as exc:  # noqa: BLE001 - the hub client raises many types
            if name in REQUIRED_COMPANIONS:
                raise LookupError(f"{name} of {repo_id} could not be fetched ({type(exc).__name__})") from None
            continue
        temporary = folder / f".{name}.tmp"
        shutil.copyfile(cached, temporary)
        os.replace(temporary, folder / name)
    return folder


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
