"""Rewrites of an exported graph that give onnxruntime's CPU kernels the same sums with less waste.

onnxruntime runs convolutions in a blocked layout (NCHWc: channels in blocks of 16 on these CPUs),
and two patterns in our ports waste much of that:

* **A narrow convolution** — fewer output channels than a block, such as U²-Net's side outputs
  (64 → 1 channel, 3×3, at the full 320²). Its output channels are padded to a whole block, so it
  does 16× the multiplications it needs: U²-NetP's 320² side output took 8.4 ms of a 224 ms
  forward. :func:`split_narrow_convolutions` computes it as a 1×1 convolution onto one channel per
  (output channel, kernel tap) pair, a depthwise convolution with one-hot kernels that moves each
  tap's channel into place (the original padding and dilation), and the sum of each output's taps
  plus the bias (``ReduceSum`` + ``Add`` for one output, so that what follows works on one channel
  instead of a padded block; a 1×1 convolution for several). The same sums, in another order; 0.6×
  the time in isolation (64 → 1, 3×3, 320², 2 threads). Only where those pairs fit in one block (a
  3×3 kernel onto one channel): SHM's dense layers (16–36 → 8–12 channels) ran 1.08× slower so
  rewritten, their taps filling 5–7 blocks.
* **A convolution of a concatenation** — every decoder stage of U²-Net, whose input is
  ``cat(upsampled, skip)``. The copy into the concatenated tensor costs a full pass over both; a
  convolution is linear in its input channels, so :func:`split_concatenated_convolutions` convolves
  each part with its slice of the weight and adds the results (onnxruntime fuses each ``Add`` into
  the next convolution as its accumulator, and the ReLU after it). 128 → 64 channels at 320²:
  0.96× in isolation.

Measured, whole graphs, rewritten / as exported (2 threads, interleaved, one process): U²-NetP 320²
0.91×, U²-Net 320² 0.98×. OpenVINO, which has its own layouts, runs the rewritten graphs as
fast as before (MODNet 512² 1.00×, BGMv2's encoder–decoder 0.98–1.03×), so one file serves both.

Both are exact in real arithmetic and change only the order of float32 additions (|Δ| ≈ 1e-6 on
unit-scale activations). :func:`rewrite_for_cpu` applies both; :mod:`matting.models.accelerate`
runs it on every export before the export is checked against the reference forward, so a rewrite
that changed a result beyond the export tolerance would fail that check and never be used.
Convolutions the rules do not cover (grouped, strided, ``auto_pad``, weights that are not constant
initializers, parts with unknown channel counts) are left as they are.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["rewrite_for_cpu", "rewrite_file", "split_concatenated_convolutions", "split_narrow_convolutions"]

# onnxruntime's NCHWc block on AVX2 CPUs: a convolution with fewer output channels is padded up to it.
BLOCK = 16
# Parts of a concatenation narrower than this stay concatenated: a convolution per part of a few
# channels costs more in passes over its output than the copy it saves.
MIN_PART_CHANNELS = 16


def rewrite_for_cpu(model: onnx.ModelProto) -> dict[str, int]:
    """Both rewrites, in place: concatenated convolutions first, then narrow ones. Returns how many
    convolutions each rewrote."""
    return {"concatenated": split_concatenated_convolutions(model), "narrow": split_narrow_convolutions(model)}


def rewrite_file(path: str | Path) -> dict[str, int]:
    """:func:`rewrite_for_cpu` on the model at ``path``, written back to the same path (the caller's
    temporary file: the export is moved into place only after its check)."""
    model = onnx.load(str(path))
    counts = rewrite_for_cpu(model)
    if any(counts.values()):
        onnx.save(model, str(path))
    return counts


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _bias(node: onnx.NodeProto) -> str | None:
    """The name of a ``Conv`` node's bias input, or None if it has none."""
    return node.input[2] if len(node.input) > 2 and node.input[2] else None


