"""U²-NetP end to end vs onnxruntime's bare forward, and the first run in a fresh process.

``python -m matting.bench end_to_end [--rounds N]`` on its own, and the last part of
``python -m matting.bench models`` (see its docstring).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from .. import weights
from ..paths import PROJECT_ROOT
from .rounds import seconds_of, time_rounds

FRESH_PROCESS = r"""
import json, sys, time
start = time.perf_counter()
import numpy as np
import matting
imported = time.perf_counter()
image = np.load(sys.argv[1])
result = matting.run("u2netp", image, foreground=sys.argv[2])
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "first_run_s": done - imported, "torch": "torch" in sys.modules}))
"""


def photo(side: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    image = data.astronaut()  # 512×512 RGB, public domain
    if image.shape[0] != side:
        image = (resize(image, (side, side), order=1, anti_aliasing=True) * 255).astype(np.uint8)
    return image


def _sessions():
    import onnxruntime as ort

    from ..threads import onnxruntime_threads

    path = str(weights.path("u2netp"))
    default = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = onnxruntime_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    tuned = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return default, tuned


def fresh_process(image: np.ndarray, environment: dict, foreground: str = "none") -> dict:
    with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as handle:
        np.save(handle, image)
    env = {**os.environ, **environment, "PYTHONPATH": str(PROJECT_ROOT)}
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", FRESH_PROCESS, handle.name, foreground], env=env, cwd=str(PROJECT_ROOT),
                               capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    os.unlink(handle.name)
    timings = json.loads(completed.stdout.strip().splitlines()[-1])
    return {**timings, "wall_s": wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench end_to_end", description=__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved timed rounds (default 10)")
    args = parser.parse_args(argv)
    if not weights.usable("u2netp"):
        from ..errors import MattingError

        raise MattingError("U²-NetP's checkpoint is not here: python -m matting.weights fetch u2netp")
    print_end_to_end(args.rounds)
    return 0


def print_end_to_end(rounds: int = 10) -> None:
    import matting
    from ..adapters.u2net import preprocess

    image = photo(512)
    megapixel = photo(1024)
    feed = preprocess(image.astype(np.float32) / 255)
    default, tuned = _sessions()
    name = default.get_inputs()[0].name
    ours = f"ORT bare (ours: {tuned.get_session_options().intra_op_num_threads} thread(s), no spin)"
    runs = {
        "matting.run 512², foreground none": lambda: matting.run("u2netp", image, foreground="none"),
        "matting.run 512² (+ default foreground estimate)": lambda: matting.run("u2netp", image),
        "ORT bare (default options)": lambda: default.run(None, {name: feed}),
        ours: lambda: tuned.run(None, {name: feed}),
        "matting.run 1 MP": lambda: matting.run("u2netp", megapixel),
        "matting.run 512² reference, foreground none": lambda: _reference(image),
    }
    for run in runs.values():
        run()
    keys = list(runs)
    times = dict(zip(keys, time_rounds([lambda run=runs[key]: seconds_of(run) for key in keys], rounds)))
    base = times["ORT bare (default options)"]
    print("\n### U²-NetP end to end vs onnxruntime's bare forward of u2netp.onnx at 320²\n")
    print("| what | median ms | / ORT bare (default options) |")
    print("|---|---|---|")
    for key in keys:
        ratio = statistics.median(a / b for a, b in zip(times[key], base))
        print(f"| {key} | {1000 * statistics.median(times[key]):.0f} | {ratio:.2f} |")

    print("\n### First U²-NetP run in a fresh process (subprocess; 512² photo, foreground none)\n")
    print("| cache, path | import s | first run s | process wall s | torch imported |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as empty_cache:
        cases = [
            ("empty cache (a new machine: conversion + export), fast", {"MATTING_CACHE_DIR": empty_cache}),
            ("warm cache, reference (MATTING_REFERENCE=1)", {"MATTING_REFERENCE": "1"}),
            ("warm cache, fast", {}),
        ]
        for label, environment in cases:
            result = fresh_process(image, environment)
            print(f"| {label} | {result['import_s']:.2f} | {result['first_run_s']:.2f} | {result['wall_s']:.2f} | "
                  f"{'yes' if result['torch'] else 'no'} |",
                  flush=True)


def _reference(image):
    import matting

    previous = os.environ.get("MATTING_REFERENCE")
    os.environ["MATTING_REFERENCE"] = "1"
    try:
        return matting.run("u2netp", image, foreground="none")
    finally:
        if previous is None:
            os.environ.pop("MATTING_REFERENCE")
        else:
            os.environ["MATTING_REFERENCE"] = previous
