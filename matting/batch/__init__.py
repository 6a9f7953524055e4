"""Dataset-scale batch runs and evaluation on Dask: every method × every image, resumable.

>>> from matting.batch import run_batch, evaluate                              # doctest: +SKIP
>>> report = run_batch("photos/", ["closed_form", "knn"], "out/", trimap="trimaps/")   # doctest: +SKIP
>>> report = run_batch(items, methods, "out/", scheduler="tcp://host:8786")   # doctest: +SKIP
>>> table = evaluate(["closed_form", "u2netp_closed_form"], "out/", data="alphamatting_dev/")  # doctest: +SKIP

One task per (image, method) (:mod:`~matting.batch.tasks`), run by :func:`~matting.batch.worker.run_task`
on Dask workers that keep their loaded networks (:mod:`~matting.batch.worker`), scheduled in-process, on
a LocalCluster or on an existing cluster (:mod:`~matting.batch.run`); metrics tables, summaries and plots
in :mod:`~matting.batch.evaluate`; the ``batch`` and ``eval`` commands in :mod:`~matting.batch.cli`.
"""
from .run import BatchReport, run_batch
from .tasks import Item, MethodRun, Task, find_items, items_from_dataset, items_from_manifest, make_tasks

__all__ = ["BatchReport", "run_batch", "evaluate", "Item", "MethodRun", "Task", "find_items",
           "items_from_dataset", "items_from_manifest", "make_tasks"]


def evaluate(*args, **kwargs):
    """See :func:`matting.batch.evaluate.evaluate` (imported lazily: pandas and matplotlib)."""
    from .evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)
