"""Interleaved timing rounds, shared by the benchmarks that compare implementations in one process.

Every round runs each candidate once, in an order shuffled afresh each round (seeded, so a rerun
takes the same orders), after a short pause (:data:`SETTLE_S`). Both matter because thread pools
keep their workers spinning for a while after a call returns (onnxruntime's default, libgomp's
OpenMP threads under torch), and a spinning pool slows whatever runs next on the same cores. With
the order only rotated each round, every candidate follows the same neighbour in all but one
position of the cycle, so it pays for that neighbour's spin in nearly every round. Measured on 2 idle
cores (U²-NetP's onnx at 320², five onnxruntime sessions of the same graph): a no-spin session right
after a default-spin one ran 1.10–1.16× the default-spin session; with 30 ms before each run, all
five were within ±3 % of each other.
"""
from __future__ import annotations

import random
import time
from typing import Callable, Sequence

__all__ = ["SETTLE_S", "seconds_of", "time_rounds"]

# Pause before each timed call: longer than the spin of any pool used here (well under a
# millisecond to a few ms), short against the calls timed (tens of ms and more).
SETTLE_S = 0.03


def seconds_of(call: Callable[[], object]) -> float:
    """Wall seconds of one ``call()``."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def time_rounds(calls: Sequence[Callable[[], float]], rounds: int, *, settle_s: float = SETTLE_S,
                seed: int = 0) -> list[list[float]]:
    """Run ``rounds`` rounds of every call in ``calls`` (each one timed call that returns its own
    seconds: what it times is up to the caller, e.g. including a device synchronisation), in a
    shuffled order per round with ``settle_s`` of sleep before each; returns the seconds per call,
    in round order."""
    order_source = random.Random(seed)
    seconds: list[list[float]] = [[] for _ in calls]
    order = list(range(len(calls)))
    for _ in range(rounds):
        order_source.shuffle(order)
        for index in order:
            if settle_s > 0:
                time.sleep(settle_s)
            seconds[index].append(calls[index]())
    return seconds
