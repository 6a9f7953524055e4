"""The graph rewrites for onnxruntime's CPU kernels: same outputs, the rewritten nodes gone, the
rest left alone (matting.models.onnx_rewrite)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from matting.models import onnx_rewrite

ort = pytest.importorskip("onnxruntime")


def _model(nodes, inputs, output, initializers, output_channels):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, channels, "height", "width"])
         for name, channels in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, output_channels, "height", "width"])],
        [numpy_helper.from_array(array.astype(np.float32), name) for name, array in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, feeds):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _ops(model):
    return [node.op_type for node in model.graph.node]


def _rewritten(model):
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    counts = onnx_rewrite.rewrite_for_cpu(copy)
    onnx.checker.check_model(copy)
    return copy, counts


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=st.sampled_from([16, 24, 64]), kernel=st.sampled_from([1, 3]), dilation=st.sampled_from([1, 2]),
       bias=st.booleans(), size=st.tuples(st.integers(5, 23), st.integers(5, 23)), seed=st.integers(0, 2**16))
def test_a_one_channel_convolution_becomes_taps_shift_and_sum_with_the_same_output(inputs, kernel, dilation, bias,
                                                                                   size, seed):
    rng = np.random.default_rng(seed)
    pad = dilation * (kernel // 2)
    weights = {"w": rng.standard_normal((1, inputs, kernel, kernel))}
    names = ["x", "w"]
    if bias:
        weights["b"] = rng.standard_normal(1)
        names.append("b")
    node = helper.make_node("Conv", names, ["y"], kernel_shape=[kernel, kernel], pads=[pad] * 4,
                            dilations=[dilation] * 2)
    model = _model([node], [("x", inputs)], "y", weights, 1)
    rewritten, counts = _rewritten(model)
    x = rng.standard_normal((1, inputs, *size)).astype(np.float32)
    expected = _run(model, {"x": x})
    if kernel == 1:  # a 1×1 convolution has nothing to gain
        assert counts["narrow"] == 0 and _ops(rewritten) == ["Conv"]
        return
    assert counts["narrow"] == 1 and _ops(rewritten) == ["Conv", "Conv", "ReduceSum"] + ["Add"] * bias
    got = _run(rewritten, {"x": x})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.sqrt(inputs * kernel * kernel), rtol=0)


@pytest.mark.parametrize("bias", [True, False])
def test_a_narrow_convolution_onto_several_channels_sums_its_taps_by_a_convolution(bias):
    rng = np.random.default_rng(7)
    weights = {"w": rng.standard_normal((3, 32, 1, 5))}  # 3 outputs × 5 taps: one block
    names = ["x", "w"] + (["b"] if bias else [])
    if bias:
        weights["b"] = rng.standard_normal(3)
    node = helper.make_node("Conv", names, ["y"], kernel_shape=[1, 5], pads=[0, 2, 0, 2])
    model = _model([node], [("x", 32)], "y", weights, 3)
    rewritten, counts = _rewritten(model)
    assert counts["narrow"] == 1 and _ops(rewritten) == ["Conv", "Conv", "Conv"]
    x = rng.standard_normal((1, 32, 9, 14)).astype(np.float32)
    np.testing.assert_allclose(_run(rewritten, {"x": x}), _run(model, {"x": x}), atol=1e-4, rtol=0)


def test_convolutions_whose_taps_fill_more_than_a_block_or_with_few_inputs_or_strides_stay():
    rng = np.random.default_rng(0)
    cases = [
        ((8, 16, 3, 3), {}),                          # 72 (channel, tap) pairs: SHM's dense layers
        ((1, 4, 3, 3), {}),                           # 4 input channels
        ((1, 32, 3, 3), {"strides": [2, 2]}),         # strided
        ((2, 32, 3, 3), {"group": 2}),                # grouped
    ]
    for shape, extra in cases:
        groups = extra.get("group", 1)
        weight = rng.standard_normal((shape[0], shape[1] // groups, 3, 3))
        inputs = shape[1]
        node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4, **extra)
        model = _model([node], [("x", inputs)], "y", {"w": weight}, shape[0])
        rewritten, counts = _rewritten(model)
        assert counts == {"concatenated": 0, "narrow": 0}, (shape, extra)
        assert _ops(rewritten) == ["Conv"]


@pytest.mark.parametrize("parts", [(16, 16), (64, 32), (16, 24, 40)])
@pytest.mark.parametrize("bias", [True, False])
def test_a_convolution_of_a_concatenation_becomes_one_per_part_and_adds(parts, bias):
    rng = np.random.default_rng(len(parts) + bias)
    names = [f"x{i}" for i in range(len(parts))]
    weights = {"w": rng.standard_normal((16, sum(parts), 3, 3)) * 0.1}
    inputs = ["c", "w"]
    if bias:
        weights["b"] = rng.standard_normal(16)
        inputs.append("b")
    nodes = [helper.make_node("Concat", names, ["c"], axis=1),
             helper.make_node("Conv", inputs, ["z"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["z"], ["y"])]
    model = _model(nodes, list(zip(names, parts)), "y", weights, 16)
    rewritten, counts = _rewritten(model)
    assert counts == {"concatenated": 1, "narrow": 0}
    assert "Concat" not in _ops(rewritten)
    assert _ops(rewritten).count("Conv") == len(parts) and _ops(rewritten).count("Add") == len(parts) - 1
    feeds = {name: rng.standard_normal((1, channels, 11, 13)).astype(np.float32) for name, channels in zip(names, parts)}
    np.testing.assert_allclose(_run(rewritten, feeds), _run(model, feeds), atol=2e-5, rtol=0)


def test_a_part_of_unknown_width_gets_what_the_weight_leaves():
    """A Resize to a computed size hides its output's channels from shape inference (U²-Net's
    decoder inputs); the convolution's weight gives them."""
    rng = np.random.default_rng(3)
    batch_channels = helper.make_node("Shape", ["low"], ["low_shape"], end=2)
    height_width = helper.make_node("Shape", ["skip"], ["skip_shape"], start=2)
    sizes = helper.make_node("Concat", ["low_shape", "skip_shape"], ["sizes"], axis=0)
    resize = helper.make_node("Resize", ["low", "", "", "sizes"], ["up"], mode="linear")
    concat = helper.make_node("Concat", ["up", "skip"], ["c"], axis=1)
    conv = helper.make_node("Conv", ["c", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)
    model = _model([batch_channels, height_width, sizes, resize, concat, conv], [("low", 32), ("skip", 16)], "y",
                   {"w": rng.standard_normal((16, 48, 3, 3)) * 0.1}, 16)
    rewritten, counts = _rewritten(model)
    assert counts["concatenated"] == 1 and _ops(rewritten).count("Concat") == 1  # the sizes' one is left
    feeds = {"low": rng.standard_normal((1, 32, 5, 6)).astype(np.float32),
             "skip": rng.standard_normal((1, 16, 10, 12)).astype(np.float32)}
    np.testing.assert_allclose(_run(rewritten, feeds), _run(model, feeds), atol=2e-5, rtol=0)


def test_a_concatenation_used_twice_narrow_parts_or_a_graph_output_stays():
    rng = np.random.default_rng(4)

    def conv_of_concat(parts, extra_consumer=False, concat_is_output=False):
        names = [f"x{i}" for i in range(len(parts))]
        nodes = [helper.make_node("Concat", names, ["c"], axis=1),
                 helper.make_node("Conv", ["c", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)]
        if extra_consumer:
            nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        model = _model(nodes, list(zip(names, parts)), "y", {"w": rng.standard_normal((16, sum(parts), 3, 3))}, 16)
        if extra_consumer or concat_is_output:
            model.graph.output.append(helper.make_tensor_value_info("r" if extra_consumer else "c", TensorProto.FLOAT,
                                                                    [1, sum(parts), "height", "width"]))
        return model

    for model in (conv_of_concat((16, 16), extra_consumer=True), conv_of_concat((6, 26)),
                  conv_of_concat((16, 16), concat_is_output=True)):
        rewritten, counts = _rewritten(model)
        assert counts["concatenated"] == 0 and "Concat" in _ops(rewritten)
