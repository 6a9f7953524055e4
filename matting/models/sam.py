"""Segment Anything (Kirillov et al., ICCV 2023) and SlimSAM, as Hugging Face ``transformers`` runs them
(``SamModel`` + ``SamProcessor``): not a port, the library's own model and processing.

Architecture ``sam`` has a ``load_file`` builder: the checkpoint (container ``hf_model``, see
:mod:`matting.weights.hf_model`) is the repository's ``model.safetensors`` plus its ``config.json`` and
``preprocessor_config.json``; :func:`load_file` returns a :class:`SamBundle` holding the model, its
processor and a small cache of image embeddings (the expensive half of SAM), so that every click on
the same photo runs only the prompt encoder and the mask decoder.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from .registry import Architecture, InputConfig, add_architecture

INPUT = InputConfig(
    channels=("R", "G", "B"), value_range=(0.0, 1.0), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    size_rule="longest side resized to 1024 (bilinear), padded to 1024×1024 (SamProcessor)",
    example_size=(1024, 1024),
)
EMBEDDINGS_KEPT = 4  # photos whose image embedding stays cached per loaded model


class SamBundle:
    """A loaded SAM: ``model`` (transformers ``SamModel``), ``processor`` (``SamProcessor``) and a bounded
    cache of image embeddings keyed by the image's hash (least recently used first out)."""

    def __init__(self, model, processor, folder: Path | None = None):
        self.model = model
        self.processor = processor
        self.folder = folder
        self.embeddings: OrderedDict = OrderedDict()
        self.lock = threading.RLock()

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device) -> "SamBundle":
        if self.device != device:
            with self.lock:
                self.model.to(device)
                self.embeddings.clear()
        return self


def build_processor(folder: Path | None = None):
    """The checkpoint's own ``SamProcessor`` (its preprocessor_config.json), or the SAM defaults."""
    from transformers import SamProcessor

    from ._hf_common import processor_class

    image_processor_class = processor_class("SamImageProcessor")
    if folder is not None and (Path(folder) / "preprocessor_config.json").is_file():
        return SamProcessor(image_processor_class.from_pretrained(str(folder)))
    return SamProcessor(image_processor_class())


def load_file(path, repo_id: str | None = None) -> SamBundle:
    from transformers import SamModel

    from ..weights.hf_model import model_folder
    from ._hf_common import from_pretrained

    folder = model_folder(path, repo_id)
    return SamBundle(from_pretrained(SamModel, folder, f"SAM ({repo_id or Path(path).name})"),
                     build_processor(folder), folder)


add_architecture(Architecture("sam", build=None, load_file=load_file, input_config=INPUT,
                              description="transformers SamModel + SamProcessor (SAM / SlimSAM checkpoints)",
                              module=__name__))
