"""Shared by the transformers-backed architectures (``sam``, ``vitmatte``): pick the image-processor
class that this installation of transformers runs (its torchvision backend when torchvision is
installed, else its PIL/numpy backend, which transformers itself would fall back to with a warning),
and load a model folder with safetensors only. transformers is imported only inside these functions."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import MattingError


def processor_class(name: str):
    """``transformers.<name>`` or, without torchvision, ``transformers.<name>Pil`` (same settings)."""
    import transformers

    if importlib.util.find_spec("torchvision") is None and hasattr(transformers, f"{name}Pil"):
        return getattr(transformers, f"{name}Pil")
    return getattr(transformers, name)


def from_pretrained(model_class, folder: Path, what: str):
    """``model_class.from_pretrained(folder)`` offline, safetensors only, in eval mode without gradients."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on the app's or the CLI's stderr
    try:
        model = model_class.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise MattingError(f"transformers could not load {what} from {folder}: {exc}") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
