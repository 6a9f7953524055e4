"""Deterministic random weights for tests and benchmarks (no trained checkpoint needed)."""
import math

import torch
from torch import nn


def recipe_like_weights_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Uniform weights as in the fidelity recipe: He-like conv/linear bounds, BatchNorms far from identity.

    Fills every floating-point ``state_dict()`` entry in place and returns the model (mode unchanged).
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(tensor, low, high):
        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)

    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if key.endswith("running_var"):
                uniform(tensor, 0.5, 1.5)
            elif key.endswith("running_mean"):
                uniform(tensor, -0.1, 0.1)
            elif tensor.ndim <= 1:
                uniform(tensor, 0.8, 1.2) if key.endswith(".weight") else uniform(tensor, -0.1, 0.1)
            else:
                bound = math.sqrt(3.0 / tensor[0].numel())
                uniform(tensor, -bound, bound)
    return model
