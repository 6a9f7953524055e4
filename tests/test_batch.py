"""Batch runs and evaluation on Dask (matting.batch).

One LocalCluster (2 single-threaded worker processes, no dashboard) serves the module. Images are tiny
synthetic composites (≤ 64 px). Besides closed_form and knn, a test method "slow closed-form" (closed_form
plus a sleep, registered here and on every worker by a worker plugin) makes the interruption tests
deterministic: its alpha equals closed_form's.
"""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from matting import cli, io
from matting.batch import Item, MethodRun, run_batch
from matting.batch.tasks import DONE_MARKER, Task, find_items, is_done, items_from_manifest, parse_method, safe_name
from matting.synthetic import make_composite

distributed = pytest.importorskip("distributed")

SLOW = "test_batch_slow_closed_form"
SLOW_SECONDS = 0.4
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get this module's functions by value


def register_slow(seconds=SLOW_SECONDS):
    import matting

    if SLOW in [m.id for m in matting.methods()]:
        return
    base = matting.get("closed_form")

    def compute(inputs, params):
        time.sleep(seconds)
        return base.compute(inputs, params)

    matting.register(dataclasses.replace(base, id=SLOW, name="Slow closed-form (test)", compute=compute))


class RegisterSlow(distributed.WorkerPlugin):
    name = "test-batch-slow-method"

    def setup(self, worker):
        register_slow()


def write_images(folder, count, size=(40, 56), start=0):
    """``count`` composites img00.png … with trimaps and ground truth in sibling folders."""
    for sub in ("input", "trimap", "gt"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        scene = make_composite(*size, seed=index, edge=3.0)
        name = f"img{index:02d}.png"
        io.save_png(folder / "input" / name, scene.image)
        io.save_png(folder / "trimap" / name, scene.trimap(2))
        io.save_png(folder / "gt" / name, scene.alpha)
    return folder


def files_of(out):
    """{relative path: bytes} of every output file (markers and summaries aside)."""
    skip = {DONE_MARKER, "failed.json", "result.json", "tasks.jsonl", "failures.jsonl", "batch.json"}
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(Path(out).rglob("*"))
            if p.is_file() and p.name not in skip}


def markers(out):
    return {str(p.parent.relative_to(out)): json.loads(p.read_text()) for p in Path(out).rglob(DONE_MARKER)}


@pytest.fixture(scope="module")
def client():
    register_slow()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        client.register_plugin(RegisterSlow())
        yield client


@pytest.fixture()
def two_workers(client):
    client.wait_for_workers(2, timeout=120)
    return client


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data"), 8)


