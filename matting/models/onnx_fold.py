"""Recover a PyTorch ``state_dict`` from an ONNX graph whose BatchNorms were folded into convolutions.

``torch.onnx.export`` of a model in eval mode fuses every ``Conv → BatchNorm`` pair
into one ``Conv`` node and drops the module names of most weights. This is how the
official U²-NetP weights are distributed in the rembg packages (``u2netp.onnx``:
opset 11, exported by PyTorch 1.9, 119 ``Conv`` nodes, no ``BatchNormalization``).

The mapping back to a model rests on one fact: the exporter emits ``Conv`` nodes in
the order in which the model's convolutions run. We record that order with forward
hooks, copy each node's weight and bias into its convolution, and give every
BatchNorm the identity transform (weight 1, bias 0, mean 0, variance 1 − eps), so that
``bn(conv(x))`` of the loaded model equals the folded ``conv(x)``.

Tensors are read with ``onnx.numpy_helper`` only; nothing is unpickled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ..errors import MattingError

__all__ = ["state_dict_from_folded_onnx"]

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_DEFAULT_SPATIAL_SIZE = 64


@dataclass
class _OnnxConv:
    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    attributes: dict

    @property
    def label(self):
        return f"ONNX Conv node {self.name!r}"


def state_dict_from_folded_onnx(onnx_path_or_bytes, model: nn.Module,
                                example_input: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Return a ``state_dict`` for ``model`` holding the weights of a BatchNorm-folded ONNX graph.

    ``model`` must have exactly one ``nn.Conv*`` call per ONNX ``Conv`` node, in
    execution order, and no weights besides convolutions and BatchNorms. Its
    execution order is recorded by one forward pass (in eval mode, without
    gradients) on ``example_input``, by default zeros of the graph's input shape
    (dynamic dimensions: batch 1, spatial size 64). ``model`` itself is not modified.

    Raises :class:`~matting.errors.MattingError` when the graph is unreadable, still
    contains BatchNormalization nodes, or when the number of convolutions, any
    weight or bias shape, or any stride/padding/dilation/group setting differs.
    """
    graph = _load_graph(onnx_path_or_bytes)
    onnx_convs = _folded_convs(graph)
    if example_input is None:
        example_input = _zeros_like_graph_input(graph)
    torch_convs = _convs_in_execution_order(model, example_input)

    if len(torch_convs) != len(onnx_convs):
        raise MattingError(
            f"The ONNX graph has {len(onnx_convs)} Conv nodes but {type(model).__name__} runs "
            f"{len(torch_convs)} convolutions; the graph does not belong to this architecture."
        )

    module_names = {module: name for name, module in model.named_modules()}
    tensors: dict[str, torch.Tensor] = {}
    for position, (module, onnx_conv) in enumerate(zip(torch_convs, onnx_convs), start=1):
        prefix = module_names[module]
        where = f"convolution #{position} ({prefix!r}) vs {onnx_conv.label}"
        _check_conv_settings(module, onnx_conv, where)
        _assign(tensors, _key(prefix, "weight"), module.weight, onnx_conv.weight, where)
        if module.bias is not None:
            bias = onnx_conv.bias if onnx_conv.bias is not None else np.zeros(module.out_channels, np.float32)
            _assign(tensors, _key(prefix, "bias"), module.bias, bias, where)
        elif onnx_conv.bias is not None and np.any(onnx_conv.bias):
            raise MattingError(f"{where}: the ONNX convolution has a bias but the PyTorch one has none.")

    for name, module in model.named_modules():
        if isinstance(module, _BATCH_NORMS):
            tensors.update(_identity_batch_norm(name, module))

    return _complete_state_dict(model, tensors)


def _key(module_name, tensor_name):
    return f"{module_name}.{tensor_name}" if module_name else tensor_name


def _load_graph(onnx_path_or_bytes) -> onnx.GraphProto:
    if isinstance(onnx_path_or_bytes, onnx.ModelProto):  # already read (matting.weights.read_checkpoint)
        return onnx_path_or_bytes.graph
    try:
        if isinstance(onnx_path_or_bytes, (bytes, bytearray, memoryview)):
            return onnx.load_model_from_string(bytes(onnx_path_or_bytes)).graph
        return onnx.load(os.fspath(onnx_path_or_bytes)).graph
    except Exception as error:  # missing file, protobuf DecodeError, ...: no common base class
        raise MattingError(f"Cannot read the ONNX model {_describe(onnx_path_or_bytes)}: {error}") from error


