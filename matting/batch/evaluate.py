"""Evaluation on top of batch runs: a results table, a summary per method, and plots.

:func:`evaluate` runs every method on every item that has a ground truth (through
:func:`matting.batch.run_batch`, so it is resumable and runs on any scheduler), then

* ``results.csv`` / ``results.jsonl`` — one row per image × method: SAD, MSE, Grad, Conn (the scaling of
  :mod:`matting.metrics`), seconds, status and error;
* ``summary.csv`` / ``summary.json`` — per method (and trimap set): count, failures, mean and median of
  every metric and of the time;
* ``sad_boxplot.png`` — SAD per method as box plots; ``time_vs_sad.png`` — seconds per image against
  SAD, one colour per method (the trade-off people ask about).

Metrics are computed by the worker that ran the task (over the unknown pixels of the trimap when the
item has one, else the whole image) and kept in its ``done.json``, so a re-run does not recompute them.
"""
from __future__ import annotations

import io as _io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MattingError
from ..metrics import METRIC_NAMES, METRIC_UNITS
from .tasks import MethodRun

VALUES = METRIC_NAMES + ("seconds",)
COLUMNS = ("method", "label", "image", "variant", "status") + VALUES + ("error", "key")
UNITS = {**METRIC_UNITS, "seconds": "s/image"}


def results_table(records):
    """A pandas DataFrame, one row per task record (failed tasks keep their error, metrics empty)."""
    import pandas as pd

    rows = []
    for r in records:
        metrics = r.get("metrics") or {}
        row = {"method": r.get("method"), "label": r.get("label"), "image": r.get("image"),
               "variant": r.get("variant", ""), "status": r.get("status"), "error": r.get("error", ""),
               "key": r.get("key")}
        for name in METRIC_NAMES:
            row[name] = metrics.get(name) if r.get("status") == "ok" else None
        row["seconds"] = r.get("seconds") if r.get("status") == "ok" else None
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for name in VALUES:
        table[name] = pd.to_numeric(table[name], errors="coerce")
    return table


def summarise(table):
    """Per method label and variant: images, failures, and mean / median of every metric and the time."""
    import pandas as pd

    groups = []
    for (label, variant), part in table.groupby(["label", "variant"], sort=False, dropna=False):
        ok = part[part["status"] == "ok"]
        row = {"label": label, "method": part["method"].iloc[0], "variant": variant, "images": len(part),
               "failed": int((part["status"] != "ok").sum())}
        for name in VALUES:
            row[f"{name}_mean"] = ok[name].mean() if len(ok) else None
            row[f"{name}_median"] = ok[name].median() if len(ok) else None
        groups.append(row)
    return pd.DataFrame(groups)


def _group_name(label: str, variant: str, variants: int) -> str:
    return f"{label}\n{variant}" if variants > 1 and variant else label


def _save_figure(figure, path: Path) -> Path:
    from ..io import write_bytes_atomically

    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return write_bytes_atomically(path, buffer.getvalue())


