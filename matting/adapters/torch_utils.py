"""Shared helpers for the deep adapters: keep ready networks loaded, run them without autograd, and
move arrays in and out.

Torch is imported lazily (inside the functions), so importing the adapters stays cheap.

* :func:`load_model` is ``matting.models.create(arch, checkpoint=checkpoint_id, **kwargs)`` (which
  resolves, reads, converts and loads the checkpoint; a missing file raises its
  :class:`~matting.errors.MattingError` with the fetch command), moved to :func:`device` and cached per
  (arch, kwargs, weights file, device) in this process. The cache is thread-safe and bounded (least
  recently used first out), so one-off ``matting.run`` calls stay fast; a
  :func:`matting.session` holds its network itself.
* :func:`run` is the network's forward on its fast path: ``matting.models.accelerate(model, *inputs)``
  (BatchNorm folded, channels_last, onnxruntime where measured faster), built once per (network,
  non-tensor arguments, tensor ranks and channels) and cached; ``MATTING_REFERENCE=1`` (or
  ``reference=True``) runs the reference forward instead, the official arithmetic.
* :func:`load_network` is what an adapter whose network may run as a recorded onnxruntime graph
  loads instead (:mod:`matting.models.runtime`): that graph when an earlier process exported and
  checked it and nothing it depends on changed — no torch import, no network built — else
  :func:`load_model`. :func:`run` takes either, with numpy arrays or tensors.
* :func:`inference` is ``torch.inference_mode()``; :func:`library_forward` adds the thread count of
  :func:`matting.threads.threads` for a library's own model called directly (transformers'
  SAM and ViTMatte), which does not go through :func:`run`.
* :func:`to_tensor` / :func:`plane` / :func:`rgb` convert between numpy H×W×C / H×W arrays and
  1×C×H×W float32 tensors.

The device is the CPU unless ``MATTING_DEVICE`` names another (e.g. ``cuda``); on CUDA, TF32 is
switched off so results stay within float32 rounding of the CPU's.
"""
from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
import numpy as np

from ..errors import MattingError

MAX_CACHED_MODELS = 6

_models: OrderedDict = OrderedDict()
_lock = threading.RLock()
_weights_files: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # network → checkpoint file
_accelerated: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()     # network → {signature: callable}


def device():
    """The torch device every deep adapter runs on (``MATTING_DEVICE``, default ``cpu``)."""
    import torch

    name = os.environ.get("MATTING_DEVICE", "cpu").strip() or "cpu"
    try:
        chosen = torch.device(name)
    except RuntimeError:
        raise MattingError(f"MATTING_DEVICE={name!r} is not a torch device (use cpu or cuda).") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise MattingError(f"MATTING_DEVICE={name!r} but CUDA is not available here; unset it to use the CPU.")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return chosen


def inference():
    """Context manager for a forward pass: no autograd bookkeeping."""
    import torch

    return torch.inference_mode()


def library_forward():
    """Context for calling a library's model directly: no autograd and torch at the workbench's thread
    count (:func:`matting.threads.torch_threads`: on a machine with at most 2 cores, one thread unless
    the cores are idle).
    Measured on a busy 2-core machine: SAM's mask decoder took 0.19 s at one thread against 1.6 s at
    torch's default of two, so every click paid the oversubscription."""
    import contextlib

    import torch

    from ..models.accelerate import threads_context
    from ..threads import torch_threads

    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    stack.enter_context(threads_context(torch_threads()))
    return stack


def load_model(arch: str, checkpoint_id: str, **model_kwargs):
    """The network ``arch`` with the weights of checkpoint ``checkpoint_id``, in eval mode, cached.

    ``model_kwargs`` are constructor arguments, merged over the manifest entry's ``model_kwargs``.
    """
    from .. import models, weights

    path = weights.require(checkpoint_id)  # MattingError with the fetch command when missing
    kwargs = {**dict(weights.entry(checkpoint_id).model_kwargs), **model_kwargs}
    stat = path.stat()
    target = device() if models.get_architecture(arch).is_torch else None  # a runtime graph needs no torch
    key = (arch, tuple(sorted(kwargs.items())), str(path), stat.st_size, stat.st_mtime_ns, str(target))
    with _lock:
        model = _models.get(key)
        if model is not None:
            _models.move_to_end(key)
            return model
        model = models.create(arch, checkpoint=checkpoint_id, **model_kwargs)
        if target is not None:
            model = model.to(target)
            _weights_files[model] = path
        _models[key] = model
        while len(_models) > MAX_CACHED_MODELS:
            _models.popitem(last=False)
        return model


