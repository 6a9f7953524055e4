"""Fold BatchNorm into the convolution that feeds it, for inference.

In eval mode ``bn(conv(x))`` is an affine map per output channel of ``conv(x)``, so it
can be merged into the convolution's weight and bias and the BatchNorm dropped. That
is only correct where the BatchNorm's input *is* the convolution's output and nothing
else reads that output. :func:`find_conv_bn_pairs` establishes this from the code:
it traces the model with ``torch.fx`` and keeps a pair only when the graph has a
``Conv → BatchNorm`` edge with no other use of the convolution's output, and the two
modules are called nowhere else. Models whose ``forward`` cannot be traced as a whole
(data-dependent control flow, such as BackgroundMattingV2's refiner) are traced
submodule by submodule; the convolutions of a module that cannot be traced at all
are left alone.

:func:`to_channels_last` is the other half of the torch fast path: its 4-D inputs in the layout
that a channels_last network reads without converting.
"""
from __future__ import annotations

import copy
import warnings
from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["ConvBnPair", "find_conv_bn_pairs", "fold_batchnorm", "to_channels_last"]


def to_channels_last(args) -> tuple:
    """``args`` with every 4-D tensor in ``torch.channels_last`` (the rest as given)."""
    return tuple(x.contiguous(memory_format=torch.channels_last)
                 if isinstance(x, torch.Tensor) and x.dim() == 4 else x for x in args)


_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class ConvBnPair:
    conv_name: str
    bn_name: str
    owner_name: str  # the traced module whose graph proves the pair ("" for the root)


