"""The zeroth-order optimizer: an estimator plus an update rule behind the ``torch.optim`` contract.

``step(closure)`` evaluates the closure under ``torch.no_grad()`` and never reads or writes ``.grad``. The
closure returns the loss at the current parameters, exactly as for ``torch.optim``. A closure may also offer
``closure.batch(vectors, tensors)`` — the losses of a whole population of flat vectors for those tensors in
one call (see :class:`gradfree.train.objective.BatchObjective`); the optimizer then scores all its perturbed
points at once instead of writing each into the model and calling the closure.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.estimators import ESTIMATORS, Estimate
from gradfree.optim.updates import UpdateRule
from gradfree.params.flat import FlatParams

Closure = Callable[[], Tensor]


def batch_objective(closure: Closure, flat: FlatParams) -> Callable[[Tensor], Tensor]:
    """The batch objective ``(P, D) -> (P,)`` over the parameters of ``flat``, built from ``closure``.

    Uses ``closure.batch(vectors, flat.tensors)`` (one batched call) when the closure offers it; otherwise
    writes each vector into the parameters, calls the closure, and restores the parameters afterwards.
    Either way every member costs one evaluation, counted by the closure.
    """
    batch = getattr(closure, "batch", None)
    if batch is not None:
        return lambda vectors: batch(vectors, flat.tensors)

    @torch.no_grad()
    def loop(vectors: Tensor) -> Tensor:
        saved = flat.get()
        losses = torch.empty(vectors.shape[0], dtype=vectors.dtype, device=vectors.device)
        try:
            for i, v in enumerate(vectors):
                flat.set_(v)
                losses[i] = closure()
        finally:
            flat.set_(saved)
        return losses

    return loop


class ZerothOrderOptimizer(torch.optim.Optimizer):
    """Base of optimizers that estimate the gradient from loss values only.

    Args:
        params: tensors or param groups, as for any ``torch.optim.Optimizer``.
        defaults: the update rule's hyper-parameters (per group).
        update_rule: how the estimate is applied (:mod:`gradfree.optim.updates`).
        estimator: name in :data:`gradfree.estimators.ESTIMATORS` ("gaussian", "sphere", "rademacher",
            "coordinate").
        num_directions, smoothing, difference, antithetic, chunk_size: the estimator's common options
            (see :mod:`gradfree.estimators.directional`); those the estimator does not take are ignored.
        estimator_options: any further estimator options (e.g. ``num_coordinates`` for "coordinate").
        seed: seeds the optimizer's own ``torch.Generator``; the global RNG is never used.

    The perturbation spans all groups jointly (one flat vector); each group then applies the update rule
    with its own hyper-parameters. ``state_dict()`` also holds the generator, so a resumed run continues
    with the same random directions.
    """

    zeroth_order: ClassVar[bool] = True  # tells the trainer: no backward pass, give a BatchObjective closure

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        *,
        update_rule: UpdateRule,
        estimator: str = "gaussian",
        num_directions: int = 20,
        smoothing: float = 1e-3,
        difference: str = "forward",
        antithetic: bool = False,
        chunk_size: int | None = None,
        estimator_options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(params, defaults)
        self.update_rule = update_rule
        self.estimator_name = estimator
        self.estimator = ESTIMATORS.get(estimator)
        common = {"num_directions": num_directions, "smoothing": smoothing, "difference": difference,
                  "antithetic": antithetic, "chunk_size": chunk_size}
        # Pass only what this estimator takes (the coordinate estimator has no directions).
        accepted = inspect.signature(self.estimator).parameters
        self.estimator_options = {k: v for k, v in common.items() if k in accepted}
        # A misspelt option fails here, with the list of valid ones, not at the first step as a TypeError.
        takes = [k for k in accepted if k not in ("objective", "x", "generator")]
        unknown = sorted(set(estimator_options or {}) - set(takes))
        if unknown:
            raise ConfigError(f"estimator {estimator!r} takes no option {', '.join(unknown)}; "
                              f"it takes: {', '.join(takes)}")
        self.estimator_options.update(estimator_options or {})
        tensors = [p for g in self.param_groups for p in g["params"]]
        self._flat = FlatParams(None, params=tensors)
        self._generator = torch.Generator(device=self._flat.device)
        self._generator.manual_seed(seed)
        self.last_estimate: Estimate | None = None

    @property
    def flat(self) -> FlatParams:
        """The flat view of every parameter this optimizer updates, in param-group order."""
        return self._flat

    def objective(self, closure: Closure) -> Callable[[Tensor], Tensor]:
        """The batch objective ``(P, D) -> (P,)`` the estimator calls, built from ``closure``."""
        return batch_objective(closure, self._flat)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """Estimate the gradient with loss evaluations of ``closure`` and apply one update.

        Returns:
            the loss at the current point (forward differences) or the mean perturbed loss (central),
            as reported by the estimator; the full :class:`Estimate` is kept in ``last_estimate``.
        """
        if closure is None:
            raise ConfigError(f"{type(self).__name__}.step needs a closure that returns the loss")
        x = self._flat.get()
        est = self.estimator(self.objective(closure), x, generator=self._generator, **self.estimator_options)
        self.last_estimate = est
        # A step whose estimate has no usable direction is skipped rather than poisoning the state.
        if est.used > 0 and bool(torch.isfinite(est.grad).all()):
            rule = self.update_rule
            grads = est.grad
            offset = 0
            for group in self.param_groups:
                for p in group["params"]:
                    n = p.numel()
                    rule(p, grads[offset : offset + n].view_as(p), self.state[p], group)
                    offset += n
        return est.loss

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` state plus the generator state and estimator settings."""
        sd = super().state_dict()
        sd["zeroth_order"] = {
            "generator": self._generator.get_state(),
            "estimator": self.estimator_name,
            "estimator_options": dict(self.estimator_options),
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        sd = dict(state_dict)
        extra = sd.pop("zeroth_order", None)
        super().load_state_dict(sd)
        if extra is not None:
            self._generator.set_state(extra["generator"])
            self.estimator_name = extra["estimator"]
            self.estimator = ESTIMATORS.get(self.estimator_name)
            self.estimator_options = dict(extra["estimator_options"])
