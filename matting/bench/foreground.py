"""The multi-level foreground estimate: ours (matting.foreground) against pymatting's, same inputs.

``python -m matting.bench foreground [--rounds N] [--sides 512 1024 …]``: per size, both run
interleaved in one process on a photo and a soft alpha (a disc with a wide ramp), after one warm-up
each: ours with its default thread count (two on an idle two-core machine, see
:func:`matting.foreground.estimate_foreground_ml`), ours on one thread, and pymatting. The table gives
median ms, the ratios to pymatting and whether all three results are equal to the bit (they must be:
the same arithmetic in the same order).
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np

from .rounds import seconds_of, time_rounds


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
             "ours_1": lambda: ours(image, alpha, return_background=True, threads=1),
             "pymatting": lambda: theirs(image, alpha, return_background=True)}
    results = {who: call() for who, call in calls.items()}  # warm-up (numba kernels) and the equality check
    names = list(calls)
    times = dict(zip(names, time_rounds([lambda call=calls[who]: seconds_of(call) for who in names], rounds)))
    equal = all(np.array_equal(a, b) for who in ("ours", "ours_1")
                for a, b in zip(results[who], results["pymatting"]))
    medians = {who: 1000 * statistics.median(t) for who, t in times.items()}
    return {"side": side, **medians, "ratio": medians["ours"] / medians["pymatting"],
            "ratio_1": medians["ours_1"] / medians["pymatting"], "equal": equal}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench foreground", description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 1024])
    args = parser.parse_args(argv)
    from ..threads import solver_threads

    print(f"ours: default threads (now {solver_threads()}) and one thread")
    print("| size | ours ms | ours 1 thread ms | pymatting ms | ours / pymatting | 1 thread / pymatting "
          "| equal to the bit |")
    print("|---|---|---|---|---|---|---|")
    failed = False
    for side in args.sides:
        row = compare(side, args.rounds)
        failed |= not row["equal"]
        print(f"| {side}² | {row['ours']:.1f} | {row['ours_1']:.1f} | {row['pymatting']:.1f} | {row['ratio']:.2f} "
              f"| {row['ratio_1']:.2f} | {'yes' if row['equal'] else 'NO'} |", flush=True)
    return 1 if failed else 0
