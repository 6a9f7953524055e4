"""The fast inference path: ``accelerate(model, *example_inputs)`` → a callable like ``model``'s forward.

Every deep adapter runs its network through this function (via
:func:`matting.adapters.torch_utils.run`), so a benchmark can time it against the reference forward
or any other implementation. Four backends:

* ``"reference"`` — the network as it is, under ``torch.inference_mode()``: the official arithmetic,
  what the fidelity tests check. Chosen everywhere when ``MATTING_REFERENCE=1``.
* ``"torch"`` — BatchNorms folded into their convolutions (:func:`matting.models.fuse.fold_batchnorm`)
  and model and 4-D inputs in ``torch.channels_last``, under ``inference_mode``, at
  :func:`matting.threads.torch_threads` threads. Works for every network (data-dependent ones such as BGMv2's
  sampling refiner included): the default. An architecture with a ``fast_module``
  (:attr:`matting.models.Architecture.fast_module`) runs that module instead, as given.
* ``"onnxruntime"`` — the port exported once with ``torch.onnx.export`` (TorchScript exporter, opset 17,
  dynamic batch and spatial axes so one file serves every input size; :mod:`matting.models.onnx_rewrite`
  then splits the convolutions that onnxruntime's blocked kernels would pad), cached as
  ``<cache dir>/onnx/<arch>-<weights sha256>-<signature>.onnx`` (the signature covers the non-tensor
  arguments, the tensors' ranks and channels, the port's source files and the torch version), run by an
  ``InferenceSession`` with :func:`matting.threads.onnxruntime_threads` intra-op threads and spinning off. Right after an export
  the graph is checked against the reference forward at the example size and at a second size
  (example + the architecture's stride); a graph that differs by more than :data:`EXPORT_TOLERANCE`,
  or an export that fails, falls back to ``"torch"`` with a warning. A checked graph whose weights
  file is known is also recorded in :mod:`matting.models.runtime`, so that a later process can run it
  without importing torch (:func:`matting.adapters.torch_utils.load_network`).
* ``"openvino"`` — the same checked export, compiled by OpenVINO's CPU plugin
  (:mod:`matting.models.openvino_session`: float32, the same thread rule, free axes fixed per input
  size). Its outputs are checked once against the reference forward at the example (kept in the meta
  file); without OpenVINO, or beyond :data:`EXPORT_TOLERANCE`, onnxruntime runs the graph, with a warning.

Which backend a network gets (``backend=None``): ``MATTING_BACKEND`` if set, else the architecture's
measured preference (:attr:`matting.models.Architecture.fast_backend`, declared only where the model
benchmark found onnxruntime or OpenVINO faster), else ``"torch"``. Both run on the CPU only.

Measured (``python -m matting.bench models``, 2 shared cores): onnxruntime is declared for U²-NetP
(0.2–0.5× the reference forward, |Δ| ≤ 3e-5; MODNet was declared so too, until OpenVINO, below), and for U²-Net, the same code at 4× the
width (0.23× the benchmark's reference, which runs at torch's default 2 threads; interleaved at 1
thread: 0.67× the reference, 0.91× the torch backend; a torch copy with FFT and Winograd layers like
DIM's: 0.75–0.77×, behind onnxruntime's 0.63×). DIM stays on ``"torch"``, with its own ``fast_module``:
NCHW, wide 3×3 layers on mid-sized maps by Winograd (:mod:`matting.models.winograd_conv`), other large
convolutions by NNPACK's FFT (:mod:`matting.models.fft_conv`, its pool on every core), 0.63× the
reference at 320² and 0.64× at 608×800 (FFT alone: 0.76× and 0.71×), |Δ| 3e-7 on the fidelity input.
BGMv2's refiner stays on ``"torch"``: its sampling mode picks patches with a data-dependent top-k and
scatters them back, which the tracer would bake in at the example's size; not exported. BGMv2 has
its own ``fast_module``: folded, channels_last, a refiner that cuts its windows from the unpadded
maps (:class:`matting.models.bgmv2_patches.WindowedRefiner`), and its encoder–decoder, a static
graph, exported on its own and run on OpenVINO inside that module
(:func:`matting.models.graph_module.graph_module`; measured there). SIM and its classifier are declared
for onnxruntime (2 cores, two runs: 0.69–0.71× and 0.66–0.76× the reference, where the torch backend
ran 0.85× and 0.92×). MODNet and SHM are declared for OpenVINO, which ran their graphs at 0.81× and
0.77× onnxruntime's time (SHM on onnxruntime: 0.67–0.81× the reference, on torch 0.84×); on the
other graphs OpenVINO was within 4 % of onnxruntime either way (:mod:`matting.models.openvino_session`).
BGMv1 stays on torch (onnxruntime 0.81×, OpenVINO 0.79×, the folded channels_last copy 0.75–0.79×), with its own ``fast_module`` like DIM's: folded, NCHW, its stride-1
3×3 and 7×7 convolutions on maps from 128² by NNPACK's FFT, 0.69× at the adapter's 512².

An argument the network never reads (BGMv1's motion cue) is dropped from the exported graph; the graph's
inputs are matched to the forward's arguments by name (:func:`matting.models.runtime.graph_inputs`).

Outputs keep the reference forward's structure: the same tuple/list nesting, torch tensors (contiguous,
on the input's device) in the tensor places, and the reference's non-tensor values (``None``, DIM's
integer ``0``) in theirs.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
import os
import sys
import threading
import types
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import MattingError
from ..paths import cache_dir
from ..threads import onnxruntime_threads, threads, torch_threads  # noqa: F401  (threads: re-exported)
from . import onnx_rewrite, runtime
from .fuse import to_channels_last
from .runtime import reference_requested

__all__ = ["Accelerated", "BACKENDS", "EXPORT_TOLERANCE", "accelerate", "architecture_of", "onnx_path",
           "reference_requested", "threads"]

log = logging.getLogger(__name__)

BACKENDS = ("reference", "torch", "onnxruntime", "openvino")
EXPORT_FORMAT = 1            # bump when the export or its cache layout changes
OPSET = 17
EXPORT_TOLERANCE = 1e-3      # largest |Δ| of an exported graph vs the reference forward that is accepted

_export_lock = threading.Lock()


def architecture_of(model: nn.Module):
    """The registered :class:`~matting.models.Architecture` whose builder made ``model`` (or None)."""
    from .registry import architectures, get_architecture

    for name in architectures():
        architecture = get_architecture(name)
        if architecture.is_torch and architecture.build is type(model):
            return architecture
    return None


def _chosen_backend(model: nn.Module, backend: str | None, on_cpu: bool) -> str:
    if backend is None and reference_requested():
        return "reference"
    if backend is None:
        backend = os.environ.get("MATTING_BACKEND", "").strip() or None
    if backend is None:
        architecture = architecture_of(model)
        backend = getattr(architecture, "fast_backend", None) or "torch"
    if backend not in BACKENDS:
        raise MattingError(f"Unknown inference backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend in runtime.ENGINES and not on_cpu:
        return "torch"
    return backend


# --------------------------------------------------------------------------- output structure

def _flatten(outputs) -> tuple[list[torch.Tensor], Any]:
    """(tensors in order, a template with ``_Slot`` where each tensor was)."""
    tensors = []

    def visit(item):
        if isinstance(item, torch.Tensor):
            tensors.append(item)
            return _Slot()
        if isinstance(item, (tuple, list)):
            return type(item)(visit(child) for child in item)
        if isinstance(item, dict):
            return {key: visit(value) for key, value in item.items()}
        return item

    return tensors, visit(outputs)


class _Slot:
    pass


def _template_to_json(template):
    if isinstance(template, _Slot):
        return {"tensor": True}
    if isinstance(template, (tuple, list)):
        return {"sequence": type(template).__name__, "items": [_template_to_json(item) for item in template]}
    if isinstance(template, dict) and all(isinstance(key, str) for key in template):
        return {"mapping": [[key, _template_to_json(value)] for key, value in template.items()]}
    if template is None or isinstance(template, (bool, int, float, str)):
        return {"value": template}
    raise TypeError(f"cannot record an output of type {type(template).__name__}")


def _fill(template, tensors):
    iterator = iter(tensors)

    def visit(item):
        if isinstance(item, _Slot):
            return next(iterator)
        if isinstance(item, (tuple, list)):
            return type(item)(visit(child) for child in item)
        if isinstance(item, dict):
            return {key: visit(value) for key, value in item.items()}
        return item

    return visit(template)


def _contiguous(outputs):
    tensors, template = _flatten(outputs)
    return _fill(template, [tensor.contiguous() for tensor in tensors])


# --------------------------------------------------------------------------- the callable

class Accelerated:
    """A network's forward on one backend; call it with the forward's arguments.

    ``backend`` says which one runs, ``model`` is the reference network, ``note`` why this backend
    (e.g. a fallback)."""

    def __init__(self, model: nn.Module, backend: str, run: Callable, note: str = ""):
        self.model, self.backend, self._run, self.note = model, backend, run, note

    def __call__(self, *args):
        return self._run(*args)

    def __repr__(self) -> str:
        return f"<Accelerated {type(self.model).__name__} backend={self.backend}{' (' + self.note + ')' if self.note else ''}>"


def accelerate(model: nn.Module, *example_inputs, backend: str | None = None,
               weights_sha256: str | None = None) -> Accelerated:
    """A callable with ``model``'s forward arguments and outputs, on the fastest exact-enough backend.

    ``example_inputs`` are one set of arguments of the forward (tensors and, e.g., MODNet's
    ``inference`` flag); non-tensor arguments and the tensors' ranks and channel counts are fixed by
    them, the batch and spatial sizes are not. ``backend`` forces one of :data:`BACKENDS`.
    ``weights_sha256`` (the checkpoint file's sha256) keys the onnx cache; without it the state dict's
    tensors are hashed. ``model`` itself is not changed.
    """
    model = model.eval()
    devices = {x.device.type for x in example_inputs if isinstance(x, torch.Tensor)}
    on_cpu = devices <= {"cpu"} and all(p.device.type == "cpu" for p in model.parameters())
    chosen = _chosen_backend(model, backend, on_cpu)
    if chosen == "reference":
        return _reference(model)
    if chosen in runtime.ENGINES:
        # OpenVINO missing or differing: onnxruntime runs the same graph; no graph: torch.
        notes = []
        for engine in ("openvino", "onnxruntime") if chosen == "openvino" else ("onnxruntime",):
            try:
                return _exported(model, example_inputs, weights_sha256, engine, "; ".join(notes))
            except _NotExportable as reason:
                fallback = "onnxruntime" if engine == "openvino" else "torch"
                log.warning("%s backend unavailable for %s (%s); using the %s backend",
                            engine, type(model).__name__, reason, fallback)
                notes.append(f"{engine} fell back: {reason}")
        return _torch(model, example_inputs, note="; ".join(notes))
    return _torch(model, example_inputs)


def _reference(model):
    def run(*args):
        with torch.inference_mode():
            return model(*args)

    return Accelerated(model, "reference", run)


def threads_context(count: int):
    """Context: torch at ``count`` intra-op threads, restored afterwards."""
    class _Threads:
        def __enter__(self):
            self.previous = torch.get_num_threads()
            if self.previous != count:
                torch.set_num_threads(count)

        def __exit__(self, *exc):
            if torch.get_num_threads() != self.previous:
                torch.set_num_threads(self.previous)

    return _Threads()


def _torch(model, example_inputs, note: str = "") -> Accelerated:
    own = getattr(architecture_of(model), "fast_module", None)
    with torch.no_grad():  # not inference_mode: the folded parameters must be ordinary tensors
        if own is not None:  # the network's own choice of kernels and layout
            module, layout = own(model, *example_inputs).eval(), (lambda args: args)
        else:
            module, layout = _fold(model, example_inputs).to(memory_format=torch.channels_last), to_channels_last
    def run(*args):
        with threads_context(torch_threads()), torch.inference_mode():
            return _contiguous(module(*layout(args)))

    return Accelerated(model, "torch", run, note)


def _fold(model, example_inputs):
    from .fuse import fold_batchnorm

    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if not has_bn:
        return copy.deepcopy(model).eval()
    return fold_batchnorm(model, *example_inputs)


# --------------------------------------------------------------------------- onnxruntime

class _NotExportable(Exception):
    pass


def _source_files(model: nn.Module) -> list[str]:
    """The source files of every module class in ``model`` (the port's code) and of the graph
    rewrites, sorted; torch's own layers are left out (the torch version covers them)."""
    files = {onnx_rewrite.__file__}
    for module in model.modules():
        try:
            files.add(inspect.getsourcefile(type(module)))
        except TypeError:
            pass
    return sorted(name for name in files
                  if name and "site-packages" not in name and "dist-packages" not in name)


def _source_digest(model: nn.Module) -> str:
    """A digest of :func:`_source_files`."""
    digest = hashlib.sha256()
    for name in _source_files(model):
        digest.update(Path(name).read_bytes())
    return digest.hexdigest()


def _state_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _signature(model, example_inputs) -> dict:
    try:
        arguments = runtime.arguments_signature(example_inputs)
    except TypeError as exc:
        raise _NotExportable(str(exc)) from None
    return {"format": EXPORT_FORMAT, "opset": OPSET, "torch": torch.__version__, "class": type(model).__qualname__,
            "arguments": arguments, "source": _source_digest(model)}


def onnx_path(model: nn.Module, *example_inputs, weights_sha256: str | None = None) -> Path:
    """Where the onnx export of ``model`` for arguments like ``example_inputs`` is cached."""
    architecture = architecture_of(model)
    name = architecture.name if architecture else type(model).__name__.lower()
    signature = hashlib.sha256(json.dumps(_signature(model, example_inputs), sort_keys=True).encode()).hexdigest()
    weights = weights_sha256 or _state_digest(model)
    return cache_dir() / "onnx" / f"{name}-{weights[:16]}-{signature[:16]}.onnx"


def _exported(model, example_inputs, weights_sha256, engine: str, note: str = "") -> Accelerated:
    """The checked onnx export of ``model`` (made now if not cached) run by ``engine``."""
    if not runtime.engine_available("onnxruntime"):
        raise _NotExportable("onnxruntime is not installed (it checks every export)")
    if engine != "onnxruntime" and not runtime.engine_available(engine):
        raise _NotExportable(f"{engine} is not installed")
    path = onnx_path(model, *example_inputs, weights_sha256=weights_sha256)
    meta_path = path.with_suffix(".json")
    with _export_lock:
        meta = _read_meta(meta_path) if path.is_file() else None
        if meta is None:
            meta = _export(model, example_inputs, path, meta_path)
    if not meta.get("exact", False):
        raise _NotExportable(meta.get("reason", "the exported graph differs from the reference"))
    sessions = runtime.SizedSessions(path, onnxruntime_threads(), engine)
    positions = meta["tensor_positions"]
    example_size = runtime.common_size([example_inputs[i] for i in positions])
    try:
        session = sessions.session_for(example_size)
        feeds = runtime.graph_inputs(session, positions)
    except ValueError as reason:
        raise _NotExportable(f"the cached graph's inputs do not match: {reason}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. OpenVINO cannot compile the graph: not this engine
        raise _NotExportable(f"{engine} cannot run the graph: {type(exc).__name__}: {str(exc)[:200]}") from None
    if engine != "onnxruntime":
        meta = _check_engine(model, example_inputs, session, meta, meta_path, engine)
    checked = [name for name, outcome in meta.get("engines", {}).items() if outcome.get("exact")]
    if weights_sha256:  # a later process can run this graph without torch (matting.models.runtime)
        architecture = architecture_of(model)
        runtime.record(architecture.name if architecture else type(model).__name__.lower(), weights_sha256,
                       runtime.arguments_signature(example_inputs), path, _source_files(model), torch.__version__,
                       positions, meta["template"], engine, checked)

    def run(*args):
        session = sessions.session_for(runtime.common_size([args[i] for i in positions]))
        feed = {name: args[i].detach().cpu().contiguous().numpy() for name, i in feeds}
        outputs = session.run(None, feed)
        return runtime.fill_template(meta["template"], (torch.from_numpy(array) for array in outputs))

    return Accelerated(model, engine, run, note)


def _check_engine(model, example_inputs, session, meta: dict, meta_path: Path, engine: str) -> dict:
    """``meta`` with ``engine``'s outputs on the example checked against the reference (once per
    export, kept in the meta file); :class:`_NotExportable` if they differ by > EXPORT_TOLERANCE."""
    outcome = meta.get("engines", {}).get(engine)
    if outcome is None:
        with torch.inference_mode():
            reference = model(*example_inputs)
        difference = _difference(session, model, example_inputs, meta["tensor_positions"], reference)
        outcome = {"exact": difference <= EXPORT_TOLERANCE, "max_difference": difference}
        with _export_lock:
            meta = {**(_read_meta(meta_path) or meta)}
            meta["engines"] = {**meta.get("engines", {}), engine: outcome}
            _write_meta(meta_path, meta)
    if not outcome.get("exact"):
        raise _NotExportable(f"{engine}'s outputs differ from the reference by {outcome.get('max_difference'):.2g}")
    return meta


def _read_meta(meta_path: Path):
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None


class _TensorArguments(nn.Module):
    """``model`` as a function of its tensor arguments only (the others fixed), returning a flat tuple."""

    def __init__(self, model, example_inputs):
        super().__init__()
        self.model = model
        self.fixed = list(example_inputs)
        self.positions = [i for i, x in enumerate(example_inputs) if isinstance(x, torch.Tensor)]

    def forward(self, *tensors):
        args = list(self.fixed)
        for i, tensor in zip(self.positions, tensors):
            args[i] = tensor
        flat, _ = _flatten(self.model(*args))
        return tuple(flat)


def _export(model, example_inputs, path: Path, meta_path: Path) -> dict:
    """Export, check with onnxruntime against the reference at two sizes, and record the outcome
    next to the file."""
    with torch.inference_mode():
        reference = model(*example_inputs)
    tensors, template = _flatten(reference)
    wrapper = _TensorArguments(model, example_inputs).eval()
    inputs = tuple(example_inputs[i] for i in wrapper.positions)
    input_names = [f"input{i}" for i in range(len(inputs))]
    output_names = [f"output{i}" for i in range(len(tensors))]
    dynamic = {name: {0: "batch", 2: "height", 3: "width"} for name, x in zip(input_names, inputs) if x.dim() == 4}
    meta = {"tensor_positions": wrapper.positions, "template": _template_to_json(template)}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, inputs, str(temporary), dynamo=False, opset_version=OPSET,
                              input_names=input_names, output_names=output_names, dynamic_axes=dynamic,
                              do_constant_folding=True)
        meta["rewritten"] = onnx_rewrite.rewrite_file(temporary)  # checked below like the rest of the graph
        session = runtime.ort_session(temporary, onnxruntime_threads())
        difference = _difference(session, model, example_inputs, wrapper.positions, reference)
        second = _second_size(model, example_inputs)
        if second is not None:
            with torch.inference_mode():
                second_reference = model(*second)
            difference = max(difference, _difference(session, model, second, wrapper.positions, second_reference))
        meta.update(exact=difference <= EXPORT_TOLERANCE, max_difference=difference)
        if not meta["exact"]:
            meta["reason"] = f"the exported graph differs from the reference by {difference:.2g}"
        os.replace(temporary, path)
    except Exception as exc:  # noqa: BLE001 - any failure means "not this backend"
        meta.update(exact=False, reason=f"export failed: {type(exc).__name__}: {str(exc)[:200]}")
        temporary.unlink(missing_ok=True)
        path.write_bytes(b"")  # remember the failure (the meta says why)
    _write_meta(meta_path, meta)
    return meta


def _write_meta(meta_path: Path, meta: dict) -> None:  # atomically: another process may be reading it
    temporary = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(meta, indent=1))
    os.replace(temporary, meta_path)


def _difference(session, model, args, positions, reference) -> float:
    feed = {name: args[i].detach().cpu().contiguous().numpy() for name, i in runtime.graph_inputs(session, positions)}
    outputs = session.run(None, feed)
    expected, _ = _flatten(reference)
    if len(outputs) != len(expected):
        return float("inf")
    worst = 0.0
    for array, tensor in zip(outputs, expected):
        if tuple(array.shape) != tuple(tensor.shape):
            return float("inf")
        worst = max(worst, float((torch.from_numpy(array) - tensor.float().cpu()).abs().max()) if array.size else 0.0)
    return worst


def _second_size(model, example_inputs):
    """The example's tensors at a different spatial size (+ the architecture's stride), random values
    in the same range, to check that the dynamic axes really are dynamic."""
    architecture = architecture_of(model)
    stride = max(1, getattr(getattr(architecture, "input_config", None), "stride", 1) or 1)
    step = stride if stride > 1 else 8
    generator = torch.Generator().manual_seed(0)
    second = []
    for x in example_inputs:
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            n, c, h, w = x.shape
            low, high = float(x.min()), float(x.max())
            second.append(low + (high - low) * torch.rand((n, c, h + step, w + 2 * step), generator=generator))
        else:
            second.append(x)
    return tuple(second)


class _CallableModule(types.ModuleType):
    """Importing this submodule binds ``matting.models.accelerate`` to it (not to the function of the
    same name); calling the module calls the function, so ``models.accelerate(...)`` always works."""

    def __call__(self, model, *example_inputs, **options):
        return accelerate(model, *example_inputs, **options)


sys.modules[__name__].__class__ = _CallableModule
