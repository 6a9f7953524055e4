"""Reading checkpoint files safely, by container; what the contents mean is for the architecture.

Torch checkpoints are pickles, and a pickle can run code when it is loaded: they are only ever read
with ``torch.load(..., weights_only=True)``, and a file that needs anything but tensors and plain
containers is refused with an error naming what it carries. Heavy libraries (torch, onnx,
safetensors) are imported only when a file of theirs is read.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path

from ..errors import MattingError
from ._fs import short_reason
from .manifest import CONTAINERS


def read_checkpoint(file_path, container: str):
    """Read a checkpoint file safely, by how it is stored; what the contents mean is for the architecture.

    * ``torch``: ``torch.load(weights_only=True)`` only (retried with ``encoding='latin1'`` for Python-2
      pickles); a file that needs anything else is refused. A ``{'state_dict': ...}`` wrapper is
      unwrapped and a ``module.`` prefix on every key (DataParallel) is stripped. Returns
      ``dict[str, torch.Tensor]`` on the CPU.
    * ``safetensors``: the tensors, as a ``dict[str, torch.Tensor]``.
    * ``onnx``: the ``onnx.ModelProto`` (checked readable; nothing is executed).
    * ``tflite``: the path, after checking the TFLite identifier (the runtime reads the file itself).
    * ``hf_model``: the path of the safetensors weights of a transformers checkpoint, after checking its
      header (see :mod:`.hf_model`).
    """
    file_path = Path(file_path)
    if not file_path.is_file():
        raise MattingError(f"The checkpoint file {file_path} does not exist.")
    if container == "onnx":
        return _read_onnx(file_path)
    if container == "tflite":
        with open(file_path, "rb") as handle:
            if handle.read(8)[4:8] != b"TFL3":
                raise MattingError(f"{file_path} is not a TFLite model (no TFL3 identifier). Use the .tflite file.")
        return file_path
    if container == "safetensors":
        return _read_safetensors(file_path)
    if container == "hf_model":  # transformers loads it; only the safetensors header is checked here
        from .hf_model import check_weights_file

        return check_weights_file(file_path)
    if container != "torch":
        raise MattingError(f"Unknown checkpoint container {container!r}; known: {', '.join(CONTAINERS)}.")

    import torch

    loaded = _torch_load_weights_only(file_path)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise MattingError(f"{file_path} holds a {type(loaded).__name__}, not a state dict of tensors; "
                           "it is not a checkpoint for this method.")
    not_tensors = [str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise MattingError(f"{file_path} is not a plain state dict: {len(not_tensors)} entries are not tensors "
                           f"({', '.join(not_tensors[:5])}).")
    state = {str(k): v for k, v in loaded.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def container_for(file_path) -> str:
    """The container of a file given by a user (an upload, ``--weights``), judged by its name."""
    suffix = Path(file_path).suffix.lower()
    return {".onnx": "onnx", ".tflite": "tflite", ".safetensors": "safetensors"}.get(suffix, "torch")


def _torch_load_weights_only(file_path: Path):
    import torch

    failure = None
    for extra in ({}, {"encoding": "latin1"}):
        try:
            with warnings.catch_warnings():
                # torch warns that pickle arguments need weights_only=False, yet its weights-only
                # unpickler does use `encoding` (for the byte strings of Python-2 pickles).
                warnings.filterwarnings("ignore", message="pickle_load_args only works")
                return torch.load(file_path, map_location="cpu", weights_only=True, **extra)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, UnicodeDecodeError, ...
            refused = _refused_global(exc)
            if refused is not None:
                raise MattingError(
                    f"{file_path} was refused: besides tensors it carries code or Python objects "
                    f"({refused}), and loading it would run that code. Only plain weight files are accepted; "
                    "use the official checkpoint (python -m matting.weights list).") from None
            failure = exc
    raise MattingError(f"{file_path} is not a readable PyTorch checkpoint ({short_reason(failure)}). "
                       "It may be damaged, incomplete or of another format.")


def _refused_global(exc: Exception) -> str | None:
    """What the weights-only unpickler refused, or None when ``exc`` is some other failure."""
    message = str(exc)
    if not re.search(r"Unsupported (global|operand|class)|not an allowed global", message):
        return None
    found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"Unsupported \w+:? ([^\n]+?)(?: was|\n|$)", message)
    return found.group(1).strip() if found else "an object the weights-only loader does not allow"


def _read_onnx(file_path: Path):
    import onnx

    try:
        return onnx.load(str(file_path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise MattingError(f"{file_path} is not a readable ONNX model ({short_reason(exc)}).") from None


def _read_safetensors(file_path: Path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise MattingError(f"{file_path} is not a readable safetensors file ({short_reason(exc)}).") from None

