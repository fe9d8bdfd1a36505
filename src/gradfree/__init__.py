"""gradfree: train PyTorch networks without backpropagation.

Zeroth-order gradient estimators, optimizers in the torch.optim mould, a budgeted trainer, and the gradient
optimizers of torch.optim as baselines under the same harness. Heavy or optional modules (plots, Ray,
nevergrad) are imported where they are used, so ``import gradfree`` stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