METHODS = [MethodRun("closed_form"), MethodRun("knn", {"foreground": "none"})]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The in-process run (today's behaviour): 8 images × 2 methods."""
    out = tmp_path_factory.mktemp("reference")
    report = run_batch(data / "input", METHODS, out, scheduler="none", trimap=data / "trimap", gt=data / "gt",
                       progress=False)
    assert len(report.succeeded) == 16 and not report.failures
    return out, report


# --------------------------------------------------------------------------- on the cluster

def test_cluster_run_equals_in_process_run_and_loads_each_method_once_per_worker(two_workers, data, reference,
                                                                                 tmp_path):
    ref_out, ref_report = reference
    report = run_batch(data / "input", METHODS, tmp_path, scheduler=two_workers, trimap=data / "trimap",
                       gt=data / "gt", progress=False)
    assert len(report.succeeded) == 16 and not report.failures and not report.skipped
    expected = files_of(ref_out)
    assert "closed_form/img00/foreground.png" in expected and "knn,foreground=none/img07/alpha.png" in expected
    assert files_of(tmp_path) == expected  # every PNG byte for byte
    ref_metrics = {r["key"]: r["metrics"] for r in ref_report.records}
    assert {r["key"]: r["metrics"] for r in report.records} == ref_metrics
    # tasks ran on both workers; each worker loaded each method's session once
    assert len({r["pid"] for r in report.records}) == 2
    for label in ("closed_form", "knn,foreground=none"):
        created = [r["pid"] for r in report.records if r["label"] == label and r["session_created"]]
        assert len(created) == len(set(created)) <= 2
    # the workers keep their sessions across runs: a new run on the same cluster loads nothing
    items = find_items(data / "input", trimap=data / "trimap")[:4]
    later = run_batch(items, METHODS, tmp_path / "later", scheduler=two_workers, progress=False)
    loaded = {(r["pid"], r["label"]) for r in report.records}
    assert len(later.succeeded) == 8
    assert all(r["session_created"] == ((r["pid"], r["label"]) not in loaded) for r in later.records)
    # a second run skips everything
    again = run_batch(data / "input", METHODS, tmp_path, scheduler=two_workers, trimap=data / "trimap",
                      gt=data / "gt", progress=False)
    assert len(again.skipped) == 16 and not again.ran


def test_a_corrupt_image_is_one_recorded_failure_and_the_rest_go_on(two_workers, tmp_path):
    folder = write_images(tmp_path / "data", 15, size=(32, 40))
    (folder / "input" / "img15.png").write_bytes(b"this is not a PNG")
    io.save_png(folder / "trimap" / "img15.png", np.full((32, 40), 128, np.uint8))
    out = tmp_path / "out"
    report = run_batch(folder / "input", ["closed_form"], out, scheduler=two_workers, trimap=folder / "trimap",
                       progress=False)
    assert len(report.succeeded) == 15 and len(report.failures) == 1
    failure = report.failures[0]
    assert failure["key"] == "closed_form/img15" and "not an image" in failure["error"]
    assert "closed_form/img15: The image file 'img15.png' is not an image" in report.summary()
    recorded = json.loads((out / "closed_form/img15/failed.json").read_text())
    assert recorded["error"] == failure["error"] and not (out / "closed_form/img15" / DONE_MARKER).exists()
    assert [json.loads(line)["key"] for line in (out / "failures.jsonl").read_text().splitlines()] == [failure["key"]]
    assert json.loads((out / "batch.json").read_text())["failed"] == 1


def test_a_killed_client_loses_nothing_and_the_rerun_recomputes_nothing_finished(two_workers, data, reference,
                                                                                 tmp_path):
    """The client runs in a subprocess against this cluster and is killed (SIGKILL) after a few tasks."""
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_batch
        test_batch.register_slow()
        from matting.batch import run_batch
        run_batch({str(data / 'input')!r}, [test_batch.SLOW], {str(out)!r}, trimap={str(data / 'trimap')!r},
                  scheduler={two_workers.scheduler.address!r}, progress=False)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    try:
        deadline = time.monotonic() + 120
        while len(list(out.rglob(DONE_MARKER))) < 2:
            assert process.poll() is None, "the client ended before it was killed"
            assert time.monotonic() < deadline, "no task finished in time"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    time.sleep(SLOW_SECONDS * 3)  # tasks already running on the workers finish (their results are dropped)
    finished = markers(out)
    assert 2 <= len(finished) < 8, "the kill came after every task had finished; nothing was interrupted"
    report = run_batch(data / "input", [SLOW], out, trimap=data / "trimap", scheduler=two_workers, progress=False)
    assert not report.failures and len(report.succeeded) == 8
    assert {r["key"].split("/", 1)[1] for r in report.skipped} == {k.split("/", 1)[1] for k in finished}
    assert len(report.ran) == 8 - len(finished)
    after = markers(out)
    assert all(after[key]["run_id"] == record["run_id"] for key, record in finished.items())  # not recomputed
    ref_out, _ = reference
    for index in range(8):  # nothing lost: every alpha equals the in-process closed-form alpha
        name = f"img{index:02d}"
        assert (out / SLOW / name / "alpha.png").read_bytes() == (ref_out / "closed_form" / name / "alpha.png").read_bytes()


def test_a_worker_killed_mid_task_is_survived(two_workers, data, reference, tmp_path):
    killed = {}

    def kill_a_busy_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = {w: keys for w, keys in two_workers.processing().items() if keys}
            if busy and len(list(tmp_path.rglob(DONE_MARKER))) >= 1:
                address, keys = next(iter(busy.items()))
                pid = two_workers.run(os.getpid, workers=[address])[address]
                killed.update(pid=pid, key=keys[0])
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    report = run_batch(data / "input", [SLOW], tmp_path, trimap=data / "trimap", scheduler=two_workers,
                       progress=False)
    killer.join()
    assert killed, "no worker was killed"
    assert not report.failures and len(report.succeeded) == 8
    rerun = [r for r in report.records if killed["key"].startswith(f"matting-{safe_name(r['key'])}-")]
    assert len(rerun) == 1 and rerun[0]["pid"] != killed["pid"]  # the task in flight ran again elsewhere
    ref_out, _ = reference
    for index in range(8):
        name = f"img{index:02d}"
        assert (tmp_path / SLOW / name / "alpha.png").read_bytes() == (ref_out / "closed_form" / name / "alpha.png").read_bytes()


# --------------------------------------------------------------------------- no cluster

def test_a_half_written_task_is_not_done_and_a_changed_input_runs_again(data, tmp_path):
    item = find_items(data / "input" / "img00.png", trimap=data / "trimap" / "img00.png")[0]
    task = Task(item, MethodRun("closed_form", {"foreground": "none"}))
    folder = task.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "alpha.png").write_bytes(b"half")  # outputs without a marker: not done
    assert is_done(task, tmp_path) is None
    report = run_batch([item], [task.run], tmp_path, scheduler="none", progress=False)
    assert report.succeeded and is_done(task, tmp_path)
    changed = Task(item, MethodRun("closed_form", {"foreground": "none", "epsilon": 1e-5}, label=task.run.label))
    assert is_done(changed, tmp_path) is None  # same folder, other parameters: the fingerprint differs


