"""Small helpers shared by the weights modules: durable file writes, the ``.part`` naming of
downloads, short human-readable reasons and sizes, the progress bar. Imports nothing from the package."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from pathlib import Path

CHUNK_BYTES = 1 << 20


# --------------------------------------------------------------------------- durable writes

def flush(handle) -> None:
    """Flush ``handle`` to the disk, not just to the OS, before the file is renamed into place."""
    handle.flush()
    os.fsync(handle.fileno())


def fsync_directory(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (best effort)."""
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


def copy_file(source: Path, destination: Path) -> None:
    with open(source, "rb") as src, open(destination, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK_BYTES)
        flush(out)


def write_text_atomically(destination: Path, text: str) -> None:
    """Write ``text`` so that readers see either the old file or the whole new one."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(text)
        flush(out)
    os.replace(temporary, destination)


# --------------------------------------------------------------------------- download files

def part_path(target: Path) -> Path:
    """Where a download of ``target`` is written until it has been checked."""
    return target.with_name(target.name + ".part")


def source_note_path(part: Path) -> Path:
    """Sidecar naming the URL a .part file came from: only that URL may resume it."""
    return part.with_name(part.name + ".source")


def discard_part(part: Path) -> None:
    part.unlink(missing_ok=True)
    source_note_path(part).unlink(missing_ok=True)


# --------------------------------------------------------------------------- text

def short_reason(reason) -> str:
    """One line (at most 200 characters) saying why something failed, in plain words where we can."""
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


def last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no output"


def human_bytes(size: int) -> str:
    if size >= 1e6:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e3:.0f} kB"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def progress_bar(total, initial, description, enabled):
    """A byte-counting tqdm bar on stderr (a no-op object when ``enabled`` is false)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, file=sys.stderr, leave=True)


@contextlib.contextmanager
def file_lock(lock_path: Path):
    """Hold an exclusive lock on ``lock_path`` (created if needed) across processes; a no-op where
    ``fcntl`` does not exist (Windows), where the in-process lock still applies."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a")
    except OSError:  # a read-only cache: in-process locking only
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