def plot_sad_boxplot(table, path) -> Path:
    """One box per method (and trimap set) of the per-image SAD."""
    from matplotlib.figure import Figure

    ok = table[table["status"] == "ok"].dropna(subset=["sad"])
    variants = ok["variant"].nunique()
    groups = [(_group_name(l, v, variants), part["sad"].to_numpy()) for (l, v), part in
              ok.groupby(["label", "variant"], sort=False)]
    figure = Figure(figsize=(max(4.0, 1.2 * len(groups) + 2), 4.0))
    axes = figure.add_subplot()
    if groups:
        axes.boxplot([g[1] for g in groups], showmeans=True)
        axes.set_xticks(range(1, len(groups) + 1), [g[0] for g in groups], rotation=20, ha="right")
    else:
        axes.text(0.5, 0.5, "no successful runs", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylabel(METRIC_UNITS["sad"])
    axes.set_title("SAD per image (lower is better; triangle = mean)")
    axes.grid(axis="y", alpha=0.3)
    return _save_figure(figure, Path(path))


def plot_time_vs_error(table, path, metric: str = "sad") -> Path:
    """Seconds per image (log scale) against the error, one colour per method; big markers = medians."""
    from matplotlib.figure import Figure

    ok = table[table["status"] == "ok"].dropna(subset=[metric, "seconds"])
    variants = ok["variant"].nunique()
    figure = Figure(figsize=(6.0, 4.5))
    axes = figure.add_subplot()
    for index, ((label, variant), part) in enumerate(ok.groupby(["label", "variant"], sort=False)):
        colour = f"C{index % 10}"
        name = _group_name(label, variant, variants).replace("\n", " ")
        axes.scatter(part["seconds"], part[metric], s=18, alpha=0.6, color=colour, label=name)
        axes.scatter([part["seconds"].median()], [part[metric].median()], s=140, marker="X", color=colour,
                     edgecolor="black", linewidth=0.8)
    if len(ok) and (ok["seconds"] > 0).all():
        axes.set_xscale("log")
    axes.set_xlabel("seconds per image")
    axes.set_ylabel(METRIC_UNITS.get(metric, metric))
    axes.set_title(f"Time vs {metric.upper()} (X = median per method)")
    axes.grid(alpha=0.3)
    if len(ok):
        axes.legend(fontsize="small")
    return _save_figure(figure, Path(path))


def write_evaluation(table, summary, folder, plots: bool = True) -> dict[str, Path]:
    """results.csv/.jsonl, summary.csv/.json and the two plots in ``folder``; returns {name: path}."""
    from ..io import write_bytes_atomically

    folder = Path(folder)
    written = {
        "results.csv": write_bytes_atomically(folder / "results.csv", table.to_csv(index=False).encode()),
        "results.jsonl": write_bytes_atomically(
            folder / "results.jsonl", table.to_json(orient="records", lines=True).encode()),
        "summary.csv": write_bytes_atomically(folder / "summary.csv", summary.to_csv(index=False).encode()),
        "summary.json": write_bytes_atomically(
            folder / "summary.json", (summary.to_json(orient="records", indent=2) + "\n").encode()),
    }
    if plots:
        written["sad_boxplot.png"] = plot_sad_boxplot(table, folder / "sad_boxplot.png")
        written["time_vs_sad.png"] = plot_time_vs_error(table, folder / "time_vs_sad.png")
    return written


@dataclass
class Evaluation:
    table: object  # pandas DataFrame, one row per image × method
    summary: object  # pandas DataFrame, one row per method (and trimap set)
    report: object  # the BatchReport
    files: dict = field(default_factory=dict)


def eval_runs(methods) -> list[MethodRun]:
    """Method runs for evaluation: no foreground estimation unless asked (metrics only need alpha);
    labels are those the user's parameters give (``closed_form``, not ``closed_form,foreground=none``)."""
    from .run import as_method_runs

    runs = []
    for run in as_method_runs(methods):
        params = {"foreground": "none", **run.params}
        runs.append(MethodRun(run.method, params, run.label))  # the label made from the user's parameters
    return runs


def evaluate(methods, out, *, data=None, items=None, trimap_sets=("trimap1", "trimap2"), limit: int | None = None,
             plots: bool = True, write: bool = True, **batch_options) -> Evaluation:
    """Run ``methods`` on an alphamatting-style ``data`` folder (or on ``items`` / a source with ground
    truth) into ``out`` and write the results table, summary and plots there (``write=False``: only
    return them). ``batch_options`` go to :func:`matting.batch.run_batch` (``scheduler``, ``n_workers``,
    ``gt``, ``trimap``, …)."""
    from .run import run_batch
    from .tasks import items_from_dataset

    if data is not None:
        items = items_from_dataset(data, trimap_sets, limit)
    if items is None:
        raise MattingError("Give a dataset folder (input/, trimap1/, trimap2/, gt/) or the images with --gt.")
    if isinstance(items, (list, tuple)):
        items = list(items)[:limit] if data is None and limit else items
        if not any(i.gt for i in items):
            raise MattingError("None of the images has a ground-truth alpha; evaluation needs one (--gt).")
    report = run_batch(items, eval_runs(methods), out, **batch_options)
    table = results_table(report.records)
    summary = summarise(table)
    files = write_evaluation(table, summary, out, plots=plots) if write else {}
    return Evaluation(table=table, summary=summary, report=report, files=files)


def jsonable_rows(table) -> list[dict]:
    """The old ``eval --json`` rows: image, trimap, seconds and the metrics (plus method and status)."""
    rows = []
    for row in json.loads(table.to_json(orient="records")):
        rows.append({"method": row["label"], "image": row["image"], "trimap": row["variant"],
                     "status": row["status"], "seconds": row["seconds"],
                     **{k: row[k] for k in METRIC_NAMES}, **({"error": row["error"]} if row["error"] else {})})
    return rows