def fold_batchnorm(model: nn.Module, *example_inputs, **example_kwargs) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every provable Conv → BatchNorm pair fused.

    Each fused convolution gets the BatchNorm's affine map in its weight and bias, and
    the BatchNorm is replaced by ``nn.Identity``; ``model`` itself is not changed. The
    copy is meant for inference only: its ``state_dict`` no longer has the folded
    BatchNorms' entries, and training it would not train BatchNorms.

    With ``example_inputs`` (and ``example_kwargs``) the copy is also run once before
    folding, to confirm that each paired module is only ever called from inside the
    traced module that proves the pair, as often as the trace says; pairs that fail
    this are left unfolded.
    """
    folded = copy.deepcopy(model).eval()
    pairs = find_conv_bn_pairs(folded)
    if pairs and (example_inputs or example_kwargs):
        pairs = _pairs_confirmed_at_runtime(folded, pairs, example_inputs, example_kwargs)
    modules = dict(folded.named_modules(remove_duplicate=False))
    for pair in pairs:
        _fuse_into_conv(modules[pair.conv_name], modules[pair.bn_name])
        _replace_everywhere(folded, modules[pair.bn_name], nn.Identity())
    return folded


def find_conv_bn_pairs(model: nn.Module) -> list[ConvBnPair]:
    """Conv → BatchNorm pairs of ``model`` that are safe to fold, proven by ``torch.fx`` traces."""
    traced = _trace_largest_submodules(model)
    names = {}
    for name, module in model.named_modules():
        names.setdefault(module, name)

    # How often each module is called, over all traced graphs.
    call_sites = Counter()
    for _, owner, graph in traced:
        for node in graph.nodes:
            if node.op == "call_module":
                call_sites[owner.get_submodule(node.target)] += 1

    pairs = []
    for owner_name, owner, graph in traced:
        for node in graph.nodes:
            bn = _called_module(owner, node)
            if not isinstance(bn, _BatchNorm) or len(node.args) != 1 or node.kwargs:
                continue
            producer = node.args[0]
            conv = _called_module(owner, producer)
            if not isinstance(conv, _CONVOLUTIONS) or len(producer.users) != 1:
                continue
            # One call each: a conv or BatchNorm called at another place too would
            # see its other calls changed by the folding.
            if call_sites[conv] == 1 and call_sites[bn] == 1 and _can_fold(conv, bn):
                pairs.append(ConvBnPair(names[conv], names[bn], owner_name))
    return pairs


class _Tracer(fx.Tracer):
    """The default tracer, also accepting containers built on the fly (``self.features[2:4]``)."""

    def path_of_module(self, mod: nn.Module) -> str:
        try:
            return super().path_of_module(mod)
        except NameError:
            # A slice of an installed Sequential is traced through, never called as a
            # leaf, so its name only labels the scope; its children are installed.
            if isinstance(mod, nn.Sequential) and not self.is_leaf_module(mod, ""):
                return f"<unnamed {type(mod).__name__}>"
            raise


def _trace_largest_submodules(model: nn.Module) -> list[tuple[str, nn.Module, fx.Graph]]:
    """Trace ``model``; where that fails, trace its children instead, recursively."""
    traced, seen = [], set()
    tracer = _Tracer()

    def visit(module, name):
        if module in seen or tracer.is_leaf_module(module, name):
            return
        seen.add(module)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = tracer.trace(module)
            traced.append((name, module, graph))
        except Exception:  # noqa: BLE001 - any failure to trace means "prove nothing here"
            for child_name, child in module.named_children():
                visit(child, f"{name}.{child_name}" if name else child_name)

    visit(model, "")
    return traced


def _called_module(owner: nn.Module, node) -> nn.Module | None:
    if isinstance(node, fx.Node) and node.op == "call_module":
        return owner.get_submodule(node.target)
    return None


def _can_fold(conv: nn.Module, bn: _BatchNorm) -> bool:
    uses_running_stats = bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None
    has_hooks = any(module._forward_hooks or module._forward_pre_hooks for module in (conv, bn))
    return uses_running_stats and conv.out_channels == bn.num_features and not has_hooks


def _pairs_confirmed_at_runtime(model, pairs, example_inputs, example_kwargs):
    """Keep the pairs whose modules run only inside their owner, once per owner call."""
    modules = dict(model.named_modules(remove_duplicate=False))
    owner_depth = Counter()
    calls = Counter()
    called_outside_owner = set()
    handles = []

    def enter(owner):
        def hook(module, args):
            owner_depth[owner] += 1
            calls[owner] += 1
        return hook

    def leave(owner):
        def hook(module, args, output):
            owner_depth[owner] -= 1
        return hook

    def check(owner, name):
        def hook(module, args):
            calls[name] += 1
            if owner_depth[owner] == 0:
                called_outside_owner.add(name)
        return hook

    for owner in {pair.owner_name for pair in pairs}:
        owner_module = modules[owner] if owner else model
        handles.append(owner_module.register_forward_pre_hook(enter(owner)))
        handles.append(owner_module.register_forward_hook(leave(owner), always_call=True))
    for pair in pairs:
        for name in (pair.conv_name, pair.bn_name):
            handles.append(modules[name].register_forward_pre_hook(check(pair.owner_name, name)))
    try:
        with torch.no_grad():
            model(*example_inputs, **example_kwargs)
    finally:
        for handle in handles:
            handle.remove()

    return [pair for pair in pairs
            if not {pair.conv_name, pair.bn_name} & called_outside_owner
            and calls[pair.conv_name] == calls[pair.bn_name] == calls[pair.owner_name]]


@torch.no_grad()
def _fuse_into_conv(conv: nn.Module, bn: _BatchNorm) -> None:
    """Make ``conv`` compute ``bn(conv(x))`` (eval mode); the arithmetic is done in float64."""
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    if conv.bias is not None:
        shift = shift + conv.bias.double() * scale

    weight_scale = scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    conv.weight = nn.Parameter((conv.weight.double() * weight_scale).to(conv.weight.dtype),
                               requires_grad=conv.weight.requires_grad)
    conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)


def _replace_everywhere(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` in place of ``old`` under every parent that holds it (shared modules too)."""
    for parent in list(model.modules()):
        for child_name, child in parent._modules.items():
            if child is old:
                parent._modules[child_name] = new