def _describe(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"({len(source)} bytes)"
    return repr(os.fspath(source))


def _folded_convs(graph: onnx.GraphProto) -> list[_OnnxConv]:
    batch_norms = [node.name or node.output[0] for node in graph.node if node.op_type == "BatchNormalization"]
    if batch_norms:
        raise MattingError(
            f"The ONNX graph still has {len(batch_norms)} BatchNormalization nodes (e.g. {batch_norms[0]!r}); "
            "this converter expects a graph exported in eval mode, with BatchNorms folded into the convolutions."
        )
    constants = _constant_tensors(graph)
    convs = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        name = node.name or node.output[0]

        def constant(input_name, what):
            if input_name not in constants:
                raise MattingError(f"The {what} of ONNX Conv node {name!r} ({input_name!r}) is not a constant tensor.")
            return constants[input_name]

        weight = constant(node.input[1], "weight")
        bias = constant(node.input[2], "bias") if len(node.input) > 2 and node.input[2] else None
        attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
        convs.append(_OnnxConv(name, weight, bias, attributes))
    return convs


def _constant_tensors(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers and the outputs of ``Constant`` nodes, by name."""
    tensors = {initializer.name: numpy_helper.to_array(initializer) for initializer in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    tensors[node.output[0]] = numpy_helper.to_array(attribute.t)
    return tensors


def _zeros_like_graph_input(graph: onnx.GraphProto) -> torch.Tensor:
    initializer_names = {initializer.name for initializer in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializer_names]
    if len(inputs) != 1:
        raise MattingError(
            f"The ONNX graph has {len(inputs)} inputs; pass example_input to record the execution order."
        )
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [dim.dim_value if dim.HasField("dim_value") else None for dim in dims]
    if len(shape) < 2 or shape[1] is None:
        raise MattingError(f"Cannot tell the input shape of the ONNX graph ({shape}); pass example_input.")
    defaults = [1, shape[1]] + [_DEFAULT_SPATIAL_SIZE] * (len(shape) - 2)
    return torch.zeros([size if size is not None else default for size, default in zip(shape, defaults)])


def _convs_in_execution_order(model: nn.Module, example_input: torch.Tensor) -> list[nn.Module]:
    convs = [module for module in model.modules() if isinstance(module, nn.modules.conv._ConvNd)]
    calls: list[nn.Module] = []
    handles = [conv.register_forward_hook(lambda module, args, output: calls.append(module)) for conv in convs]
    was_training = model.training
    try:
        model.eval()  # train mode would update the BatchNorm running statistics
        with torch.no_grad():
            model(example_input)
    except (RuntimeError, ValueError, TypeError) as error:
        raise MattingError(
            f"{type(model).__name__} cannot run on an input of shape {tuple(example_input.shape)} "
            f"(taken from the ONNX graph unless example_input is given): {error}"
        ) from error
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return calls


def _check_conv_settings(module: nn.Module, onnx_conv: _OnnxConv, where: str):
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        raise MattingError(f"{where}: transposed convolutions are not supported.")
    attributes = onnx_conv.attributes
    spatial = len(module.kernel_size)
    expected = {
        "strides": list(module.stride),
        "dilations": list(module.dilation),
        "group": module.groups,
    }
    if isinstance(module.padding, tuple) and module.padding_mode == "zeros":
        expected["pads"] = list(module.padding) * 2  # ONNX: all begins, then all ends
    found = {
        "strides": list(attributes.get("strides", [1] * spatial)),
        "dilations": list(attributes.get("dilations", [1] * spatial)),
        "group": attributes.get("group", 1),
        "pads": list(attributes.get("pads", [0] * 2 * spatial)),
    }
    for setting, value in expected.items():
        if found[setting] != value:
            raise MattingError(f"{where}: {setting} is {found[setting]} in ONNX but {value} in PyTorch.")


def _assign(tensors, key, parameter, array, where):
    if tuple(array.shape) != tuple(parameter.shape):
        raise MattingError(
            f"{where}: {key} has shape {tuple(parameter.shape)} in PyTorch but {tuple(array.shape)} in ONNX."
        )
    value = torch.from_numpy(np.array(array, dtype=np.float32)).to(parameter.dtype)
    if key in tensors and not torch.equal(tensors[key], value):
        raise MattingError(f"{where}: {key} runs more than once with different ONNX weights.")
    tensors[key] = value


def _identity_batch_norm(name, module) -> dict[str, torch.Tensor]:
    """BatchNorm parameters for which ``bn(x) == x`` in eval mode."""
    channels = module.num_features
    identity = {}
    if module.affine:
        identity[_key(name, "weight")] = torch.ones(channels)
        identity[_key(name, "bias")] = torch.zeros(channels)
    if module.track_running_stats:
        identity[_key(name, "running_mean")] = torch.zeros(channels)
        identity[_key(name, "running_var")] = torch.full((channels,), 1.0 - module.eps)
    return identity


def _complete_state_dict(model, tensors):
    """Order the tensors as ``model.state_dict()``; integer counters keep the model's values."""
    state = {}
    missing = []
    for key, current in model.state_dict().items():
        if key in tensors:
            state[key] = tensors[key].to(current.dtype)
        elif current.is_floating_point():
            missing.append(key)
        else:
            state[key] = current.clone()
    if missing:
        raise MattingError(
            f"{len(missing)} weights of {type(model).__name__} belong to neither a convolution nor a "
            f"BatchNorm and cannot be recovered from the ONNX graph: {', '.join(missing[:5])}"
            + (", ..." if len(missing) > 5 else "")
        )
    return state
