"""The app as a user meets it: cold start, and U²-NetP on a 1-megapixel photo through the HTTP API.

``python -m matting.bench app [--rounds N] [--method ID]``

* **cold start**: ``python app.py`` in a fresh process (its own port), from launch until the page
  answers HTTP 200 — imports, building the Blocks from the registry, the server. Goal ≤ 10 s.
* **one run in the app**: the app's ``/run_automatic`` endpoint on a 1024×1024 photo (upload,
  queue, the run, the PNGs written and every one of them fetched), wall time per call, over Gradio's
  HTTP API on one keep-alive connection as a page does (:func:`http_predict`) and through
  ``gradio_client``,
  interleaved with ``matting.run`` of the same method on the same photo in this process; the ratio
  is the app's overhead. Goal for U²-NetP on 2 cores: ≤ 1.5 s wall.
* **result files**: what the app writes after such a run (``export.save_result``: alpha, foreground,
  cut-out, composite, every map, the photo), one file after another against
  :data:`matting.io.PNG_WRITERS` encoders at a time, interleaved.
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


_API_PARAMETERS: dict[tuple[str, str], list] = {}


def _file_urls(value) -> list[str]:
    """Every file URL in an endpoint's output (FileData dicts, nested in lists and gallery items)."""
    if isinstance(value, dict):
        if value.get("url") and value.get("path"):
            return [value["url"]]
        return [url for item in value.values() for url in _file_urls(item)]
    if isinstance(value, (list, tuple)):
        return [url for item in value for url in _file_urls(item)]
    return []


def http_predict(client, base_url: str, api_name: str, photo_path: str, **values) -> int:
    """One call of ``api_name`` over Gradio's HTTP API, the way a browser page makes it: upload the
    photo, call, read the event stream, then fetch every output file, all on one keep-alive
    connection (``client``: an ``httpx.Client``). Returns the number of files fetched.

    gradio_client's ``predict`` is measured beside it: it fetches each output file with a new
    ``httpx.Client`` and so builds a TLS context per file (≈ 30 ms each, measured with yappi), a
    cost of that client library that a browser does not pay."""
    import json

    with open(photo_path, "rb") as handle:
        response = client.post(f"{base_url}gradio_api/upload", files={"files": handle})
    response.raise_for_status()
    values["photo_file"] = {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}
    # the raw API takes every input in order: the given ones, the API page's defaults for the rest
    key = (base_url, api_name)
    if key not in _API_PARAMETERS:  # a page reads the app's config once, not per run
        info = client.get(f"{base_url}gradio_api/info").json()
        _API_PARAMETERS[key] = info["named_endpoints"][f"/{api_name}"]["parameters"]
    parameters = _API_PARAMETERS[key]
    inputs = [values.get(item["parameter_name"], item.get("parameter_default")) for item in parameters]
    response = client.post(f"{base_url}gradio_api/call/{api_name}", json={"data": inputs})
    response.raise_for_status()
    event_id = response.json()["event_id"]
    event, data = None, None
    with client.stream("GET", f"{base_url}gradio_api/call/{api_name}/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = line.split(":", 1)[1].strip()
                break
    if event != "complete":
        raise RuntimeError(f"{api_name} answered {event}: {data}")
    urls = _file_urls(json.loads(data))
    for url in urls:
        client.get(url).raise_for_status()
    return len(urls)


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
    import httpx

    browser_like = "app /run_automatic (HTTP API, one connection, every output file fetched)"
    times: dict[str, list[float]] = {browser_like: [], "app /run_automatic (gradio_client)": [],
                                     "matting.run in process": []}
    connection = httpx.Client(timeout=120)
    try:
        client = Client(url, verbose=False)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "photo.png")
            Image.fromarray(image).save(path)
            calls = {
                browser_like: lambda: http_predict(connection, url, "run_automatic", path, method_id=method_id),
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
        connection.close()
        demo.close()
    return times


def result_files(method_id: str, rounds: int) -> dict[str, list[float]]:
    """Wall seconds of writing one run's files serially and with the PNG writer pool, interleaved."""
    import matting
    from .. import export, io
    from .end_to_end import photo

    image = photo(1024)
    result = matting.run(method_id, image)
    pooled = max(2, io.PNG_WRITERS)
    labels = {1: "one file at a time", pooled: f"{pooled} writers" + (" (default)" if pooled == io.PNG_WRITERS else "")}
    times: dict[str, list[float]] = {label: [] for label in labels.values()}
    with tempfile.TemporaryDirectory() as folder:
        for index in range(rounds + 1):
            for workers, label in (list(labels.items()) if index % 2 == 0 else list(labels.items())[::-1]):
                start = time.perf_counter()
                export.save_result(result, image, folder, also={"photo": ("photo.png", image)}, workers=workers)
                if index:  # the first round warms the pool and the page cache
                    times[label].append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="timed calls per row (default 8)")
    parser.add_argument("--method", default="u2netp", help="an automatic method (default u2netp)")
    parser.add_argument("--cold-starts", type=int, default=3, help="fresh app processes to time (default 3; 0 skips the cold start)")
    args = parser.parse_args(argv)
    from .. import weights
    from ..errors import MattingError
    from ..registry import get

    spec = get(args.method)
    if not all(weights.usable(checkpoint) for checkpoint in spec.weights[:1]):
        raise MattingError(f"{args.method}'s checkpoint is not here: python -m matting.weights fetch {spec.weights[0]}")

    if args.cold_starts > 0:
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

    files = result_files(args.method, args.rounds)
    serial = files["one file at a time"]
    print(f"\n### The files of that run (export.save_result, {len(files)} set-ups interleaved)\n")
    print("| result files | median s | / one at a time |\n|---|---|---|")
    for key, values in files.items():
        print(f"| {key} | {statistics.median(values):.3f} | {statistics.median(np.divide(values, serial)):.2f} |")
    return 0
