"""Running an exported network without PyTorch: onnxruntime (or OpenVINO) sessions and the ready-graph index.

Torch-free on purpose. Importing torch costs a fresh process about 1.5 s on these CPUs (4 s on a
busy machine), longer than U²-NetP's whole forward. Once :mod:`matting.models.accelerate` has
exported a network to onnx and checked the graph against the reference forward, it records the fact
here (:func:`record`): which architecture, which weights file (sha256), which kind of arguments, the
torch version and the sha256 of every source file of the port that the export depended on. A later
process asks :func:`find` for that graph and, if nothing it depended on has changed, runs it
straight away with onnxruntime, or with OpenVINO where that engine's outputs were checked too
(:class:`ReadyGraph`), without importing torch or building the
network. Anything different (another torch, an edited port, another file under the same name) →
no graph, and the caller takes the ordinary path (which re-exports and records again).

Records live next to the graphs: ``<cache dir>/onnx/ready-<arch>-<weights sha256[:16]>-<arguments
digest[:16]>.json``, written atomically. onnx files are data (no code runs when one is loaded).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from ..paths import cache_dir

__all__ = ["ENGINES", "ReadyGraph", "SizedSessions", "arguments_signature", "common_size", "engine_available",
           "fill_template", "find", "make_session", "ort_session", "record", "reference_requested"]

RECORD_FORMAT = 2  # 2: records list the graph rewrites (onnx_rewrite) among their sources


def reference_requested() -> bool:
    """``MATTING_REFERENCE=1`` (or true/yes/on): every network runs its reference forward."""
    return os.environ.get("MATTING_REFERENCE", "").strip().lower() in ("1", "true", "yes", "on")


def ort_session(path: Path, count: int, fixed_dimensions: dict | None = None):
    """An onnxruntime CPU session for ``path`` at ``count`` intra-op threads, idle workers not
    spinning; ``fixed_dimensions`` ({axis name: size}) fixes free axes of the graph's inputs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = count
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle workers otherwise spin and starve other threads of a shared machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    for name, value in (fixed_dimensions or {}).items():
        options.add_free_dimension_override_by_name(name, value)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# The runtimes that run an exported graph (accelerate's backends of the same names).
ENGINES = ("onnxruntime", "openvino")


def engine_available(engine: str) -> bool:
    """Whether ``engine`` (one of :data:`ENGINES`) can be imported here."""
    if engine == "openvino":
        from .openvino_session import available

        return available()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def make_session(engine: str, path: Path, count: int, fixed_dimensions: dict | None = None):
    """A session of ``engine`` for the graph ``path``: :func:`ort_session`, or an
    :class:`~matting.models.openvino_session.OpenVINOSession` with the same ``get_inputs``/``run``."""
    if engine == "openvino":
        from .openvino_session import OpenVINOSession

        return OpenVINOSession(path, count, fixed_dimensions)
    if engine != "onnxruntime":
        raise ValueError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
    return ort_session(path, count, fixed_dimensions)


# Our exports name the free axes of every 4-D input alike (accelerate's ``_export``).
FREE_AXES = ("batch", "height", "width")


def common_size(arrays) -> tuple[int, int, int] | None:
    """(batch, height, width) shared by every 4-D array in ``arrays``, or None if they differ or
    there is none: the size for which a graph's free axes can be fixed."""
    sizes = {tuple(int(d) for d in (a.shape[0], a.shape[2], a.shape[3])) for a in arrays if getattr(a, "ndim", 0) == 4}
    return sizes.pop() if len(sizes) == 1 else None