def _plain_convolution(node: onnx.NodeProto, initializers: dict) -> bool:
    """A 2-D ``Conv`` with group 1, stride 1, explicit padding and a constant weight (and bias)."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return False
    attributes = _attributes(node)
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    weight = initializers.get(node.input[1])
    bias_ok = _bias(node) is None or _bias(node) in initializers
    return (weight is not None and len(weight.dims) == 4 and attributes.get("group", 1) == 1
            and all(s == 1 for s in attributes.get("strides", [1, 1]))
            and auto_pad in (b"NOTSET", "NOTSET") and bias_ok)


class _Graph:
    """The bookkeeping both rewrites share: initializers by name, consumers per value, fresh names."""

    def __init__(self, model: onnx.ModelProto):
        self.graph = model.graph
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in self.graph.output}
        self.taken = {n for node in self.graph.node for n in list(node.output) + [node.name]} | set(self.initializers)
        self.taken |= {i.name for i in self.graph.input}

    def fresh(self, stem: str) -> str:
        index = 0
        while f"{stem}_{index}" in self.taken:
            index += 1
        name = f"{stem}_{index}"
        self.taken.add(name)
        return name

    def constant(self, stem: str, array: np.ndarray) -> str:
        name = self.fresh(stem)
        self.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.initializers[name])

    def replace(self, replacements: dict[int, list[onnx.NodeProto]], removed: set[int]) -> None:
        """Swap node ``i`` for ``replacements[i]`` (in order, at its place) and drop ``removed``."""
        nodes = []
        for index, node in enumerate(self.graph.node):
            if index in replacements:
                nodes.extend(replacements[index])
            elif index not in removed:
                nodes.append(node)
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        used = {name for node in self.graph.node for name in node.input}
        kept = [t for t in self.graph.initializer if t.name in used or t.name in self.outputs]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)


def split_narrow_convolutions(model: onnx.ModelProto) -> int:
    """Each convolution whose (output channel, kernel tap) pairs fit in one :data:`BLOCK` (a 3×3
    kernel onto one channel), with at least :data:`BLOCK` input channels, becomes taps (1×1) →
    one-hot depthwise shift → the sum of each output's taps plus the bias, in place. Returns how many
    were rewritten.

    For one output channel the sum is a ``ReduceSum`` (and an ``Add`` of the bias), not a 1×1
    convolution: its result is then a plain one-channel map, not one padded to a block, so what
    follows it (U²-Net's upsampling, sigmoids and fusion of its side outputs) also works on one
    channel (U²-NetP 320²: 0.91× the exported graph's time, against 0.94× with a summing convolution)."""
    g = _Graph(model)
    replacements = {}
    for index, node in enumerate(g.graph.node):
        if not _plain_convolution(node, g.initializers):
            continue
        weight = g.array(node.input[1])
        outputs, inputs, kh, kw = weight.shape
        taps = kh * kw
        if outputs * taps > BLOCK or inputs < BLOCK or taps == 1:
            continue
        bias = _bias(node)
        # channel o·taps + t holds output o's contribution of kernel tap t = (i, j) at every pixel
        tap_weight = weight.reshape(outputs, inputs, taps).transpose(0, 2, 1).reshape(outputs * taps, inputs, 1, 1)
        one_hot = np.zeros((outputs * taps, 1, kh, kw), weight.dtype)
        for channel in range(outputs * taps):
            one_hot[channel, 0, (channel % taps) // kw, (channel % taps) % kw] = 1
        stem = node.name or node.output[0]
        tap_values, shifted = g.fresh(f"{stem}_taps"), g.fresh(f"{stem}_shifted")
        shift = {k: v for k, v in _attributes(node).items() if k in ("pads", "dilations")}
        nodes = [
            helper.make_node("Conv", [node.input[0], g.constant("narrow_taps", tap_weight)], [tap_values],
                             name=g.fresh(f"{stem}_tap_projection"), kernel_shape=[1, 1]),
            helper.make_node("Conv", [tap_values, g.constant("narrow_one_hot", one_hot)], [shifted],
                             name=g.fresh(f"{stem}_tap_shift"), kernel_shape=[kh, kw], group=outputs * taps, **shift),
        ]
        if outputs == 1:
            total = g.fresh(f"{stem}_tap_total") if bias else node.output[0]
            nodes.append(helper.make_node("ReduceSum", [shifted, g.constant("narrow_axis", np.array([1], np.int64))],
                                          [total], name=g.fresh(f"{stem}_tap_sum"), keepdims=1))
            if bias:
                bias_map = g.constant("narrow_bias", g.array(bias).reshape(1, 1, 1, 1))
                nodes.append(helper.make_node("Add", [total, bias_map], list(node.output), name=g.fresh(f"{stem}_bias")))
        else:
            summing = np.zeros((outputs, outputs * taps, 1, 1), weight.dtype)
            for o in range(outputs):
                summing[o, o * taps:(o + 1) * taps] = 1
            nodes.append(helper.make_node("Conv", [shifted, g.constant("narrow_sum", summing)] + ([bias] if bias else []),
                                          list(node.output), name=g.fresh(f"{stem}_tap_sum"), kernel_shape=[1, 1]))
        replacements[index] = nodes
    g.replace(replacements, set())
    return len(replacements)


def _channels(model: onnx.ModelProto) -> dict[str, int]:
    """Channel count (axis 1) of every value whose shape inference knows it."""
    inferred = onnx.shape_inference.infer_shapes(model)
    channels = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[info.name] = dims[1].dim_value
    for tensor in model.graph.initializer:
        if len(tensor.dims) == 4:
            channels[tensor.name] = tensor.dims[1]
    return channels


def split_concatenated_convolutions(model: onnx.ModelProto) -> int:
    """Each convolution (at least :data:`BLOCK` output channels) whose input is a channel ``Concat``
    used by nothing else, of parts of at least :data:`MIN_PART_CHANNELS` channels each, becomes one
    convolution per part (its slice of the weight; the bias on the first) and a chain of ``Add``;
    the ``Concat`` goes. Returns how many were rewritten."""
    g = _Graph(model)
    producers = {name: (index, node) for index, node in enumerate(g.graph.node) for name in node.output}
    channels = None
    replacements, removed = {}, set()
    for index, node in enumerate(g.graph.node):
        if not _plain_convolution(node, g.initializers):
            continue
        source = producers.get(node.input[0])
        if source is None:
            continue
        concat_index, concat = source
        if (concat.op_type != "Concat" or _attributes(concat).get("axis") != 1 or concat_index in removed
                or len(g.consumers.get(concat.output[0], [])) != 1 or concat.output[0] in g.outputs):
            continue
        weight = g.array(node.input[1])
        if weight.shape[0] < BLOCK:
            continue
        if channels is None:
            channels = _channels(model)
        parts = [channels.get(name) for name in concat.input]
        if parts.count(None) == 1:  # e.g. a Resize to a computed size: the convolution's weight says the rest
            parts[parts.index(None)] = weight.shape[1] - sum(p for p in parts if p is not None)
        if (len(parts) < 2 or any(p is None or p < MIN_PART_CHANNELS for p in parts)
                or sum(parts) != weight.shape[1]):
            continue
        attributes, bias = _attributes(node), _bias(node)
        stem = node.name or node.output[0]
        new_nodes, total, start = [], None, 0
        for part, (name, width) in enumerate(zip(concat.input, parts)):
            inputs = [name, g.constant(f"{stem}_part_weight", weight[:, start:start + width])]
            if part == 0 and bias:
                inputs.append(bias)
            start += width
            value = g.fresh(f"{stem}_part")
            new_nodes.append(helper.make_node("Conv", inputs, [value], name=g.fresh(f"{stem}_part_conv"), **attributes))
            if total is not None:
                last = part == len(parts) - 1
                summed = node.output[0] if last else g.fresh(f"{stem}_partial_sum")
                new_nodes.append(helper.make_node("Add", [total, value], [summed], name=g.fresh(f"{stem}_part_add")))
                value = summed
            total = value
        replacements[index] = new_nodes
        removed.add(concat_index)
    g.replace(replacements, removed)
    return len(replacements)
