"""python -m matting.bench threads: one thread against all cores for each compute library, with the
cores idle and with other processes spinning on them — the measurement behind :mod:`matting.threads`.

For each number of busy processes (``--busy``, default 0 1 2 6: pure-Python loops started before the
timings and killed after), and for each library at 1 thread and at every core, interleaved:

* onnxruntime: U²-NetP's official ONNX at 320² (idle workers not spinning, as the workbench runs it);
* torch: six 32-channel 3×3 convolutions at 160² (the shape of these networks' middle layers);
* numba: pymatting's multi-level foreground estimate on a 512² photo.

Prints the median ms per row, the ratio all-cores / one thread (below 1: more threads won), what
:mod:`matting.threads` picks on this machine, and the torch counts that
:func:`matting.threads.torch_threads` picked in each setting (it follows the machine's state).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from .. import weights
from ..threads import available_cores, onnxruntime_threads, threads, torch_threads


def _onnxruntime_case(count: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = count
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(str(weights.require("u2netp")), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).random((1, 3, 320, 320), np.float32)}
    return lambda: session.run(None, feed)


def _torch_case(count: int):
    import torch

    torch.manual_seed(0)
    layers = torch.nn.Sequential(*[torch.nn.Conv2d(32, 32, 3, padding=1) for _ in range(6)]).eval()
    x = torch.randn(1, 32, 160, 160)

    def run():
        previous = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            with torch.inference_mode():
                layers(x)
        finally:
            torch.set_num_threads(previous)

    return run


def _numba_case(count: int):
    import numba

    from .._pymatting import estimate_foreground_ml

    rng = np.random.default_rng(0)
    image, alpha = rng.random((512, 512, 3)), rng.random((512, 512))

    def run():
        previous = numba.get_num_threads()
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
        try:
            estimate_foreground_ml(image, alpha)
        finally:
            numba.set_num_threads(previous)

    return run


CASES = {"onnxruntime": _onnxruntime_case, "torch": _torch_case, "numba": _numba_case}


def measure(busy: int, cases: dict, rounds: int) -> dict:
    """Median seconds per (library, threads) with ``busy`` spinning processes running, and under
    ``"torch policy"`` the counts :func:`matting.threads.torch_threads` picked before each round."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        if busy:
            time.sleep(1.0)  # let the scheduler spread them
        times = {key: [] for key in cases}
        picked = []
        for _ in range(rounds):
            picked.append(torch_threads())
            for key, run in cases.items():
                started = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - started)
    finally:
        for process in spinners:
            process.kill()
            process.wait()
    return {**{key: float(np.median(values)) for key, values in times.items()}, "torch policy": picked}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench threads", description=__doc__)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2, 6],
                        help="numbers of other processes spinning on the cores")
    parser.add_argument("--libraries", nargs="+", choices=tuple(CASES), default=list(CASES))
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    cores = available_cores()
    counts = sorted({1, cores})
    cases = {}
    for library in args.libraries:
        for count in counts:
            cases[(library, count)] = CASES[library](count)
            cases[(library, count)]()  # warm-up: sessions, kernels, numba's cache
    print(f"{cores} core(s) available; matting.threads picks {threads()} for numba, {torch_threads()} for torch (now), "
          f"{onnxruntime_threads()} for onnxruntime · {time.strftime('%Y-%m-%d %H:%M')}\n")
    header = f"{'library':<13}{'threads':>8}" + "".join(f"{f'{b} busy':>10}" for b in args.busy)
    print(header)
    print("-" * len(header))
    results = {busy: measure(busy, cases, args.rounds) for busy in args.busy}
    for library in args.libraries:
        for count in counts:
            cells = "".join(f"{1000 * results[b][(library, count)]:>8.0f}ms" for b in args.busy)
            print(f"{library:<13}{count:>8}{cells}")
        if len(counts) > 1:
            ratios = "".join(f"{results[b][(library, counts[-1])] / results[b][(library, 1)]:>10.2f}"
                             for b in args.busy)
            print(f"{'':<13}{'ratio':>8}{ratios}")
        if library == "torch":
            picks = "".join(f"{'/'.join(str(c) for c in sorted(set(results[b]['torch policy'])))+' thr':>10}"
                            for b in args.busy)
            print(f"{'':<13}{'picked':>8}{picks}")
    return 0