class SizedSessions:
    """One exported graph as sessions of ``engine`` (:data:`ENGINES`) with its free axes fixed to the
    size of the input.

    With the height and width known when the session is made, onnxruntime folds the graph's shape
    arithmetic (each ``interpolate(size=...)`` of U²-Net reads its target's shape at run time:
    106 Shape, 68 Gather and 38 Resize nodes for U²-NetP) and plans its memory once. Measured
    (2 threads, interleaved, one process): U²-NetP 320² 0.94× the free-axes session, U²-Net 0.96×,
    the SIM classifier 0.97×, MODNet and SHM unchanged. A session takes 0.02–0.3 s to make.

    The first size asked for gets its fixed session at once (the free-axes session would cost as
    much to make). After that, a new size runs on the free-axes session, and gets a fixed one the
    second time it is seen, so a stream of one-off sizes (photos in the app) makes no sessions in
    vain; a video gets one from its second frame. At most ``MAX_FIXED`` fixed sessions are kept
    (least recently used first out: each holds its own copy of the weights). OpenVINO compiles a
    fixed session in 0.2–0.7 s (SHM, MODNet, U²-Net) and, like onnxruntime, runs a free-axes one too.
    """

    MAX_FIXED = 2

    def __init__(self, path: Path, threads: int, engine: str = "onnxruntime"):
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
        self.path, self.threads, self.engine = Path(path), threads, engine
        self._free = None
        self._fixed: "OrderedDict[tuple, object]" = OrderedDict()
        self._seen: "OrderedDict[tuple, int]" = OrderedDict()
        self._lock = threading.Lock()

    def session_for(self, size):
        """The session to run inputs of ``size`` ((batch, height, width) or None) on."""
        with self._lock:
            if size is None:
                return self._free_session()
            session = self._fixed.get(size)
            if session is not None:
                self._fixed.move_to_end(size)
                return session
            seen = self._seen.pop(size, 0) + 1
            self._seen[size] = seen
            while len(self._seen) > 64:
                self._seen.popitem(last=False)
            if seen == 1 and (self._fixed or self._free is not None):
                return self._free_session()
            session = make_session(self.engine, self.path, self.threads, dict(zip(FREE_AXES, size)))
            self._fixed[size] = session
            while len(self._fixed) > self.MAX_FIXED:
                self._fixed.popitem(last=False)
            return session

    def _free_session(self):
        if self._free is None:
            self._free = make_session(self.engine, self.path, self.threads)
        return self._free


def arguments_signature(arguments) -> list:
    """The kind of a forward's arguments, the same for torch tensors and numpy arrays: per argument
    ``["tensor", rank, channels, dtype]`` (dtype spelt as torch does, e.g. ``"torch.float32"``) or
    ``["value", v]`` for a plain value. Raises TypeError for anything else."""
    described = []
    for x in arguments:
        if isinstance(x, np.ndarray) or (hasattr(x, "dim") and hasattr(x, "dtype") and hasattr(x, "shape")):
            rank = x.ndim if isinstance(x, np.ndarray) else x.dim()
            dtype = f"torch.{x.dtype}" if isinstance(x, np.ndarray) else str(x.dtype)
            described.append(["tensor", int(rank), int(x.shape[1]) if rank > 1 else None, dtype])
        elif x is None or isinstance(x, (bool, int, float, str)):
            described.append(["value", x])
        else:
            raise TypeError(f"argument of type {type(x).__name__}")
    return described


def _record_path(arch: str, weights_sha256: str, arguments: list) -> Path:
    digest = hashlib.sha256(json.dumps(arguments).encode()).hexdigest()
    return cache_dir() / "onnx" / f"ready-{arch}-{weights_sha256[:16]}-{digest[:16]}.json"


