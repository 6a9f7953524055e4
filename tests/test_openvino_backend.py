"""The ``"openvino"`` backend of ``matting.models.accelerate``: the same checked onnx export as
onnxruntime's, compiled by OpenVINO; its own outputs checked once against the reference forward,
and onnxruntime in its place when OpenVINO is missing or its outputs differ. (MODNet and SHM, which
declare it, are bounded against the reference on the fidelity fixtures in ``test_accelerate.py``.)"""
import importlib
import json

import numpy as np
import pytest
import torch

from matting import models
from matting.models import runtime
from matting.models.accelerate import EXPORT_TOLERANCE, accelerate

accelerate_module = importlib.import_module("matting.models.accelerate")
needs_openvino = pytest.mark.skipif(not runtime.engine_available("openvino"), reason="OpenVINO not installed")
WEIGHTS = "0123456789abcdef" * 4  # stands in for a checkpoint file's sha256: makes accelerate record the graph


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTING_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MATTING_REFERENCE", raising=False)
    monkeypatch.delenv("MATTING_BACKEND", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return models.create("u2netp").eval(), torch.rand(1, 3, 64, 64)


def _meta(cache):
    (meta,) = [p for p in (cache / "onnx").glob("u2netp-*.json")]
    return json.loads(meta.read_text())


def _max_difference(fast_outputs, reference_outputs):
    return max(float((a - b).abs().max()) for a, b in zip(fast_outputs, reference_outputs))


@needs_openvino
def test_openvino_runs_the_checked_export_and_records_it(cache, network):
    model, x = network
    fast = accelerate(model, x, backend="openvino", weights_sha256=WEIGHTS)
    assert fast.backend == "openvino" and fast.note == ""
    with torch.inference_mode():
        reference = model(x)
    other = torch.rand(1, 3, 96, 80)
    with torch.inference_mode():
        other_reference = model(other)
    assert _max_difference(fast(x), reference) <= 1e-4
    assert _max_difference(fast(other), other_reference) <= 1e-4  # another size: the free-axes session
    outcome = _meta(cache)["engines"]["openvino"]
    assert outcome["exact"] and 0 <= outcome["max_difference"] <= EXPORT_TOLERANCE
    arguments = runtime.arguments_signature([x])
    graph = runtime.find("u2netp", WEIGHTS, arguments, 1)
    assert graph is not None and graph.sessions.engine == "openvino"  # a later process runs it on OpenVINO
    assert runtime.find("u2netp", WEIGHTS, arguments, 1, "onnxruntime").sessions.engine == "onnxruntime"


def test_a_graph_checked_on_onnxruntime_only_is_not_run_by_openvino(cache, network):
    model, x = network
    assert accelerate(model, x, backend="onnxruntime", weights_sha256=WEIGHTS).backend == "onnxruntime"
    assert "engines" not in _meta(cache)
    arguments = runtime.arguments_signature([x])
    assert runtime.find("u2netp", WEIGHTS, arguments, 1).sessions.engine == "onnxruntime"
    assert runtime.find("u2netp", WEIGHTS, arguments, 1, "openvino") is None


def test_without_openvino_onnxruntime_runs_the_graph(cache, network, monkeypatch, caplog):
    model, x = network
    monkeypatch.setattr(runtime, "engine_available", lambda engine: engine != "openvino")
    fast = accelerate(model, x, backend="openvino")
    assert fast.backend == "onnxruntime" and "openvino is not installed" in fast.note
    assert "using the onnxruntime backend" in caplog.text
    with torch.inference_mode():
        assert _max_difference(fast(x), model(x)) <= 1e-4


@needs_openvino
def test_openvino_outputs_that_differ_mean_onnxruntime_and_the_verdict_is_kept(cache, network, monkeypatch):
    from matting.models.openvino_session import OpenVINOSession

    model, x = network
    checked = []
    original = accelerate_module._difference

    def difference(session, *arguments):
        if isinstance(session, OpenVINOSession):
            checked.append(session)
            return 1.0
        return original(session, *arguments)

    monkeypatch.setattr(accelerate_module, "_difference", difference)
    fast = accelerate(model, x, backend="openvino")
    assert fast.backend == "onnxruntime" and "differ" in fast.note and len(checked) == 1
    assert _meta(cache)["engines"]["openvino"] == {"exact": False, "max_difference": 1.0}
    again = accelerate(model, x, backend="openvino")  # the meta file remembers: no second check
    assert again.backend == "onnxruntime" and len(checked) == 1