def test_manifests_csv_and_jsonl_with_relative_paths_and_missing_partners(data, tmp_path):
    (tmp_path / "m.csv").write_text(
        "image,trimap,alpha\n"
        f"{os.path.relpath(data / 'input/img00.png', tmp_path)},{os.path.relpath(data / 'trimap/img00.png', tmp_path)},"
        f"{data / 'gt/img00.png'}\n"
        f"{data / 'input/img01.png'},,\n")
    items = items_from_manifest(tmp_path / "m.csv")
    assert [i.key for i in items] == ["img00", "img01"]
    assert Path(items[0].trimap).resolve() == (data / "trimap/img00.png").resolve() and items[0].gt and not items[1].trimap
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": str(data / "input/img02.png"), "name": "two"}) + "\n")
    assert items_from_manifest(tmp_path / "m.jsonl") == [Item(key="two", image=str(data / "input/img02.png"))]
    # a folder whose trimap folder lacks one image: that task fails with the reason, the others run
    (tmp_path / "tri").mkdir()
    (tmp_path / "tri" / "img00.png").write_bytes((data / "trimap/img00.png").read_bytes())
    items = find_items(data / "input", trimap=tmp_path / "tri")
    assert items[0].problem == "" and "No trimap named img01.*" in items[1].problem
    assert parse_method("closed_form:epsilon=1e-6,radius=2", cli.parse_param) == MethodRun(
        "closed_form", {"epsilon": 1e-6, "radius": 2}, "closed_form,epsilon=1e-06,radius=2")


def test_cli_batch_and_eval_in_process(data, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["batch", "closed_form", "knn", "--image", str(data / "input"), "--trimap", str(data / "trimap"),
                     "--out", str(out), "--scheduler", "none", "-p", "foreground=none", "--no-progress"])
    assert code == 0 and "16 tasks: 16 done now" in capsys.readouterr().out
    assert (out / "knn/img03/alpha.png").is_file() and (out / "closed_form/img03/done.json").is_file()
    assert "16 already done" in (cli.main(["batch", "closed_form", "knn", "--image", str(data / "input"), "--trimap",
                                           str(data / "trimap"), "--out", str(out), "--scheduler", "none", "-p",
                                           "foreground=none", "--no-progress"]) == 0 and capsys.readouterr().out)
    assert cli.main(["batch", "closed_form", "--image", str(data / "input"), "--out", str(out), "-p", "bogus=1",
                     "--scheduler", "none"]) == 2
    assert "No method given has the parameter 'bogus'" in capsys.readouterr().err
    evaluation = tmp_path / "eval"
    code = cli.main(["eval", "closed_form", "knn:neighbors=10", "--image", str(data / "input"), "--trimap",
                     str(data / "trimap"), "--gt", str(data / "gt"), "--limit", "3", "--out", str(evaluation),
                     "--scheduler", "none", "--no-progress", "--json", str(tmp_path / "rows.json")])
    printed = capsys.readouterr().out
    assert code == 0 and "median" in printed and "knn,neighbors=10" in printed
    for name in ("results.csv", "results.jsonl", "summary.csv", "summary.json", "sad_boxplot.png", "time_vs_sad.png"):
        assert (evaluation / name).is_file(), name
    import pandas as pd

    table = pd.read_csv(evaluation / "results.csv")
    assert len(table) == 6 and set(table["label"]) == {"closed_form", "knn,neighbors=10"}
    summary = json.loads((evaluation / "summary.json").read_text())
    assert [s["label"] for s in summary] == ["closed_form", "knn,neighbors=10"] and summary[0]["sad_mean"] < 0.01
    assert len(json.loads((tmp_path / "rows.json").read_text())) == 6
