"""Build a network and bind a checkpoint to it: ``create(arch, checkpoint=...)``.

The one place where a checkpoint file meets its network (like timm's ``build_model_with_cfg`` applying
an architecture's ``checkpoint_filter_fn``):

1. the checkpoint — a manifest id (``"u2netp"``) or a path — is resolved: a manifest id through
   :func:`matting.weights.require` (a user override first, then the stored file; a missing file raises
   the :class:`~matting.errors.MattingError` that says how to fetch it), its ``model_kwargs`` merged
   under the caller's;
2. the file is read safely by its container (:func:`matting.weights.read_checkpoint`: weights-only
   torch, safetensors, ONNX tensors, a TFLite file);
3. the architecture's own ``checkpoint_filter`` turns that into the network's state dict; a filter that
   converts (U²-NetP's BatchNorm-folded ONNX graph) is cached on disk as safetensors under
   ``<cache dir>/converted/<arch>-<sha256 of the file>.safetensors``, so it runs once per machine;
4. the state dict is loaded strictly, with a readable list of mismatches (and a guess of which network
   the file belongs to) when it does not fit; floating-point tensors holding NaN or infinite values are
   refused, naming the file and the tensors.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from .. import weights
from ..errors import MattingError
from ..paths import cache_dir
from .registry import Architecture, get_architecture, guess_architecture

log = logging.getLogger(__name__)

_conversion_lock = threading.Lock()

# Containers that already hold tensors by name: filtering them is cheap, so nothing is cached. Anything
# else (an ONNX graph) is converted by the architecture's filter, and the result is cached.
TENSOR_CONTAINERS = ("torch", "safetensors")


def create(arch: str, checkpoint=None, *, container: str | None = None, **kwargs):
    """Build architecture ``arch`` with the official constructor arguments ``kwargs``.

    With ``checkpoint`` (a manifest id or a file path) the network is returned ready: weights loaded
    strictly, eval mode, no gradients. Without it, a torch network keeps its initial weights (random, or
    whatever its constructor does) and its default training mode, as the official class would.
    ``container`` says how a file given by path is stored (default: judged by its suffix, see
    :func:`matting.weights.container_for`).
    """
    architecture = get_architecture(arch)
    if checkpoint is None:
        if not architecture.is_torch:
            raise MattingError(f"The {arch} network is a runtime graph; it needs its checkpoint file.")
        return architecture.build(**kwargs)
    file_path, item = resolve(checkpoint)
    kwargs = {**(dict(item.model_kwargs) if item else {}), **kwargs}
    container = item.container if item else (container or weights.container_for(file_path))
    what = f"{file_path.name} (checkpoint '{item.id}')" if item else f"the file {file_path.name!r}"
    if not architecture.is_torch:
        weights.read_checkpoint(file_path, container)  # checks the file is what it claims to be
        return architecture.load_file(file_path, **kwargs)
    model = architecture.build(**kwargs)
    state = state_dict_for(architecture, file_path, container, model)
    load_into(model, state, what=what)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def resolve(checkpoint) -> tuple[Path, weights.Entry | None]:
    """(file to load, manifest entry or None) for a manifest id or a path."""
    if isinstance(checkpoint, str) and checkpoint in weights.manifest():
        return weights.require(checkpoint), weights.entry(checkpoint)
    if isinstance(checkpoint, (str, os.PathLike)):
        file_path = Path(checkpoint).expanduser()
        if file_path.is_file():
            return file_path, None
        raise MattingError(f"{checkpoint!r} is neither a checkpoint id of the manifest "
                           "(python -m matting.weights list) nor an existing file.")
    raise MattingError(f"A checkpoint is a manifest id or a file path, not {type(checkpoint).__name__}.")


def state_dict_for(architecture: Architecture, file_path: Path, container: str, model) -> Mapping:
    """The state dict of ``model`` held by ``file_path`` (read, filtered, conversion cached)."""
    if container in TENSOR_CONTAINERS or architecture.checkpoint_filter is None:
        raw = weights.read_checkpoint(file_path, container)
        return architecture.checkpoint_filter(raw, model) if architecture.checkpoint_filter else raw
    with _conversion_lock:
        cached = converted_path(architecture.name, weights.sha256_file(file_path))
        state = _read_converted(cached, model)
        if state is None:
            state = architecture.checkpoint_filter(weights.read_checkpoint(file_path, container), model)
            _write_converted(cached, state)
        return state


def converted_path(arch: str, sha256: str) -> Path:
    return cache_dir() / "converted" / f"{arch}-{sha256}.safetensors"


def _read_converted(cached: Path, model) -> Mapping | None:
    if not cached.is_file():
        return None
    try:
        state = weights.read_checkpoint(cached, "safetensors")
    except MattingError:
        log.warning("converted checkpoint %s is unreadable; converting again", cached)
        return None
    if check_state_dict(model, state):  # written by another version of the network: convert again
        return None
    return state


def _write_converted(cached: Path, state: Mapping) -> None:
    from safetensors.torch import save_file

    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_name(f"{cached.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        # safetensors refuses tensors that share memory; the converted tensors are fresh, but be safe
        save_file({k: v.contiguous().clone() for k, v in state.items()}, str(temporary))
        os.replace(temporary, cached)
    except OSError as exc:  # a read-only cache only costs a conversion per process
        log.warning("could not cache the converted checkpoint at %s (%s)", cached, exc)


def check_state_dict(model, state_dict: Mapping) -> list[str]:
    """Readable lines describing how ``state_dict`` does not fit ``model`` (empty when it fits)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict
               and not (k.endswith("num_batches_tracked") and k.replace("num_batches_tracked", "running_mean")
                        in state_dict)]  # checkpoints from before PyTorch 0.4.1 lack these; torch fills them in
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in expected if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    lines = []
    for label, items, separator in (("missing keys", missing, ", "), ("unexpected keys", unexpected, ", "),
                                    ("shape mismatches", mismatched, "; ")):
        if items:
            more = f" … and {len(items) - 5} more" if len(items) > 5 else ""
            lines.append(f"{label} ({len(items)}): {separator.join(items[:5])}{more}")
    return lines


