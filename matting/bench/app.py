"""The app as a user meets it: cold start, and U²-NetP on a 1-megapixel photo through the HTTP API.

``python -m matting.bench app [--rounds N] [--method ID]``

* **cold start**: ``python app.py`` in a fresh process (its own port), from launch until the page
  answers HTTP 200 — imports, building the Blocks from the registry, the server. Goal ≤ 10 s.
* **one run in the app**: the app's ``/run_automatic`` endpoint through ``gradio_client`` on a
  1024×1024 photo (upload, queue, the run, the PNGs written and sent back), wall time per call,
  interleaved with ``matting.run`` of the same method on the same photo in this process; the ratio
  is the app's overhead. Goal for U²-NetP on 2 cores: ≤ 1.5 s wall.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from ..paths import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def cold_start(timeout: float = 120.0) -> float:
    """Seconds from starting ``python app.py`` until its page answers."""
    port = _free_port()
    environment = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
                   "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(PROJECT_ROOT)}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py"], cwd=str(PROJECT_ROOT), env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode} before it answered")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"app.py did not answer within {timeout:.0f} s")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def app_runs(method_id: str, rounds: int) -> dict[str, list[float]]:
    """Wall seconds of the app's /run_automatic and of matting.run, interleaved, on one 1 MP photo."""
    from gradio_client import Client, handle_file
    from PIL import Image

    import matting
    from ..ui import build_demo, launch_options
    from .end_to_end import photo

    image = photo(1024)
    demo = build_demo()
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True,
                            ssr_mode=False, **launch_options())
    times: dict[str, list[float]] = {"app /run_automatic (gradio_client)": [], "matting.run in process": []}
    try:
        client = Client(url, verbose=False)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "photo.png")
            Image.fromarray(image).save(path)
            calls = {
                "app /run_automatic (gradio_client)":
                    lambda: client.predict(method_id, handle_file(path), api_name="/run_automatic"),
                "matting.run in process": lambda: matting.run(method_id, image),
            }
            for call in calls.values():  # warm-up: load, export or graph, first upload
                call()
            keys = list(calls)
            for index in range(rounds):
                for key in (keys if index % 2 == 0 else keys[::-1]):
                    start = time.perf_counter()
                    calls[key]()
                    times[key].append(time.perf_counter() - start)
    finally:
        demo.close()
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="timed calls per row (default 8)")
    parser.add_argument("--method", default="u2netp", help="an automatic method (default u2netp)")
    parser.add_argument("--cold-starts", type=int, default=3, help="fresh app processes to time (default 3)")
    args = parser.parse_args(argv)
    from .. import weights
    from ..errors import MattingError
    from ..registry import get

    spec = get(args.method)
    if not all(weights.usable(checkpoint) for checkpoint in spec.weights[:1]):
        raise MattingError(f"{args.method}'s checkpoint is not here: python -m matting.weights fetch {spec.weights[0]}")

    print("### App cold start (python app.py until the page answers)\n")
    starts = [cold_start() for _ in range(args.cold_starts)]
    print(f"| runs | median s | min s | max s |\n|---|---|---|---|\n"
          f"| {len(starts)} | {statistics.median(starts):.2f} | {min(starts):.2f} | {max(starts):.2f} |")

    times = app_runs(args.method, args.rounds)
    base = times["matting.run in process"]
    print(f"\n### {spec.name} on a 1024×1024 photo: the app's endpoint vs matting.run (interleaved)\n")
    print("| what | median s | / matting.run |\n|---|---|---|")
    for key, values in times.items():
        ratio = statistics.median(np.divide(values, base))
        print(f"| {key} | {statistics.median(values):.2f} | {ratio:.2f} |")
    return 0
