"""The ``batch`` and ``eval`` sub-commands of ``python -m matting`` (added through ``COMMAND_MODULES``).

``batch`` runs every method on every image of a folder, glob, manifest or dataset on Dask;
``eval`` does the same on images with ground truth and writes the metrics table, summaries and plots.
``eval METHOD --data DIR [--trimap trimap1|trimap2|both] [--limit N] [-p k=v] [--json FILE]`` works
as before (now on Dask, several methods allowed).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ..errors import MattingError

SCHEDULER_HELP = ("none (in this process, one task after the other), local (default: a Dask LocalCluster of "
                  "worker processes sized to this machine) or the address of an existing Dask scheduler, "
                  "e.g. tcp://host:8786 (its workers need this package and the same file paths)")


def _parse_param(text: str):
    from ..cli import parse_param

    return parse_param(text)


def method_runs(texts: list[str], global_params: list[str]):
    """Method runs from ``ID`` / ``ID:k=v,k=v`` texts plus ``-p k=v`` given to every method that has k."""
    from ..registry import get
    from .tasks import MethodRun, parse_method

    shared = dict(_parse_param(p) for p in global_params)
    runs = [parse_method(t, _parse_param) for t in texts]
    used = set()
    result = []
    for run in runs:
        names = {p.name for p in get(run.method).params}
        extra = {k: v for k, v in shared.items() if k in names and k not in run.params}
        used |= set(extra) | (set(shared) & set(run.params))
        # the label is the method and its own parameters; -p values shared by all do not rename folders
        result.append(MethodRun(run.method, {**extra, **run.params}, run.label))
    unused = sorted(set(shared) - used)
    if unused:
        raise MattingError(f"No method given has the parameter {', '.join(map(repr, unused))}.")
    return result


def _add_common(p, scheduler_default="local"):
    p.add_argument("methods", nargs="+", metavar="METHOD",
                   help="method id, or ID:name=value,name=value for its parameters; several allowed")
    p.add_argument("--image", help="folder of images, a glob ('photos/*.jpg') or a manifest (.csv / .jsonl with the "
                                   "columns image, trimap, scribbles, background, gt)")
    p.add_argument("--manifest", help="a manifest file (same as --image FILE.csv)")
    p.add_argument("--data", help="an alphamatting.com-style folder: input/, trimap1/, trimap2/, gt/")
    p.add_argument("--scribbles", help="scribbles folder (same file stems as the images) or one file")
    p.add_argument("--background", help="background plates folder (same file stems) or one file")
    p.add_argument("--gt", help="ground-truth alphas folder (same file stems) or one file: metrics per task")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="parameter for every method that has it, repeatable")
    p.add_argument("--scheduler", default=scheduler_default, help=SCHEDULER_HELP)
    p.add_argument("--workers", type=int, help="LocalCluster workers (default: one per core, at most one per task)")
    p.add_argument("--threads-per-worker", type=int, default=1, help="threads per LocalCluster worker (default 1)")
    p.add_argument("--rerun", action="store_true", help="run finished tasks again (default: skip them, resume)")
    p.add_argument("--retries", type=int, default=1, help="Dask retries of a task that raised outside the method")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _items(args, trimap_sets):
    from .tasks import find_items, items_from_dataset

    sources = [s for s in (args.image, args.manifest, args.data) if s]
    if len(sources) != 1:
        raise MattingError("Give exactly one of --image (folder, glob or manifest), --manifest or --data.")
    if args.data:
        return items_from_dataset(args.data, trimap_sets, getattr(args, "limit", None))
    items = find_items(args.image or args.manifest, trimap=args.trimap, scribbles=args.scribbles,
                       background=args.background, gt=args.gt)
    limit = getattr(args, "limit", None)
    return items[:limit] if limit else items


def _trimap_sets(args):
    if args.trimap in (None, "both"):
        return ("trimap1", "trimap2")
    return (args.trimap,)


def _options(args) -> dict:
    return {"scheduler": args.scheduler, "n_workers": args.workers, "threads_per_worker": args.threads_per_worker,
            "resume": not args.rerun, "retries": args.retries, "progress": not args.no_progress}


def cmd_batch(args) -> int:
    from .run import run_batch

    runs = method_runs(args.methods, args.param)
    items = _items(args, _trimap_sets(args))
    try:
        report = run_batch(items, runs, args.out, backdrop=args.backdrop, colour=args.colour, **_options(args))
    except KeyboardInterrupt:
        print("Interrupted: run the same command again to finish (finished tasks are kept).", file=sys.stderr)
        return 130
    print(report.summary())
    return 1 if report.failures else 0


def _print_table(evaluation) -> None:
    import numpy as np

    from ..cli import format_table
    from .evaluate import UNITS, VALUES

    def cell(value):
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"

    table, summary = evaluation.table, evaluation.summary
    rows = []
    for r in table.to_dict("records"):
        if r["status"] == "ok":
            rows.append([r["label"], r["image"], r["variant"]] + [cell(r[k]) for k in VALUES])
        else:
            rows.append([r["label"], r["image"], r["variant"], f"failed: {r['error']}"] + [""] * (len(VALUES) - 1))
    for s in summary.to_dict("records"):
        for stat in ("mean", "median"):
            rows.append([s["label"], stat, s["variant"]] + [cell(s[f"{k}_{stat}"]) for k in VALUES])
    print(format_table(rows, ["method", "image", "trimap"] + [UNITS[k] for k in VALUES]))


def cmd_eval(args) -> int:
    import json

    from .evaluate import evaluate, jsonable_rows

    runs = method_runs(args.methods, args.param)
    if args.data and args.trimap not in (None, "both", "trimap1", "trimap2") and not Path(args.data, args.trimap).is_dir():
        raise MattingError(f"With --data, --trimap names a trimap set (trimap1, trimap2 or both); got {args.trimap!r}.")
    items = _items(args, _trimap_sets(args))
    if not any(i.gt for i in items):
        raise MattingError("None of the images has a ground-truth alpha; evaluation needs one (--gt or --data).")
    with tempfile.TemporaryDirectory(prefix="matting-eval-") as scratch:
        out = Path(args.out) if args.out else Path(scratch)
        try:
            evaluation = evaluate(runs, out, items=items, plots=not args.no_plots, write=bool(args.out),
                                  **_options(args))
        except KeyboardInterrupt:
            print("Interrupted: run the same command again to finish (finished tasks are kept).", file=sys.stderr)
            return 130
        _print_table(evaluation)
        if args.json:
            Path(args.json).write_text(json.dumps(jsonable_rows(evaluation.table), indent=2) + "\n")
        if args.out:
            print(f"Results, summary and plots in {out}: " + ", ".join(evaluation.files))
        failures = evaluation.report.failures
        if failures:
            print(f"{len(failures)} failed: " + "; ".join(f"{r['key']}: {r.get('error')}" for r in failures),
                  file=sys.stderr)
    return 1 if failures else 0


def add_commands(subparsers) -> dict:
    from .. import composite

    p = subparsers.add_parser(
        "batch", help="every method on every image of a folder, glob or manifest, on Dask; resumable",
        description="One task per (image, method), outputs in OUT/<method>/<image>/ (alpha.png, …, done.json). "
                    "Re-running the command skips finished tasks; failures are recorded and listed.")
    _add_common(p)
    p.add_argument("--trimap", help="trimaps folder (same file stems as the images) or one file; "
                                    "with --data: trimap1, trimap2 or both")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--backdrop", default="checkerboard", choices=composite.BACKDROPS[:2] + ("blur",))
    p.add_argument("--colour", default="#00b140", help="backdrop colour for --backdrop colour")

    p = subparsers.add_parser(
        "eval", help="SAD/MSE/Grad/Conn and time of methods on images with ground truth, on Dask",
        description="Per image × method SAD/MSE/Grad/Conn and time; with --out also results.csv/.jsonl, "
                    "summary.csv/.json and plots (sad_boxplot.png, time_vs_sad.png), resumable.")
    _add_common(p)
    p.add_argument("--trimap", default=None,
                   help="with --data: trimap1, trimap2 or both (default); else a trimaps folder or file")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--json", help="also write per-image rows to this JSON file")
    p.add_argument("--out", help="keep task outputs, tables and plots here (default: a temporary folder, "
                                 "only the printed table)")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots")
    return {"batch": cmd_batch, "eval": cmd_eval}

