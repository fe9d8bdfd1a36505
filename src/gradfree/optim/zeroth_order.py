"""Zeroth-order optimizers: a gradient estimate (:mod:`gradfree.estimators`) fed to an update rule
(:mod:`gradfree.optim.updates`), behind the ``torch.optim`` contract.

Following optax, how a gradient is guessed (an estimator) is separate from how it is used (an update rule):
ZO-Adam is "Gaussian estimator + Adam". :class:`Estimation` declares the estimator options every such
optimizer takes; each optimizer file adds its update rule's options and names the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.estimators import ESTIMATORS, Estimate
from gradfree.objective.closure import Closure, vector_objective
from gradfree.objective.vector import VectorObjective
from gradfree.optim.base import GradientFreeOptimizer
from gradfree.optim.options import check
from gradfree.optim.updates import UpdateRule
from gradfree.params.flat import FlatParams

# The options every estimator takes in common; each estimator declares which of them it uses (its
# registration's ``options`` tag), and only those are passed on (the coordinate estimator has no directions).
COMMON_ESTIMATION = ("num_directions", "smoothing", "difference", "antithetic", "chunk_size")


@dataclass(frozen=True)
class Estimation:
    """How a zeroth-order optimizer estimates the gradient.

    Attributes:
        estimator: a name in :data:`gradfree.estimators.ESTIMATORS` ("gaussian", "sphere", "rademacher",
            "coordinate").
        num_directions, smoothing, difference, antithetic, chunk_size: the estimator's common options (see
            :mod:`gradfree.estimators.directional`); those the estimator does not take are ignored.
        estimator_options: any further estimator options (e.g. ``{"num_coordinates": 32}`` for "coordinate").
        seed: seeds the optimizer's own ``torch.Generator``.
    """

    estimator: str = "gaussian"
    num_directions: int = 20
    smoothing: float = 1e-3
    difference: str = "forward"
    antithetic: bool = False
    chunk_size: int | None = None
    estimator_options: dict[str, Any] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        entry = ESTIMATORS.entry(self.estimator)  # an unknown name lists the known ones
        takes = entry.tags["options"]
        unknown = sorted(set(self.estimator_options or {}) - set(takes))
        check(not unknown, f"estimator {self.estimator!r}",
              f"takes no option {', '.join(unknown)}; it takes: {', '.join(takes)}")

    def estimator_kwargs(self) -> dict[str, Any]:
        """The keyword options to call the estimator with."""
        takes = ESTIMATORS.entry(self.estimator).tags["options"]
        common = {k: getattr(self, k) for k in COMMON_ESTIMATION if k in takes}
        return {**common, **(self.estimator_options or {})}


class ZerothOrderOptimizer(GradientFreeOptimizer):
    """Estimate the gradient from loss values, then apply ``update_rule`` per parameter tensor.

    The perturbation spans all groups jointly (one flat vector); each group then applies the update rule
    with its own hyper-parameters. An estimate of coordinates (``Estimate.coordinates``) updates only those
    coordinates. ``state_dict()`` holds the generator, so a resumed run draws the same directions.

    Attributes:
        last_estimate: the :class:`~gradfree.estimators.Estimate` of the last step.
    """

    update_rule: ClassVar[UpdateRule]

    def __init__(self, params: Any, **options: Any) -> None:
        super().__init__(params, **options)
        self.estimator = ESTIMATORS.get(self.options.estimator)
        self.estimator_options = self.options.estimator_kwargs()
        self.last_estimate: Estimate | None = None
        self._active_key: tuple[bool, ...] | None = None
        self._active: FlatParams | None = None

    def active(self) -> FlatParams:
        """The flat view of the parameters of groups with ``lr > 0``, the ones a step perturbs (a group with
        ``lr = 0`` is frozen: not perturbed, not evaluated along); rebuilt when a group's ``lr`` changes."""
        key = tuple(float(g["lr"]) > 0 for g in self.param_groups)
        if key != self._active_key:
            tensors = [p for g in self.param_groups if g["lr"] > 0 for p in g["params"]]
            self._active = FlatParams(None, params=tensors) if tensors else None
            self._active_key = key
        if self._active is None:
            raise ConfigError(f"{self.method_name()}: every param group has lr = 0; nothing to step")
        return self._active

    def objective(self, closure: Closure) -> VectorObjective:
        """The vector objective ``(P, D) -> (P,)`` the estimator calls, built from ``closure``."""
        return vector_objective(closure, self.active())

    @torch.no_grad()
    def _step(self, closure: Closure) -> Tensor:
        """Estimate the gradient with loss evaluations of ``closure`` and apply one update.

        Returns:
            the loss at the current point (forward differences) or the mean perturbed loss (central),
            as reported by the estimator; the full :class:`~gradfree.estimators.Estimate` is kept in
            ``last_estimate``.
        """
        active = self.active()
        x = active.get()
        est = self.estimator(self.objective(closure), x, generator=self._generator, **self.estimator_options)
        self.last_estimate = est
        # A step whose estimate has no usable direction is skipped rather than poisoning the state.
        if est.used > 0 and bool(torch.isfinite(est.grad).all()):
            rule = type(self).update_rule
            where = None if est.coordinates is None else torch.sort(est.coordinates.to(est.grad.device)).values
            offset = 0
            for group in self.param_groups:
                if group["lr"] <= 0:
                    continue
                for p in group["params"]:
                    n = p.numel()
                    grad = est.grad[offset : offset + n].view_as(p)
                    if where is None:
                        rule(p, grad, self.state[p], group)
                    else:
                        lo, hi = torch.searchsorted(where, torch.tensor([offset, offset + n], device=where.device))
                        if hi > lo:
                            rule(p, grad, self.state[p], group, index=where[lo:hi] - offset)
                    offset += n
        return est.loss
