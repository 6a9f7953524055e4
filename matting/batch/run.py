"""Scheduling a batch on Dask: in-process, a LocalCluster, or an existing cluster by its address.

:func:`run_batch` turns items × method runs into tasks, skips those whose done marker matches
(resumable), submits one Dask task per remaining (image, method) and collects the records as they
finish, with a tqdm bar. What each scheduler means:

``"none"``
    today's behaviour: the tasks run one after the other in this process (same task function, same
    files), nothing of Dask is imported.
``"local"`` (default)
    a ``distributed.LocalCluster`` of worker *processes* sized to the machine (one single-threaded worker
    per core, never more workers than tasks). Dask's nanny starts workers with ``OMP_NUM_THREADS=1``, so
    a network in a worker uses one core where the in-process run lets PyTorch use all of them.
``"tcp://host:8786"`` (any address with ``://``, or ``host:port``)
    an existing cluster (``dask scheduler`` + ``dask worker`` on other machines, dask-jobqueue,
    dask-kubernetes, …). Its workers need this package installed and must see the input files and the
    output folder at the same paths (a shared file system).
a ``distributed.Client``
    the package function also takes a client you already have (it is left open).

A worker that dies mid-task (killed, out of memory) is survived: the scheduler runs its tasks again on
another worker (up to ``distributed.scheduler.allowed-failures`` times, default 3; after that the task is
recorded as failed). Tasks whose own code fails are not retried — the error is deterministic and is
recorded with its message (see :mod:`matting.batch.worker`).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MattingError
from .tasks import FAILED_RECORD, Item, MethodRun, Task, find_items, is_done, make_tasks, safe_name
from .worker import run_task

SUMMARY_FILES = ("tasks.jsonl", "failures.jsonl", "batch.json")


@dataclass
class BatchReport:
    """What a batch run did. ``records`` holds one record per task (in task order), each with ``status``
    ``ok`` or ``failed`` and ``skipped: True`` for a task found done from an earlier run."""

    out: Path
    records: list[dict]
    scheduler: str
    seconds: float
    workers: int = 1
    dashboard: str | None = None
    interrupted: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ran(self) -> list[dict]:
        return [r for r in self.records if not r.get("skipped")]

    @property
    def skipped(self) -> list[dict]:
        return [r for r in self.records if r.get("skipped")]

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.records if r.get("status") == "failed"]

    @property
    def succeeded(self) -> list[dict]:
        return [r for r in self.records if r.get("status") == "ok"]

    @property
    def tasks_per_second(self) -> float:
        return len(self.ran) / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        ran_ok = len([r for r in self.ran if r.get("status") == "ok"])
        lines = [f"{len(self.records)} tasks: {ran_ok} done now, {len(self.skipped)} already done, "
                 f"{len(self.failures)} failed ({self.seconds:.1f} s, scheduler {self.scheduler}"
                 f"{f', {self.workers} worker' + 's' * (self.workers != 1) if self.scheduler != 'none' and self.ran else ''}). "
                 f"Outputs in {self.out}"]
        if self.interrupted:
            lines.append("Interrupted: run the same command again to finish (finished tasks are kept).")
        if self.failures:
            lines.append("Failures:")
            lines += [f"  {r['key']}: {r.get('error', '?')}" for r in self.failures]
        return "\n".join(lines)


def as_method_runs(methods) -> list[MethodRun]:
    """Method runs from 'id', MethodRun, (id, params) or {label: (id, params)}; parameters checked now."""
    from ..registry import get
    from ..runner import validate_params

    if isinstance(methods, (str, MethodRun)) or (isinstance(methods, tuple) and len(methods) == 2
                                                and isinstance(methods[1], dict)):
        methods = [methods]
    if isinstance(methods, dict):
        runs = [MethodRun(m, dict(p), label) for label, (m, p) in methods.items()]
    else:
        runs = []
        for m in methods:
            if isinstance(m, MethodRun):
                runs.append(m)
            elif isinstance(m, str):
                runs.append(MethodRun(m))
            else:
                runs.append(MethodRun(m[0], dict(m[1])))
    if not runs:
        raise MattingError("Name at least one method.")
    for run in runs:
        spec = get(run.method)
        if spec.unavailable:
            raise MattingError(f"{spec.name} cannot run here: {spec.unavailable}")
        validate_params(spec, run.params)  # parameter errors before any task is sent
    return runs


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _has_dashboard_support() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def connect(scheduler, n_workers: int | None = None, threads_per_worker: int = 1, dashboard: bool = True,
            tasks: int | None = None):
    """(client, close) for a scheduler spec; (None, no-op) for ``"none"``."""
    if scheduler is None or scheduler == "none":
        return None, lambda: None
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler, lambda: None
    if hasattr(scheduler, "scheduler_address"):  # a cluster object (LocalCluster, a jobqueue cluster, ...)
        client = Client(scheduler)
        return client, client.close
    if scheduler == "local":
        from distributed import LocalCluster

        workers = n_workers or default_workers()
        if tasks:
            workers = max(1, min(workers, tasks))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=":8787" if dashboard and _has_dashboard_support() else None,
                               silence_logs=logging.CRITICAL)  # task errors are in the records
        client = Client(cluster)

        def close():
            client.close()
            cluster.close()

        return client, close
    address = str(scheduler)
    if "://" not in address and ":" not in address:
        raise MattingError(f"--scheduler takes none, local or a scheduler address such as tcp://host:8786; got {address!r}.")
    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise MattingError(f"Could not reach the Dask scheduler at {address}: {exc}") from None
    return client, client.close


def _dashboard_link(client) -> str | None:
    """The dashboard's address when the scheduler serves one (its HTTP server needs bokeh for it); the
    check is a lambda so that it travels by value to a scheduler without this package."""
    try:
        info = client.scheduler_info()
        if "dashboard" not in info.get("services", {}) or not client.run_on_scheduler(
                lambda: __import__("importlib.util").util.find_spec("bokeh") is not None):
            return None
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - a dashboard is a nicety
        return None


def _write_jsonl(path: Path, records: list[dict]) -> None:
    from ..io import write_bytes_atomically

    text = "".join(json.dumps(r, default=str) + "\n" for r in records)
    write_bytes_atomically(path, text.encode("utf-8"))


def _lost_record(task: Task, exc: BaseException, out) -> dict:
    """A task whose Dask future failed outside the task function (worker died too often, an import error)."""
    name = type(exc).__name__
    message = str(exc) or name
    if isinstance(exc, ImportError):
        message += " (the Dask workers need this package installed)"
    if name == "KilledWorker":
        message = (f"the worker running it died {message and '(' + message + ') '}too many times "
                   "(out of memory, a crash or killed)")
    record = {"key": task.key, "method": task.run.method, "label": task.run.label, "params": task.run.params,
              "image": task.item.name, "item": task.item.key, "variant": task.item.variant,
              "fingerprint": task.fingerprint(), "status": "failed", "error": message, "error_type": name,
              "finished_at": time.time()}
    try:
        folder = task.folder(out)
        from ..io import write_bytes_atomically

        write_bytes_atomically(folder / FAILED_RECORD, (json.dumps(record, indent=2, default=str) + "\n").encode())
    except OSError:
        pass
    return record


def run_batch(items, methods, out, *, scheduler="local", n_workers: int | None = None,
              threads_per_worker: int = 1, resume: bool = True, progress: bool = True, retries: int = 1,
              backdrop: str = "checkerboard", colour: str = "#00b140", dashboard: bool = True,
              trimap=None, scribbles=None, background=None, gt=None, stream=None) -> BatchReport:
    """Run every method on every item; outputs in ``out/<method label>/<item key>/``.

    ``items``: a list of :class:`~matting.batch.tasks.Item`, or a folder, glob or manifest path (then
    ``trimap``/``scribbles``/``background``/``gt`` name partner folders or files, as for the CLI).
    ``methods``: method ids, :class:`~matting.batch.tasks.MethodRun`, ``(id, params)`` pairs or
    ``{label: (id, params)}``. ``scheduler``: ``"none"``, ``"local"``, a scheduler address, a
    ``distributed.Client`` or a cluster object. ``resume=False`` runs finished tasks again.
    """
    stream = stream or sys.stderr
    out = Path(out)
    runs = as_method_runs(methods)
    if not isinstance(items, (list, tuple)):
        items = find_items(items, trimap=trimap, scribbles=scribbles, background=background, gt=gt)
    tasks = make_tasks(list(items), runs)
    if not tasks:
        raise MattingError("Nothing to run: no images.")
    out.mkdir(parents=True, exist_ok=True)
    save = {"backdrop": backdrop, "colour": colour}

    records: dict[str, dict] = {}
    todo = []
    for task in tasks:
        done = is_done(task, out) if resume else None
        if done is not None:
            records[task.key] = {**done, "skipped": True}
        else:
            todo.append(task)

    from tqdm import tqdm

    start = time.perf_counter()
    client, close = (None, lambda: None)
    label = "none" if scheduler is None else (scheduler if isinstance(scheduler, str) else type(scheduler).__name__)
    workers = 1
    link = None
    interrupted = False
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="task", desc="batch", disable=not progress,
               file=stream, dynamic_ncols=True)
    try:
        if todo:
            client, close = connect(scheduler, n_workers, threads_per_worker, dashboard, tasks=len(todo))
        if client is not None and not isinstance(scheduler, str):
            label = client.scheduler.address
        if client is None:
            for task in todo:
                record = run_task(task.payload(out, save))
                records[task.key] = record
                bar.update(1)
                if record["status"] == "failed":
                    bar.set_postfix(failed=sum(r["status"] == "failed" for r in records.values()))
        else:
            from distributed import as_completed

            from .worker import SessionCachePlugin

            try:
                client.register_plugin(SessionCachePlugin())
            except Exception as exc:  # noqa: BLE001 - e.g. workers without this package
                raise MattingError(f"The Dask workers cannot run matting tasks ({type(exc).__name__}: {exc}); "
                                   "install this package on every worker.") from None
            workers = len(client.scheduler_info().get("workers", {})) or 1
            link = _dashboard_link(client)
            if link:
                bar.write(f"Dask dashboard: {link}", file=stream)
            batch_id = uuid.uuid4().hex[:8]
            by_future = {}
            for task in todo:
                future = client.submit(run_task, task.payload(out, save), pure=False, retries=retries,
                                       key=f"matting-{safe_name(task.key)}-{batch_id}")
                by_future[future] = task
            failed = 0
            for future in as_completed(list(by_future)):
                task = by_future.pop(future)
                try:
                    record = future.result()
                except Exception as exc:  # noqa: BLE001 - recorded like a task's own failure
                    record = _lost_record(task, exc, out)
                records[task.key] = record
                future.release()
                bar.update(1)
                if record["status"] == "failed":
                    failed += 1
                    bar.set_postfix(failed=failed)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        close()
    seconds = time.perf_counter() - start
    ordered = [records[t.key] for t in tasks if t.key in records]
    report = BatchReport(out=out, records=ordered, scheduler=label, seconds=seconds, workers=workers,
                         dashboard=link, interrupted=interrupted)
    _write_jsonl(out / "tasks.jsonl", ordered)
    _write_jsonl(out / "failures.jsonl", report.failures)
    from ..io import write_bytes_atomically

    write_bytes_atomically(out / "batch.json", (json.dumps({
        "tasks": len(tasks), "done_now": len([r for r in report.ran if r["status"] == "ok"]),
        "already_done": len(report.skipped), "failed": len(report.failures),
        "not_finished": len(tasks) - len(ordered), "seconds": round(seconds, 3), "scheduler": label,
        "workers": workers, "methods": [{"label": r.label, "method": r.method, "params": r.params} for r in runs],
    }, indent=2, default=str) + "\n").encode())
    if interrupted:
        raise KeyboardInterrupt
    return report
