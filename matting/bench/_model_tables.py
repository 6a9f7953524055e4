"""The model benchmark's tables: columns, cells, legend (printing only; the measuring is models.py)."""
from __future__ import annotations

import statistics

import numpy as np

TORCH_VARIANTS = ("no_grad", "1 thread", "inference_mode", "+channels_last", "+BN fold", "+both")


COLUMNS = ["model", "input", "params (M)", "GFLOPs", "N", *(f"{name} ms" for name in TORCH_VARIANTS),
           "best ×", "fast ms", "fast backend", "peak MB", "ORT ms", "ours/ORT", "spread %", "max Δ", "BN folded",
           "notes"]


def format_ms(milliseconds: float) -> str:
    return f"{milliseconds:.0f}" if milliseconds >= 100 else f"{milliseconds:.1f}"


def row_cells(row) -> list[str]:
    times, speedups = row.times_ms, row.speedups

    def cell(name):
        if name not in times:
            return "n/a"
        if name == "no_grad":
            return format_ms(times[name])
        return f"{format_ms(times[name])} ({speedups[name]:.2f}×)"

    has_ort = "onnxruntime" in times
    return [
        row.config.label, row.config.input_text, f"{row.params / 1e6:.2f}", f"{row.gflops:.1f}",
        str(row.repeats), *(cell(name) for name in TORCH_VARIANTS),
        f"{max(speedups[name] for name in TORCH_VARIANTS if name in speedups):.2f}",
        f"{format_ms(times['fast'])} ({speedups['fast']:.2f}×)", row.backend, f"{row.peak_mb:.0f}",
        format_ms(times["onnxruntime"]) if has_ort else "",
        f"{speedups['onnxruntime']:.2f}" if has_ort else "",
        f"{100 * statistics.median(row.spreads):.0f} / {100 * max(row.spreads):.0f}",
        f"{row.max_difference:.0e}", row.bn_folded, "; ".join(row.notes),
    ]


def print_table_header() -> None:
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "|".join("---" for _ in COLUMNS) + "|", flush=True)


def print_row(row) -> None:
    print("| " + " | ".join(row_cells(row)) + " |", flush=True)


LEGEND = """
Columns: N = timed rounds after warm-up (all columns interleaved in each round); times are medians.
no_grad = baseline (eval, no_grad, NCHW, default threads); 1 thread = the baseline at
torch.set_num_threads(1); inference_mode, +channels_last and +BN fold are each on their own, +both
combines these three. (k×) = speed-up over no_grad: the median over rounds of no_grad time / column
time in the same round, which cancels most of the drift of a shared machine's load. best × = the
largest of these. peak MB = memory growth during one baseline forward. ORT ms = onnxruntime on
u2netp.onnx; ours/ORT = no_grad time / ORT time (median over rounds). spread % = interquartile
range / median of a column's times, the median and the largest over the columns (timing noise).
max Δ = largest absolute output difference of any column against the baseline forward.
BN folded = BatchNorms folded / all BatchNorms."""


FAST_COLUMNS = ["model", "input", "reference ms", "fast ms", "fast / reference", "backend", "max |Δ|"]


def print_fast_table(rows: list, threads: int) -> None:
    print("\n### Fast path vs reference (the official arithmetic)\n")
    print("| " + " | ".join(FAST_COLUMNS) + " |")
    print("|" + "|".join("---" for _ in FAST_COLUMNS) + "|")
    for row in rows:
        print(f"| {row.config.label} | {row.config.input_text} | {format_ms(row.times_ms['no_grad'])} | "
              f"{format_ms(row.times_ms['fast'])} | {row.fast_ratio:.2f} | {row.backend} | "
              f"{row.fast_difference:.1e} |")
    ratios = [row.fast_ratio for row in rows if row.fast_ratio > 0]
    if ratios:
        geometric = float(np.exp(np.mean(np.log(ratios))))
        print(f"\ngeometric mean of fast / reference: {geometric:.2f} (worst {max(ratios):.2f}); "
              f"threads: {threads}", flush=True)
