"""Ready graphs (``matting.models.runtime``): a later process runs an exported network without torch.

One export per test module into a private cache directory (U²-NetP, the offline default weights),
then: a fresh process runs ``matting.run("u2netp")`` without importing torch and returns the very
alpha the exporting process got; anything the graph depended on that changed (a port's source file,
the torch version, the weights file) means no graph, and the ordinary path is taken; the reference
forward is never replaced by a graph.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import matting
from matting import weights
from matting.adapters import torch_utils
from matting.models import runtime

pytestmark = pytest.mark.skipif(not weights.usable("u2netp"), reason="U²-NetP weights not fetched")

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGUMENTS = runtime.arguments_signature([np.zeros((1, 3, 4, 4), np.float32)])


def _photo():
    rng = np.random.default_rng(7)
    image = np.zeros((96, 128, 3), np.uint8)
    image[20:80, 30:100] = (220, 180, 40)
    return np.clip(image + rng.integers(0, 30, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A cache directory holding U²-NetP's export and its ready record, and the alpha of that run."""
    cache = tmp_path_factory.mktemp("cache")
    previous = {name: os.environ.get(name) for name in ("MATTING_CACHE_DIR", "MATTING_REFERENCE", "MATTING_BACKEND")}
    os.environ["MATTING_CACHE_DIR"] = str(cache)
    os.environ.pop("MATTING_REFERENCE", None)
    os.environ.pop("MATTING_BACKEND", None)
    torch_utils.clear_cache()
    try:
        alpha = matting.run("u2netp", _photo(), foreground="none").alpha
        yield cache, alpha
    finally:
        torch_utils.clear_cache()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _records(cache):
    return sorted((cache / "onnx").glob("ready-u2netp-*.json"))


def test_export_writes_one_record_naming_the_port_sources(exported):
    cache, _ = exported
    records = _records(cache)
    assert len(records) == 1
    entry = json.loads(records[0].read_text())
    assert entry["arch"] == "u2netp" and entry["arguments"] == ARGUMENTS
    assert any(name.endswith(os.path.join("matting", "models", "u2net.py")) for name in entry["sources"])
    assert (cache / "onnx" / entry["onnx"]).stat().st_size == entry["onnx_size"] > 0


def test_a_fresh_process_runs_the_graph_without_torch_and_gets_the_same_alpha(exported, tmp_path):
    cache, alpha = exported
    np.save(tmp_path / "photo.npy", _photo())
    script = textwrap.dedent(f"""
        import sys, numpy as np, matting
        result = matting.run("u2netp", np.load({str(tmp_path / 'photo.npy')!r}), foreground="none")
        np.save({str(tmp_path / 'alpha.npy')!r}, result.alpha)
        print("torch imported:", "torch" in sys.modules)
    """)
    environment = {**os.environ, "MATTING_CACHE_DIR": str(cache), "PYTHONPATH": PROJECT}
    environment.pop("MATTING_REFERENCE", None)
    completed = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                               timeout=300, cwd=PROJECT)
    assert completed.returncode == 0, completed.stderr
    assert "torch imported: False" in completed.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "alpha.npy"), alpha)


def test_graph_found_in_process_and_used(exported):
    cache, alpha = exported
    torch_utils.clear_cache()
    network = torch_utils.load_network("u2netp", "u2netp", np.zeros((1, 3, 1, 1), np.float32))
    assert isinstance(network, runtime.ReadyGraph)
    session = matting.session("u2netp", foreground="none")
    assert isinstance(session.loaded, runtime.ReadyGraph)
    np.testing.assert_array_equal(session.run(_photo()).alpha, alpha)


def _edited_record(cache, change):
    record = _records(cache)[0]
    original = record.read_text()
    entry = json.loads(original)
    change(entry)
    record.write_text(json.dumps(entry))
    return record, original


@pytest.mark.parametrize("what", ["source", "torch", "weights", "onnx size"])
def test_anything_changed_means_no_graph(exported, what):
    cache, _ = exported
    changes = {
        "source": lambda e: e["sources"].update({next(iter(e["sources"])): "0" * 64}),
        "torch": lambda e: e.update(torch="0.0.0"),
        "weights": lambda e: e.update(weights_sha256="f" * 64),
        "onnx size": lambda e: e.update(onnx_size=e["onnx_size"] + 1),
    }
    record, original = _edited_record(cache, changes[what])
    try:
        sha256 = weights.sha256_file(weights.require("u2netp"))
        assert runtime.find("u2netp", sha256, ARGUMENTS, 1) is None
        torch_utils.clear_cache()
        network = torch_utils.load_network("u2netp", "u2netp", np.zeros((1, 3, 1, 1), np.float32))
        assert not isinstance(network, runtime.ReadyGraph)
    finally:
        record.write_text(original)
        torch_utils.clear_cache()


def test_other_arguments_find_no_graph(exported):
    sha256 = weights.sha256_file(weights.require("u2netp"))
    assert runtime.find("u2netp", sha256, ARGUMENTS, 1) is not None
    assert runtime.find("u2netp", sha256, runtime.arguments_signature([np.zeros((1, 4, 4, 4), np.float32)]), 1) is None
    assert runtime.find("u2netp", sha256, runtime.arguments_signature([np.zeros((1, 3, 4, 4), np.float64)]), 1) is None


def test_reference_is_never_a_graph(exported, monkeypatch):
    import torch

    torch_utils.clear_cache()
    graph = torch_utils.load_network("u2netp", "u2netp", np.zeros((1, 3, 1, 1), np.float32))
    assert isinstance(graph, runtime.ReadyGraph)
    monkeypatch.setenv("MATTING_REFERENCE", "1")
    assert isinstance(torch_utils.load_network("u2netp", "u2netp", np.zeros((1, 3, 1, 1), np.float32)),
                      torch.nn.Module)
    # A graph loaded before MATTING_REFERENCE was set: run() builds the network for the reference forward.
    feed = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    outputs = torch_utils.run(graph, feed)
    assert all(isinstance(output, torch.Tensor) for output in outputs)
    monkeypatch.delenv("MATTING_REFERENCE")
    fast = torch_utils.run(graph, feed)
    assert all(isinstance(output, np.ndarray) for output in fast)
    assert max(float(np.abs(a - b.numpy()).max()) for a, b in zip(fast, outputs)) < 1e-4


def test_arguments_signature_is_the_same_for_numpy_and_torch():
    import torch

    assert (runtime.arguments_signature([np.zeros((1, 3, 8, 8), np.float32), False])
            == runtime.arguments_signature([torch.zeros((1, 3, 8, 8)), False])
            == [["tensor", 4, 3, "torch.float32"], ["value", False]])
    with pytest.raises(TypeError):
        runtime.arguments_signature([object()])
