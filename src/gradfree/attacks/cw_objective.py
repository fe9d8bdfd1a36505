"""The Carlini-Wagner L2 machinery that ZOO and the white-box C&W reference share.

* the objective ``||x - x0||_2^2 + c * f(x)`` with ``f(x) = max(-margin(x), -kappa)`` (C&W 2017 Sec. V-A,
  objective f_6; ZOO Sec. III-B, eq. 4-5, where the scores are log-probabilities);
* the change of variables ``x = (tanh(w) + 1) / 2`` that keeps every pixel in ``[0, 1]`` without clipping
  (C&W Sec. V-A "change of variables"; ZOO Sec. III-B);
* the per-image binary search over the constant ``c`` (C&W Sec. V-B; ZOO Sec. IV-A): halve towards the
  lower bound after a success, move up (x10 until a success is known) after a failure;
* early abort (C&W's and ZOO's reference code): every ``every`` iterations, stop an image's current search
  step when its loss has not dropped by 0.01% since the last check.

References:
    N. Carlini, D. Wagner. "Towards Evaluating the Robustness of Neural Networks." IEEE S&P 2017.
    P.-Y. Chen, H. Zhang, Y. Sharma, J. Yi, C.-J. Hsieh. "ZOO: Zeroth Order Optimization Based Black-box
    Attacks to Deep Neural Networks without Training Substitute Models." AISec 2017 (arXiv:1708.03999).
"""

from __future__ import annotations

import torch
from torch import Tensor

TANH_SHRINK = 1 - 1e-6
"""``atanh`` of ``+-1`` is infinite: originals are shrunk by this factor around 0.5 before the change of
variables (the reference code's ``arctanh(x * 1.999999)``), which moves no pixel by more than 5e-7."""

UPPER_UNKNOWN = 1e10
"""The upper bound of ``c`` before any success (the reference code's ``1e10``)."""


def to_tanh_space(x: Tensor) -> Tensor:
    """``w`` with ``(tanh(w) + 1) / 2 = x`` (up to :data:`TANH_SHRINK`), for pixels ``x`` in ``[0, 1]``."""
    return torch.atanh((2 * x - 1) * TANH_SHRINK)


def from_tanh_space(w: Tensor) -> Tensor:
    """Pixels ``(tanh(w) + 1) / 2``, always in ``[0, 1]``."""
    return (torch.tanh(w) + 1) / 2


def cw_loss(margin: Tensor, squared_l2: Tensor, const: Tensor, confidence: float) -> tuple[Tensor, Tensor]:
    """The C&W / ZOO objective of each row and its classification part.

    Args:
        margin: how far past the boundary the row is (:func:`gradfree.attacks.base.margins`; ``> 0`` is a
            success). squared_l2: ``||x - x0||^2`` of the row. const: ``c`` of the row's image.
        confidence: kappa.

    Returns:
        ``(loss, f)`` with ``f = max(-margin, -kappa)`` and ``loss = squared_l2 + const * f``.
    """
    f = torch.clamp(-margin, min=-confidence)
    return squared_l2 + const * f, f


class ConstantSearch:
    """Per-image binary search over C&W's trade-off constant ``c``.

    Args:
        n: images. initial: the first ``c`` of every image. steps: how many search steps will run; with 10 or
            more, the last step retries at the upper bound (the reference code's ``repeat``).

    Attributes:
        const, lower, upper: ``(n,)`` float64 current constants and their bounds.
    """

    def __init__(self, n: int, initial: float, *, steps: int, device: torch.device | str = "cpu") -> None:
        self.const = torch.full((n,), float(initial), dtype=torch.float64, device=device)
        self.lower = torch.zeros(n, dtype=torch.float64, device=device)
        self.upper = torch.full((n,), UPPER_UNKNOWN, dtype=torch.float64, device=device)
        self.steps = steps

    def for_step(self, step: int) -> Tensor:
        """The constants to use in search step ``step`` (0-based)."""
        if self.steps >= 10 and step == self.steps - 1:
            return torch.where(self.upper < 1e9, self.upper, self.const)
        return self.const

    def update(self, images: Tensor, found: Tensor) -> None:
        """After a step: ``found[i]`` says whether image ``images[i]`` reached an adversarial point in it."""
        c, lo, up = self.const[images], self.lower[images], self.upper[images]
        up = torch.where(found, torch.minimum(up, c), up)
        lo = torch.where(found, lo, torch.maximum(lo, c))
        known = up < 1e9
        c = torch.where(known, (lo + up) / 2, torch.where(found, c, c * 10))
        self.const[images], self.lower[images], self.upper[images] = c, lo, up


class EarlyAbort:
    """Stops an image's search step when its loss stalls (C&W's and ZOO's ``abort_early``).

    Every ``every`` iterations (iteration 0 included), an image whose loss is above ``0.9999`` times its
    loss at the previous check stops.

    Args:
        n: images. every: iterations between checks (the reference code uses a tenth of the iterations).
    """

    def __init__(self, n: int, every: int, *, device: torch.device | str = "cpu") -> None:
        self.every = max(1, int(every))
        self.previous = torch.full((n,), float("inf"), dtype=torch.float64, device=device)

    def stalled(self, iteration: int, images: Tensor, loss: Tensor) -> Tensor:
        """``(len(images),)`` bool: which of ``images`` (with current ``loss``) stop now."""
        if iteration % self.every:
            return torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        loss = loss.to(torch.float64)
        stop = loss > self.previous[images] * 0.9999
        self.previous[images] = loss
        return stop