def load_into(model, state_dict: Mapping, what: str = "the checkpoint"):
    """Load ``state_dict`` into ``model`` strictly, or raise a :class:`MattingError` that lists the
    mismatches (and names the architecture the checkpoint seems to belong to)."""
    problems = check_state_dict(model, state_dict)
    if problems:
        guess = guess_architecture(state_dict)
        hint = f"\nThis looks like a checkpoint for {guess}." if guess else ""
        raise MattingError(
            f"{what} does not fit the {type(model).__name__} network:\n  - " + "\n  - ".join(problems) + hint +
            "\nUse the checkpoint made for this method (python -m matting.weights list).")
    check_finite(state_dict, what)
    model.load_state_dict(dict(state_dict), strict=True)
    return model


def check_finite(state_dict: Mapping, what: str = "the checkpoint") -> None:
    """Refuse a checkpoint whose floating-point tensors hold NaN or infinite values (a damaged file, or
    one saved from a diverged training run): such weights make every alpha NaN."""
    import torch

    damaged = []
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            bad = int(value.numel() - torch.isfinite(value).sum())
            if bad:
                damaged.append(f"{key} ({bad} of {value.numel()})")
    if damaged:
        more = f" … and {len(damaged) - 5} more" if len(damaged) > 5 else ""
        raise MattingError(
            f"{what} holds NaN or infinite weights in {len(damaged)} tensor{'s' * (len(damaged) > 1)}: "
            f"{', '.join(damaged[:5])}{more}. The file is damaged or was saved from a diverged training run; "
            "fetch the official checkpoint again (python -m matting.weights fetch) or use another file.")


def strip_prefix(state_dict: Mapping, prefix: str) -> dict:
    """Drop ``prefix`` from every key that has it (e.g. ``module.`` of DataParallel checkpoints)."""
    return {(key[len(prefix):] if key.startswith(prefix) else key): value for key, value in state_dict.items()}