def _file_sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _torch_version() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def record(arch: str, weights_sha256: str, arguments: list, onnx_file: Path, sources: list[str],
           torch_version: str, tensor_positions: list[int], template: dict, engine: str = "onnxruntime",
           checked_engines: list[str] | None = None) -> None:
    """Note that ``onnx_file`` is the checked export of ``arch`` with these weights, for arguments of
    this kind (:func:`arguments_signature`); ``sources`` are the port's files it was exported from.
    ``engine`` is the one accelerate runs it with, ``checked_engines`` every engine whose outputs were
    checked against the reference forward (onnxruntime always is)."""
    checked = sorted(set(checked_engines or ()) | {"onnxruntime", engine})
    entry = {
        "format": RECORD_FORMAT, "arch": arch, "weights_sha256": weights_sha256, "arguments": arguments,
        "onnx": Path(onnx_file).name, "onnx_size": Path(onnx_file).stat().st_size, "torch": torch_version,
        "sources": {name: _file_sha256(name) for name in sorted(sources)},
        "tensor_positions": tensor_positions, "template": template, "engine": engine, "checked_engines": checked,
    }
    path = _record_path(arch, weights_sha256, arguments)
    if path.is_file() and _read(path) == entry:
        return
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(entry, indent=1))
    os.replace(temporary, path)


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def find(arch: str, weights_sha256: str, arguments: list, threads: int,
         engine: str | None = None) -> "ReadyGraph | None":
    """The recorded graph for ``arch`` + weights + arguments if everything it depended on is
    unchanged, run by ``engine`` (default: the engine it was recorded for) if that engine's outputs
    were checked and it can be imported here."""
    entry = _read(_record_path(arch, weights_sha256, arguments))
    if not entry or entry.get("format") != RECORD_FORMAT or entry.get("arguments") != arguments:
        return None
    if entry.get("weights_sha256") != weights_sha256 or entry.get("torch") != _torch_version():
        return None
    if any(_file_sha256(name) != digest for name, digest in entry.get("sources", {}).items()):
        return None
    onnx_file = cache_dir() / "onnx" / entry["onnx"]
    try:
        if onnx_file.stat().st_size != entry["onnx_size"]:
            return None
    except OSError:
        return None
    engine = engine or entry.get("engine", "onnxruntime")
    if engine not in entry.get("checked_engines", ["onnxruntime"]) or not engine_available(engine):
        return None
    return ReadyGraph(arch=arch, sessions=SizedSessions(onnx_file, threads, engine), positions=entry["tensor_positions"],
                      template=entry["template"], arguments=arguments)


@dataclass
class ReadyGraph:
    """A recorded export run by onnxruntime or OpenVINO (``sessions.engine``): call it with the
    forward's arguments as numpy arrays;
    returns the forward's output structure with float32 numpy arrays in the tensor places."""

    arch: str
    sessions: SizedSessions
    positions: list
    template: dict
    arguments: list
    origin: tuple = ()  # what the caller loaded it as, e.g. (arch, checkpoint id): to build the network if needed
    _feeds: list | None = field(default=None, repr=False)

    def __call__(self, *args):
        session = self.sessions.session_for(common_size([args[i] for i in self.positions]))
        if self._feeds is None:
            self._feeds = graph_inputs(session, self.positions)
        feed = {name: np.ascontiguousarray(args[i]) for name, i in self._feeds}
        return fill_template(self.template, iter(session.run(None, feed)))

    __hash__ = object.__hash__  # one session per object (a dataclass with eq would be unhashable)

    def __repr__(self) -> str:
        return f"<ReadyGraph {self.arch} ({self.sessions.engine}, no torch)>"


def graph_inputs(session, tensor_positions: list) -> list[tuple[str, int]]:
    """(graph input name, forward argument position) for each input the graph kept.

    The export names the forward's k-th tensor argument ``input{k}``; an argument the network never
    reads (BGMv1's motion cue) is dropped from the graph by the exporter, so the graph may have fewer
    inputs than the forward has tensors."""
    pairs = []
    for item in session.get_inputs():
        match = re.fullmatch(r"input(\d+)", item.name)
        if match is None or int(match.group(1)) >= len(tensor_positions):
            raise ValueError(f"unexpected graph input {item.name!r}")
        pairs.append((item.name, tensor_positions[int(match.group(1))]))
    return pairs


def fill_template(template: dict, outputs):
    """A forward's output structure, recorded as JSON (accelerate's ``_template_to_json``), with the
    arrays or tensors of the iterator ``outputs`` in its tensor places, in order."""
    outputs = iter(outputs)
    if "tensor" in template:
        return next(outputs)
    if "mapping" in template:
        return {key: fill_template(value, outputs) for key, value in template["mapping"]}
    if "sequence" in template:
        items = [fill_template(item, outputs) for item in template["items"]]
        return tuple(items) if template["sequence"] == "tuple" else items
    return template["value"]
