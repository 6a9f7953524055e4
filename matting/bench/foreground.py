"""The multi-level foreground estimate: ours (matting.foreground) against pymatting's, same inputs.

``python -m matting.bench foreground [--rounds N] [--sides 512 1024 …]``: per size, both run
interleaved in one process on a photo and a soft alpha (a disc with a wide ramp), after one warm-up
each; the table gives median ms, the ratio ours / pymatting and whether the results are equal to the
bit (they must be: the same arithmetic in the same order).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def scene(side: int):
    """A side × side photo (scikit-image's astronaut, resized) and a soft round alpha, float32."""
    from .end_to_end import photo

    image = photo(side).astype(np.float32) / 255.0
    yy, xx = np.mgrid[:side, :side]
    alpha = np.clip(1.5 - np.hypot(yy - side / 2, xx - side / 2) / (side / 5), 0.0, 1.0).astype(np.float32)
    return image, alpha


def compare(side: int, rounds: int) -> dict:
    from pymatting import estimate_foreground_ml as theirs

    from ..foreground import estimate_foreground_ml as ours

    image, alpha = scene(side)
    calls = {"ours": lambda: ours(image, alpha, return_background=True),
             "pymatting": lambda: theirs(image, alpha, return_background=True)}
    results = {who: call() for who, call in calls.items()}  # warm-up (numba kernels) and the equality check
    times = {who: [] for who in calls}
    for index in range(rounds):
        for who in (("ours", "pymatting"), ("pymatting", "ours"))[index % 2]:
            start = time.perf_counter()
            calls[who]()
            times[who].append(time.perf_counter() - start)
    equal = all(np.array_equal(a, b) for a, b in zip(results["ours"], results["pymatting"]))
    medians = {who: 1000 * statistics.median(t) for who, t in times.items()}
    return {"side": side, **medians, "ratio": medians["ours"] / medians["pymatting"], "equal": equal}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench foreground", description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 1024])
    args = parser.parse_args(argv)
    print("| size | ours ms | pymatting ms | ours / pymatting | equal to the bit |")
    print("|---|---|---|---|---|")
    failed = False
    for side in args.sides:
        row = compare(side, args.rounds)
        failed |= not row["equal"]
        print(f"| {side}² | {row['ours']:.1f} | {row['pymatting']:.1f} | {row['ratio']:.2f} | "
              f"{'yes' if row['equal'] else 'NO'} |", flush=True)
    return 1 if failed else 0
