"""Batch throughput: tasks/s of ``run_batch`` with ``--scheduler none`` against a LocalCluster.

Synthetic composites (``--images`` of ``--size`` px, with trimaps) are written to a temporary folder; for
each method the batch runs

* ``none``, cold — in this process, including loading the method (the network) once;
* ``none``, warm — the same again with finished tasks re-run (``resume=False``): the session is cached;
* ``local``, cold — ``scheduler="local"``: starting the LocalCluster (worker processes import the
  package), loading the method once per worker, the tasks;
* ``local``, warm — the same cluster again (``resume=False``): what a long run approaches.

On N cores the warm LocalCluster can reach at most about N× the in-process rate, less when the
in-process run already uses several cores (PyTorch's intra-op threads, BLAS) — a Dask worker runs
with ``OMP_NUM_THREADS=1`` — and less for tiny tasks, where scheduling and writing PNGs dominate.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from .. import io
from ..synthetic import make_composite

DEFAULT_METHODS = ("closed_form", "u2netp")


def write_images(folder: Path, count: int, size: int) -> Path:
    for sub in ("input", "trimap"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        scene = make_composite(size, size, seed=index, edge=max(2.0, size / 40), strands=2)
        io.save_png(folder / "input" / f"img{index:03d}.png", scene.image)
        io.save_png(folder / "trimap" / f"img{index:03d}.png", scene.trimap(max(2, size // 40)))
    return folder


def measure(method: str, data: Path, out: Path, scheduler, resume: bool, n_workers=None) -> dict:
    from ..batch import run_batch

    start = time.perf_counter()
    report = run_batch(data / "input", [method], out, trimap=data / "trimap", scheduler=scheduler,
                       n_workers=n_workers, resume=resume, progress=False, dashboard=False)
    seconds = time.perf_counter() - start
    if report.failures:
        raise SystemExit(f"{method}: {report.failures[0]['error']}")
    return {"tasks": len(report.ran), "seconds": seconds, "tasks_per_s": len(report.ran) / seconds,
            "workers": report.workers}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="side of the square synthetic images, pixels")
    parser.add_argument("--workers", type=int, help="LocalCluster workers (default: one per core)")
    args = parser.parse_args(argv)

    import os

    from distributed import Client, LocalCluster

    from ..cli import format_table
    from ..batch.run import default_workers

    workers = args.workers or default_workers()
    rows = []
    with tempfile.TemporaryDirectory(prefix="matting-bench-batch-") as scratch:
        data = write_images(Path(scratch) / "data", args.images, args.size)
        for method in args.methods:
            out = Path(scratch) / method
            results = {
                ("none", "cold"): measure(method, data, out / "none", "none", True),
                ("none", "warm"): measure(method, data, out / "none", "none", False),
            }
            start = time.perf_counter()
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
                startup = time.perf_counter() - start
                cold = measure(method, data, out / "local", client, True)
                cold["seconds"] += startup
                cold["tasks_per_s"] = cold["tasks"] / cold["seconds"]
                results[("local", "cold")] = cold
                results[("local", "warm")] = measure(method, data, out / "local", client, False)
            base = results[("none", "warm")]["tasks_per_s"]
            for (scheduler, state), r in results.items():
                rows.append([method, scheduler, state, str(r["workers"] if scheduler == "local" else 1),
                             str(r["tasks"]), f"{r['seconds']:.2f}", f"{r['tasks_per_s']:.2f}",
                             f"{r['tasks_per_s'] / base:.2f}×"])
    print(f"{args.images} images of {args.size}×{args.size} px; {os.cpu_count()} CPUs seen, "
          f"{default_workers()} usable; LocalCluster: {workers} single-threaded worker processes")
    print(format_table(rows, ["method", "scheduler", "state", "workers", "tasks", "seconds", "tasks/s",
                              "vs none warm"]))
    return 0
