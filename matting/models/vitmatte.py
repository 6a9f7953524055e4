"""ViTMatte (Yao et al., Information Fusion 2024) as Hugging Face ``transformers`` runs it
(``VitMatteForImageMatting`` + ``VitMatteImageProcessor``): not a port, the library's own model and
processing.

Architecture ``vitmatte`` has a ``load_file`` builder: the checkpoint (container ``hf_model``, see
:mod:`matting.weights.hf_model`) is the repository's ``model.safetensors`` plus its ``config.json`` and
``preprocessor_config.json``; :func:`load_file` returns a :class:`VitMatteBundle` (model and processor).
"""
from __future__ import annotations

from pathlib import Path

from .registry import Architecture, InputConfig, add_architecture

INPUT = InputConfig(
    channels=("R", "G", "B", "trimap"), value_range=(0.0, 1.0), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    size_rule="full resolution, zero-padded at the right and bottom to multiples of 32 (VitMatteImageProcessor); "
              "the alpha is cropped back", example_size=(512, 512), stride=32,
)


class VitMatteBundle:
    """A loaded ViTMatte: ``model`` (``VitMatteForImageMatting``) and ``processor`` (``VitMatteImageProcessor``)."""

    def __init__(self, model, processor, folder: Path | None = None):
        self.model = model
        self.processor = processor
        self.folder = folder

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device) -> "VitMatteBundle":
        if self.device != device:
            self.model.to(device)
        return self


def build_processor(folder: Path | None = None):
    """The checkpoint's own image processor (its preprocessor_config.json), or the ViTMatte defaults."""
    from ._hf_common import processor_class

    cls = processor_class("VitMatteImageProcessor")
    if folder is not None and (Path(folder) / "preprocessor_config.json").is_file():
        return cls.from_pretrained(str(folder))
    return cls()


def load_file(path, repo_id: str | None = None) -> VitMatteBundle:
    from transformers import VitMatteForImageMatting

    from ..weights.hf_model import model_folder
    from ._hf_common import from_pretrained

    folder = model_folder(path, repo_id)
    return VitMatteBundle(from_pretrained(VitMatteForImageMatting, folder, f"ViTMatte ({repo_id or Path(path).name})"),
                          build_processor(folder), folder)


add_architecture(Architecture("vitmatte", build=None, load_file=load_file, input_config=INPUT,
                              description="transformers VitMatteForImageMatting + VitMatteImageProcessor",
                              module=__name__))
