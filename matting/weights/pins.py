"""Checksums: the sha256 a file must have, and the local pins that stand in for a missing one.

When the authors publish no checksum, the first complete download (or ``verify`` of a file placed by
hand) is pinned in ``<weights dir>/local_pins.json`` (trust on first use) and later checks compare
against that pin. A pin only counts for the file name it was made for.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from ..paths import weights_dir
from ._fs import CHUNK_BYTES, write_text_atomically
from .manifest import Entry

PINS_FILE_NAME = "local_pins.json"


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
    write_text_atomically(pins_path(), json.dumps(pins, indent=2, sort_keys=True) + "\n")


def expected_sha256(item: Entry) -> str | None:
    """The manifest's sha256, or else the locally pinned one (None when neither exists)."""
    if item.sha256:
        return item.sha256
    pin = _read_pins().get(item.id)
    if isinstance(pin, dict) and pin.get("file") == item.file:
        return pin.get("sha256")
    return None


# Digests by (resolved path, size, mtime): status() is asked often (the CLI table, the app) and
# hashing a 200 MB checkpoint each time would be slow. A changed file changes its key.
_hash_cache: dict[tuple[str, int, int], str] = {}


def _cache_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def sha256_file(path: Path, use_cache: bool = True) -> str:
    path = Path(path)
    key = _cache_key(path)
    if use_cache and key in _hash_cache:
        return _hash_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def _remember_sha256(path: Path, digest: str) -> None:
    """Record the digest of a file just installed under ``path`` (it was hashed as its .part)."""
    _hash_cache[_cache_key(path)] = digest


def read_pin(key: str) -> dict | None:
    """The pin stored under ``key`` (a checkpoint id, or ``hf:<repo id>`` for the revision and config
    files of a Hugging Face checkpoint, :mod:`.hf_model`), or None."""
    pin = _read_pins().get(key)
    return pin if isinstance(pin, dict) else None


def write_pin(key: str, record: dict) -> None:
    """Store ``record`` (with the time) under ``key`` in the local pins file."""
    pins = _read_pins()
    pins[key] = {**record, "pinned_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_text_atomically(pins_path(), json.dumps(pins, indent=2, sort_keys=True) + "\n")