def load_network(arch: str, checkpoint_id: str, *example_arguments):
    """What :func:`run` needs to run ``arch`` with checkpoint ``checkpoint_id`` on arguments like
    ``example_arguments`` (numpy arrays and plain values; only their kind matters): the recorded
    onnxruntime graph of an earlier export when there is one and nothing it depends on has changed
    (:mod:`matting.models.runtime`: no torch import, no network built), else :func:`load_model`.

    The graph is used only where the fast path would pick it anyway: not with ``MATTING_REFERENCE``,
    a ``MATTING_BACKEND`` other than onnxruntime or openvino, or a ``MATTING_DEVICE`` other than the
    CPU; it runs on the engine accelerate recorded it for, or on the one ``MATTING_BACKEND`` names.
    """
    from .. import weights
    from ..models import runtime
    from ..threads import onnxruntime_threads

    backend = os.environ.get("MATTING_BACKEND", "").strip()
    on_cpu = os.environ.get("MATTING_DEVICE", "cpu").strip() in ("", "cpu")
    if runtime.reference_requested() or backend not in ("", *runtime.ENGINES) or not on_cpu:
        return load_model(arch, checkpoint_id)
    path = weights.require(checkpoint_id)
    arguments = runtime.arguments_signature(example_arguments)
    stat = path.stat()
    key = ("ready", arch, str(path), stat.st_size, stat.st_mtime_ns, repr(arguments), backend)
    with _lock:
        graph = _models.get(key)
        if graph is None:
            graph = runtime.find(arch, weights.sha256_file(path), arguments, onnxruntime_threads(), backend or None)
            if graph is None:
                return load_model(arch, checkpoint_id)
            graph.origin = (arch, checkpoint_id)
            _models[key] = graph
            while len(_models) > MAX_CACHED_MODELS:
                _models.popitem(last=False)
        _models.move_to_end(key)
        return graph


def run(model, *inputs, reference: bool = False, **keywords):
    """``model(*inputs, **keywords)`` on its fast path (:func:`matting.models.accelerate`), without
    autograd; keyword arguments are bound to the forward's positional parameters first.

    The accelerated callable is built on the first call for this network and this kind of arguments
    (the non-tensor values, the tensors' ranks and channels; not their sizes) and kept as long as the
    network lives. ``reference=True`` or ``MATTING_REFERENCE=1``: the reference forward.
    """
    from ..models.runtime import ReadyGraph, reference_requested

    reference = reference or reference_requested()
    if isinstance(model, ReadyGraph):
        if not reference and not keywords:
            return model(*(_to_numpy(x) for x in inputs))
        model = load_model(*model.origin)  # the reference forward needs the network itself
    import torch

    inputs = tuple(from_nchw(x) if isinstance(x, np.ndarray) else x for x in inputs)
    if reference:
        with torch.inference_mode():
            return model(*inputs, **keywords)
    if keywords:
        import inspect

        bound = inspect.signature(model.forward).bind(*inputs, **keywords)
        bound.apply_defaults()
        if bound.kwargs:
            raise TypeError(f"{type(model).__name__}.forward: keyword-only arguments {sorted(bound.kwargs)}")
        inputs = bound.args
    signature = tuple(("tensor", x.dim(), x.shape[1] if x.dim() > 1 else None, x.dtype, x.device.type)
                      if isinstance(x, torch.Tensor) else ("value", x) for x in inputs)
    with _lock:
        per_model = _accelerated.setdefault(model, {})
        fast = per_model.get(signature)
        if fast is None:
            fast = per_model[signature] = _accelerate(model, inputs)
    return fast(*inputs)


def _to_numpy(x):
    if isinstance(x, np.ndarray) or not hasattr(x, "detach"):
        return x
    return x.detach().cpu().contiguous().numpy()


def _accelerate(model, inputs):
    from .. import weights
    from ..models.accelerate import accelerate

    path = _weights_files.get(model)
    sha256 = weights.sha256_file(path) if path is not None else None
    return accelerate(model, *inputs, weights_sha256=sha256)


def accelerated_for(model) -> list:
    """The accelerated callables built so far for ``model`` (benchmarks and tests)."""
    with _lock:
        return list(_accelerated.get(model, {}).values())


def clear_cache() -> None:
    """Forget every loaded network (tests; or to free memory)."""
    with _lock:
        _models.clear()
        _accelerated.clear()


def cached_models() -> list[tuple]:
    with _lock:
        return list(_models)


# --------------------------------------------------------------------------- numpy <-> torch

def to_tensor(array: np.ndarray):
    """H×W×C or H×W numpy array → 1×C×H×W float32 tensor on :func:`device`."""
    import torch

    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].to(device())


def from_nchw(array: np.ndarray):
    """A numpy N×C×H×W array → float32 tensor on :func:`device`."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device())


def plane(tensor) -> np.ndarray:
    """1×1×H×W tensor (or numpy array, e.g. from a ready graph) → float32 H×W array."""
    if isinstance(tensor, np.ndarray):
        return tensor[0, 0].astype(np.float32, copy=True)
    return tensor.detach()[0, 0].to("cpu", torch_float32()).numpy().copy()


def rgb(tensor) -> np.ndarray:
    """1×3×H×W tensor (or numpy array) → float32 H×W×3 array."""
    if isinstance(tensor, np.ndarray):
        return np.ascontiguousarray(tensor[0].transpose(1, 2, 0), dtype=np.float32)
    return tensor.detach()[0].permute(1, 2, 0).to("cpu", torch_float32()).numpy().copy()


def torch_float32():
    import torch

    return torch.float32
