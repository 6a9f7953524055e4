"""Tiny random-config transformers models (SamModel, VitMatteForImageMatting) saved as checkpoint
folders, for tests that must not download anything. Shared by tests/test_vitmatte_sam.py and the app test."""
from __future__ import annotations

from pathlib import Path

SAM_SIDE = 64  # the tiny SAM's input side (its processor resizes and pads to it)


def sam_config():
    from transformers import SamConfig

    vision = dict(hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2,
                  image_size=SAM_SIDE, patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=16,
                  mlp_dim=64)
    prompt = dict(hidden_size=32, image_size=SAM_SIDE, patch_size=8, mask_input_channels=4)
    decoder = dict(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32)
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def vitmatte_config():
    from transformers import VitMatteConfig

    backbone = dict(model_type="vitdet", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_channels=4,
                    patch_size=16, image_size=64, pretrain_image_size=64, out_features=["stage2"], mlp_ratio=2)
    return VitMatteConfig(backbone_config=backbone, hidden_size=32, convstream_hidden_sizes=[8, 16, 32],
                          fusion_hidden_sizes=[32, 16, 8, 8])


def save_tiny_sam(folder: Path, seed: int = 0) -> Path:
    """A random tiny SAM and its processor (longest side 64) saved as a checkpoint folder; returns the
    path of its model.safetensors."""
    import torch
    from transformers import SamModel

    from matting.models.sam import build_processor

    torch.manual_seed(seed)
    model = SamModel(sam_config()).eval()
    model.save_pretrained(folder, safe_serialization=True)
    processor = build_processor()
    processor.image_processor.size = {"longest_edge": SAM_SIDE}
    processor.image_processor.pad_size = {"height": SAM_SIDE, "width": SAM_SIDE}
    processor.image_processor.save_pretrained(folder)
    return Path(folder) / "model.safetensors"


def save_tiny_vitmatte(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import VitMatteForImageMatting

    from matting.models.vitmatte import build_processor

    torch.manual_seed(seed)
    model = VitMatteForImageMatting(vitmatte_config()).eval()
    with torch.no_grad():  # make the output depend on the input clearly (random init is near-constant)
        for name, parameter in model.named_parameters():
            if parameter.ndim > 1:
                parameter.normal_(0, 0.3)
    model.save_pretrained(folder, safe_serialization=True)
    build_processor().save_pretrained(folder)
    return Path(folder) / "model.safetensors"
