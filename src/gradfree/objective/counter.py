"""The evaluation counter of a run: every objective evaluation is counted here, once.

One evaluation is one forward pass of one parameter vector over one batch (README, "What counts as an
evaluation"). Non-finite losses are counted as evaluations and, separately, as ``rejected``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class EvaluationCounter:
    """Running counts of a run: evaluations, backward passes, and non-finite (rejected) evaluations."""

    evaluations: int = 0
    backward: int = 0
    rejected: int = 0

    def record(self, losses: Tensor) -> None:
        """Count ``losses.numel()`` evaluations and how many of them were not finite."""
        self.evaluations += losses.numel()
        self.rejected += int((~torch.isfinite(losses)).sum())
