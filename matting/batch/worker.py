"""The task function and the per-process session cache (importable by every Dask worker).

:func:`run_task` runs one (image, method) task from its plain-data payload
(:meth:`matting.batch.tasks.Task.payload`), writes the outputs into the task's folder with
:func:`matting.export.save_result` (every file atomically), then ``done.json`` last, and returns a small
record (status, timings, metrics when a ground truth is given). It never raises for a problem of the
task itself — a bad image, missing weights, a method's error: the record says ``status: failed`` with
the message, and ``failed.json`` in the task folder keeps it. Only the death of the process (a killed
worker) loses a task, and Dask then runs it again elsewhere.

Sessions (:func:`matting.session`: a method with its network loaded) are cached per process and per
(method, parameters), so a worker loads each network once, not once per image. With
``threads_per_worker > 1`` the threads of a worker share the cached session (sessions are thread-safe).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
import uuid
from pathlib import Path

from ..errors import MattingError
from .tasks import DONE_MARKER, FAILED_RECORD

_SESSIONS: dict = {}
_LOCKS: dict = {}
_GUARD = threading.Lock()


def _cache_key(method: str, params: dict):
    return method, json.dumps(params, sort_keys=True, default=str)


def session_for(method: str, params: dict):
    """(session, created): this process's cached :class:`matting.Session` for ``method`` with ``params``."""
    key = _cache_key(method, params)
    with _GUARD:
        if key in _SESSIONS:
            return _SESSIONS[key], False
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:  # one load per key even when several threads ask at once
        with _GUARD:
            if key in _SESSIONS:
                return _SESSIONS[key], False
        import matting

        session = matting.session(method, **params)
        with _GUARD:
            _SESSIONS[key] = session
        return session, True


def cached_sessions() -> list[str]:
    with _GUARD:
        return [f"{m} {p}" for m, p in _SESSIONS]


def clear_sessions() -> None:
    with _GUARD:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
        _LOCKS.clear()
    for session in sessions:
        session.close()


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def _write_json(path: Path, record: dict) -> None:
    from ..io import write_bytes_atomically

    write_bytes_atomically(path, (json.dumps(record, indent=2, default=str) + "\n").encode("utf-8"))


def _inputs_for(spec, item: dict) -> dict:
    """The partner files this method takes: a trimap is preferred to scribbles when both are there and
    the method takes one of them; a file the method does not take is not passed (several methods can
    share one manifest)."""
    given = {}
    if item.get("trimap") and spec.accepts("trimap"):
        given["trimap"] = item["trimap"]
    if item.get("scribbles") and spec.accepts("scribbles"):
        exclusive = "scribbles" in spec.one_of_inputs and "trimap" in spec.one_of_inputs
        if not (exclusive and "trimap" in given):
            given["scribbles"] = item["scribbles"]
    if item.get("background") and spec.accepts("background"):
        given["background"] = item["background"]
    return given


def compute(payload: dict):
    """Run the task's method on its image: (result, image, metrics or None, session created?)."""
    from .. import io, metrics

    item = payload["item"]
    if item.get("problem"):
        raise MattingError(item["problem"])
    session, created = session_for(payload["method"], payload["params"])
    image = io.load_image(item["image"])
    result = session.run(image, **_inputs_for(session.spec, item))
    scores = None
    if item.get("gt"):
        gt = io.load_alpha(item["gt"], image.shape)
        region = io.load_trimap(item["trimap"], image.shape) if item.get("trimap") else None
        scores = metrics.all_metrics(result.alpha, gt, trimap=region)
        scores["region"] = "unknown pixels of the trimap" if region is not None else "whole image"
    return result, image, scores, (session.load_seconds if created else None)


def run_task(payload: dict) -> dict:
    """Run one task and write its outputs, failure record or done marker; return its record."""
    from ..export import save_result

    folder = Path(payload["folder"])
    item = payload["item"]
    record = {
        "key": payload["key"], "method": payload["method"], "label": payload["label"], "params": payload["params"],
        "image": item["key"].rsplit("/", 1)[-1], "item": item["key"], "variant": item.get("variant", ""),
        "fingerprint": payload["fingerprint"], "run_id": uuid.uuid4().hex,
        "host": socket.gethostname(), "pid": os.getpid(), "worker": _worker_address(),
        "started_at": time.time(),
    }
    (folder / DONE_MARKER).unlink(missing_ok=True)
    try:
        result, image, scores, load_seconds = compute(payload)
        save = payload.get("save") or {}
        written = save_result(result, image, folder, backdrop=save.get("backdrop", "checkerboard"),
                              colour=save.get("colour", "#00b140"))
        record.update(status="ok", seconds=result.seconds, timings=result.timings, load_seconds=load_seconds,
                      session_created=load_seconds is not None, peak_memory_mb=round(result.peak_memory_bytes / 2**20, 1),
                      outputs=sorted(str(Path(p).relative_to(folder)) for p in written.values()),
                      warnings=result.warnings, finished_at=time.time())
        if scores is not None:
            record["metrics"] = scores
        (folder / FAILED_RECORD).unlink(missing_ok=True)
        _write_json(folder / DONE_MARKER, record)  # last: the task is done only once this exists
    except Exception as exc:  # noqa: BLE001 - a task's failure is recorded, the batch goes on
        record.update(status="failed", error=str(exc) or type(exc).__name__, error_type=type(exc).__name__,
                      finished_at=time.time())
        if not isinstance(exc, MattingError):
            record["traceback"] = traceback.format_exc()
        try:
            _write_json(folder / FAILED_RECORD, record)
        except OSError:
            pass
    return record


try:  # the worker plugin: optional only so that ``--scheduler none`` never needs distributed
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover
    WorkerPlugin = object


class SessionCachePlugin(WorkerPlugin):
    """Registered on every worker by :func:`matting.batch.run_batch`: imports the package when a worker
    starts (so the first task does not pay for it, and a worker without the package fails at once).
    It leaves the session cache alone on teardown: every run registers the plugin again, which tears
    the previous one down, and the networks must survive that (they go with the worker process)."""

    name = "matting-session-cache"

    def setup(self, worker=None):
        import matting  # noqa: F401  (registers the methods)
