"""Seeded re-initialisation: PyTorch's default layer initialisation drawn from a private generator.

``nn.Linear`` and ``nn.Conv2d`` initialise themselves from the global RNG; gradfree never seeds that, so
models are re-drawn here from an explicit ``torch.Generator`` with the same distributions as PyTorch's
defaults (``kaiming_uniform_(a=sqrt(5))`` for weights, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for biases).
"""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def reset_parameters(module: nn.Module, *, generator: torch.Generator) -> nn.Module:
    """Re-draw every Linear / Conv weight and bias of ``module`` from ``generator``; returns ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            fan_in = m.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            # kaiming_uniform_(a=sqrt(5)) has gain sqrt(2 / (1 + 5)) * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
            nn.init.uniform_(m.weight, -bound, bound, generator=generator)
            if m.bias is not None:
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
    return module
