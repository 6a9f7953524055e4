"""onnxruntime sessions with the graph's free axes fixed to the input's size (runtime.SizedSessions):
which session serves which size, and that every session gives the same outputs."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from matting.models import runtime


@pytest.fixture()
def graph(tmp_path):
    """input0 (batch×2×height×width) → a 3×3 convolution, then a bilinear resize to twice the input's
    size, read from its shape at run time (what exported interpolate calls look like)."""
    weight = helper.make_tensor("weight", TensorProto.FLOAT, [4, 2, 3, 3],
                                np.random.default_rng(0).standard_normal(72).astype(np.float32).tolist())
    nodes = [
        helper.make_node("Conv", ["input0", "weight"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["conv"], ["shape"]),
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor("c", TensorProto.INT64, [4], [1, 1, 2, 2])),
        helper.make_node("Mul", ["shape", "two"], ["sizes"]),
        helper.make_node("Resize", ["conv", "", "", "sizes"], ["output0"], mode="linear"),
    ]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input0", TensorProto.FLOAT, ["batch", 2, "height", "width"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, None)], [weight]),
        opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    return path


def _fixed_sizes(sessions):
    return list(sessions._fixed)


def test_first_size_fixed_at_once_later_sizes_from_their_second_call(graph):
    sessions = runtime.SizedSessions(graph, 1)
    first = sessions.session_for((1, 8, 8))
    assert _fixed_sizes(sessions) == [(1, 8, 8)] and sessions._free is None
    assert first.get_inputs()[0].shape == [1, 2, 8, 8]  # the free axes are fixed in this session
    once = sessions.session_for((1, 16, 12))
    assert once is sessions._free and once.get_inputs()[0].shape == ["batch", 2, "height", "width"]
    twice = sessions.session_for((1, 16, 12))
    assert twice is not once and _fixed_sizes(sessions) == [(1, 8, 8), (1, 16, 12)]
    assert sessions.session_for((1, 8, 8)) is first  # kept, and now the most recently used
    sessions.session_for((2, 4, 4))
    sessions.session_for((2, 4, 4))
    assert _fixed_sizes(sessions) == [(1, 8, 8), (2, 4, 4)]  # at most MAX_FIXED, least recently used out
    assert sessions.session_for(None) is sessions._free  # inputs of different sizes


def test_every_session_gives_the_free_axes_result(graph):
    rng = np.random.default_rng(1)
    sessions = runtime.SizedSessions(graph, 1)
    free = runtime.ort_session(graph, 1)
    for shape in [(1, 2, 8, 8), (1, 2, 16, 12), (1, 2, 16, 12), (2, 2, 5, 7), (2, 2, 5, 7)]:
        x = rng.standard_normal(shape).astype(np.float32)
        size = runtime.common_size([x])
        out = sessions.session_for(size).run(None, {"input0": x})[0]
        expected = free.run(None, {"input0": x})[0]
        assert out.shape == (shape[0], 4, 2 * shape[2], 2 * shape[3])
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_common_size_needs_every_4d_array_alike():
    a, b = np.zeros((1, 3, 4, 5)), np.zeros((1, 1, 4, 5))
    assert runtime.common_size([a, b, np.zeros(3)]) == (1, 4, 5)
    assert runtime.common_size([a, np.zeros((1, 3, 4, 6))]) is None
    assert runtime.common_size([np.zeros((2, 2))]) is None


needs_openvino = pytest.mark.skipif(not runtime.engine_available("openvino"), reason="OpenVINO not installed")


@needs_openvino
def test_openvino_sessions_fix_the_free_axes_and_agree_with_onnxruntime(graph):
    rng = np.random.default_rng(2)
    sessions = runtime.SizedSessions(graph, 1, "openvino")
    free = runtime.ort_session(graph, 1)
    first = sessions.session_for((1, 8, 8))
    assert first.get_inputs()[0].name == "input0" and first.get_inputs()[0].shape == [1, 2, 8, 8]
    once = sessions.session_for((2, 5, 7))
    assert once is sessions._free and once.get_inputs()[0].shape == [None, 2, None, None]
    for shape in [(1, 2, 8, 8), (2, 2, 5, 7), (2, 2, 5, 7)]:
        x = rng.standard_normal(shape).astype(np.float32)
        out = sessions.session_for(runtime.common_size([x])).run(None, {"input0": x})
        assert len(out) == 1 and out[0].shape == (shape[0], 4, 2 * shape[2], 2 * shape[3])
        np.testing.assert_allclose(out[0], free.run(None, {"input0": x})[0], rtol=0, atol=1e-5)
    assert _fixed_sizes(sessions) == [(1, 8, 8), (2, 5, 7)]
    with pytest.raises(ValueError, match="every output"):
        first.run(["output0"], {"input0": np.zeros((1, 2, 8, 8), np.float32)})


@needs_openvino
def test_openvino_session_outputs_outlive_the_call_and_concurrent_calls_do_not_mix(graph):
    from concurrent.futures import ThreadPoolExecutor

    session = runtime.make_session("openvino", graph, 2, {"batch": 1, "height": 8, "width": 8})
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((1, 2, 8, 8)).astype(np.float32) for _ in range(16)]
    serial = [session.run(None, {"input0": x})[0] for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda x: session.run(None, {"input0": x})[0], inputs))
    for a, b in zip(serial, concurrent):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(serial[0], serial[1])  # really different inputs, not one buffer reused


def test_unknown_engine_is_refused(graph):
    with pytest.raises(ValueError, match="engine"):
        runtime.SizedSessions(graph, 1, "tensorrt")
    with pytest.raises(ValueError, match="engine"):
        runtime.make_session("tensorrt", graph, 1)
