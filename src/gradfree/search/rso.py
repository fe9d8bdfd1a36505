"""RSO: random search, one weight at a time, keeping ``w``, ``w + delta`` or ``w - delta``.

Reference: R. Tripathi, B. Singh, "RSO: A Gradient Free Sampling Based Approach For Training Deep Neural
Networks", arXiv:2005.05955 (2020), Sec. 3 (the method, Algorithm 1). Settings the text leaves open were
taken from the authors' released code (github.com/rohun-tripathi/RSO-gradient-free, ``train.py``):

* **Perturbation** (Sec. 3): ``delta ~ N(0, sigma_l)`` for each weight, where ``sigma_l`` is the standard
  deviation of layer ``l``'s weight initialisation (the code's ``layer_std``: the He-init std times
  ``sample_scale``). Here ``sigma_l`` is measured: the standard deviation of the tensor's values when the
  optimizer is built (i.e. its initialisation), times the group's ``lr`` (the code's ``sample_scale``,
  default 1). A tensor whose initial values are all equal (e.g. zero-initialised biases) takes the
  ``sigma`` of the tensor before it in the parameter list — in a ``Linear`` or ``Conv`` that is its own
  weight. ``sigma=`` overrides all of this with one value.
* **Acceptance** (Sec. 3, Alg. 1): the losses of ``w``, ``w + delta`` and ``w - delta`` on a mini-batch
  are compared and the weight takes the best (ties keep ``w``); the next weight is then tried against the
  updated network (sequential, Gauss-Seidel style).
* **Order** (Alg. 1; code ``reverse_opt=True``): layers from the output back to the input. Here the
  parameter tensors are visited in reverse order of the parameter list, which for a ``Sequential`` is from
  the last layer to the first (the bias of a layer before its weight); inside a tensor the weights are
  visited in storage order — for a ``Linear`` all incoming weights of output unit 0, then unit 1, as in
  the code's ``output_first``. ``order="input-first"`` reverses this.
* **Schedule** (code ``get_random_perturbation``): a round (the code's epoch) visits every weight once;
  in round ``r`` of ``rounds`` the standard deviation is ``sigma_l * (anneal + (1 - anneal) * (rounds - r)
  / rounds)``, a linear decay from ``sigma_l`` toward ``anneal * sigma_l`` (code default ``anneal=0.1``,
  50 rounds). Rounds past ``rounds`` keep ``anneal * sigma_l``.
* **Weight decay** (code ``--wd 1e-4``): before a weight is tried it is shrunk, ``w <- w (1 - wd)``, and
  the three candidates are ``w'``, ``w' + delta``, ``w' - delta``. The default here is 0 (the method as the
  paper describes it); a decay costs one more evaluation per weight.

Addition (not in the paper): ``l2`` adds ``l2 / 2 * v**2`` for the tried weight's value ``v`` to the losses
that are compared, so the search minimises ``loss + l2 / 2 * ||w||^2`` — the L2 penalty that backprop
optimizers apply as ``weight_decay`` — at no extra evaluation (the penalty of one weight is known exactly).
The paper's multiplicative decay shrinks every visited weight whatever it does to the loss; this penalty
trades the two off, which is what regularises small-data training (see the "mdp-mnist" suite).

Departure, and why: the paper draws a fresh mini-batch for every weight (3 evaluations per weight). The
trainer hands out one batch per ``step``, so a step tries ``weights_per_step`` consecutive weights of the
sweep on the same batch: the loss of the current weights is then known after the first evaluation, and
each weight costs 2 evaluations (+1 per step). ``weights_per_step=1`` is the paper's schedule exactly. A
step never crosses the end of a round, so one step has one standard deviation.

Evaluations per step: ``1 + 2 k`` for ``k`` weights tried (``1 + 3 k`` with weight decay), as one greedy pass
of the closure's coordinate evaluator, which the incremental engine runs as one compiled loop for MLPs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.objective.closure import Closure, coordinates_of
from gradfree.optim.base import GradientFreeOptimizer
from gradfree.optim.options import check
from gradfree.optim.registry import OPTIMIZERS, ZEROTH_ORDER

Order = Literal["output-first", "input-first"]


@dataclass(frozen=True)
class RSOOptions:
    """RSO's options.

    Attributes:
        lr: scale of the perturbation relative to each layer's initial standard deviation (the authors'
            ``sample_scale``; per group, 0 freezes a group at no cost).
        rounds: rounds (full sweeps over every weight) of the linear annealing; ``None`` keeps the
            standard deviation constant.
        anneal: the fraction of the standard deviation the annealing decays toward.
        weights_per_step: weights tried per ``step`` (each step gets a new batch from the trainer);
            ``None`` tries the rest of the current round.
        order: ``"output-first"`` (the paper's) or ``"input-first"``.
        weight_decay: multiplicative decay of each weight before it is tried (the authors' code uses 1e-4).
        l2: L2 penalty ``l2 / 2 * w**2`` per weight added to the compared losses (0: the paper's RSO).
        sigma: one perturbation scale for every tensor instead of the measured initial standard deviations.
        seed: seeds the perturbations.
    """

    lr: float = 1.0
    rounds: int | None = 50
    anneal: float = 0.1
    weights_per_step: int | None = 1024
    order: Order = "output-first"
    weight_decay: float = 0.0
    l2: float = 0.0
    sigma: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.rounds is None or self.rounds >= 1, "rso",
              f"rounds must be >= 1 (or None for no annealing), got {self.rounds}")
        check(0 <= self.anneal <= 1, "rso", f"anneal is the final fraction of the standard deviation, in [0, 1]; "
              f"got {self.anneal}")
        check(self.weights_per_step is None or self.weights_per_step >= 1, "rso",
              f"weights_per_step must be >= 1 (or None for a whole round), got {self.weights_per_step}")
        check(self.order in ("output-first", "input-first"), "rso",
              f"order must be 'output-first' or 'input-first', got {self.order!r}")
        check(0 <= self.weight_decay < 1, "rso", f"weight_decay must be in [0, 1), got {self.weight_decay}")
        check(self.l2 >= 0, "rso", f"l2 must be >= 0, got {self.l2}")
        check(self.sigma is None or self.sigma > 0, "rso", f"sigma must be positive, got {self.sigma}")


@OPTIMIZERS.register("rso", summary="RSO (Tripathi & Singh 2020): one weight at a time, keep w, w+d or w-d",
                     kind=ZEROTH_ORDER)
class RSO(GradientFreeOptimizer):
    """Random search optimisation, one weight at a time: ``RSO(params, rounds=50, ...)``; options in
    :class:`RSOOptions`.

    Attributes:
        round: rounds completed; position: weights of the current round already tried; accepted: weights
        changed so far; evaluations: evaluations spent so far.
    """

    Options = RSOOptions
    options: RSOOptions

    def __init__(self, params: Iterable[Any], **options: Any) -> None:
        super().__init__(params, **options)
        o = self.options
        self.rounds, self.anneal = o.rounds, o.anneal
        self.weights_per_step, self.order = o.weights_per_step, o.order
        self.weight_decay, self.l2 = o.weight_decay, o.l2
        self.round = 0
        self.position = 0
        self.accepted = 0
        self.evaluations = 0
        self._init_sigmas(o.sigma)
        self._plan_key: tuple[float, ...] | None = None
        self._sweep = torch.empty(0, dtype=torch.int64)
        self._scale = torch.empty(0)

    @torch.no_grad()
    def _init_sigmas(self, sigma: float | None) -> None:
        previous: float | None = None
        for i, p in enumerate(self._flat.tensors):
            value = sigma
            if value is None:
                std = float(p.detach().double().std(unbiased=False)) if p.numel() > 1 else 0.0
                value = std if std > 0 and math.isfinite(std) else previous
            if value is None:
                raise ConfigError(f"rso: parameter {i} (shape {tuple(p.shape)}) has no spread to measure a "
                                  "perturbation scale from and no tensor before it; pass sigma=...")
            self.state[p]["sigma"] = value
            previous = value

    def _plan(self) -> tuple[Tensor, Tensor]:
        """The round's visiting order (flat indices of coordinates with ``lr > 0``) and each coordinate's
        base standard deviation ``lr * sigma_l``; rebuilt only when a group's ``lr`` changes."""
        key = tuple(float(g["lr"]) for g in self.param_groups)
        if key != self._plan_key:
            scales, blocks = [], []
            for group in self.param_groups:
                for p in group["params"]:
                    s = float(group["lr"]) * float(self.state[p]["sigma"])
                    scales.append(torch.full((p.numel(),), s, dtype=torch.float64))
            offset_of = {id(p): s.offset for p, s in zip(self._flat.tensors, self._flat.slots, strict=True)}
            tensors = list(self._flat.tensors)
            if self.order == "output-first":
                tensors.reverse()
            lr_of = {id(p): float(g["lr"]) for g in self.param_groups for p in g["params"]}
            for p in tensors:
                if lr_of[id(p)] > 0:
                    blocks.append(torch.arange(offset_of[id(p)], offset_of[id(p)] + p.numel()))
            self._sweep = torch.cat(blocks) if blocks else torch.empty(0, dtype=torch.int64)
            self._scale = torch.cat(scales)
            self._plan_key = key
        return self._sweep, self._scale

    def annealing(self) -> float:
        """The factor on ``sigma_l`` in the current round (1 in round 0, decaying linearly to ``anneal``)."""
        if self.rounds is None:
            return 1.0
        return self.anneal + (1 - self.anneal) * max(self.rounds - self.round, 0) / self.rounds

    @torch.no_grad()
    def _step(self, closure: Closure) -> Tensor:
        """Try the next ``weights_per_step`` weights of the round on the closure's batch.

        Returns:
            the loss at the parameters the step started from (on this step's batch).
        """
        sweep, scale = self._plan()
        evaluator = coordinates_of(closure, self._flat)
        before = evaluator.evaluations
        start = evaluator.loss()
        if sweep.numel() == 0 or not math.isfinite(start):
            self.evaluations += evaluator.evaluations - before
            return torch.tensor(start)
        self.position = min(self.position, sweep.numel())
        chunk = self.weights_per_step or sweep.numel()
        stop = min(self.position + chunk, sweep.numel())
        indices = sweep[self.position : stop]
        dtype = self._flat.dtype
        z = torch.randn(indices.numel(), generator=self._generator, device=self._flat.device, dtype=dtype)
        deltas = z.double().cpu() * scale[indices] * self.annealing()
        w = self._flat.get().cpu().double()[indices] * (1.0 - self.weight_decay)
        # With decay the undecayed weight is not a candidate (as in the authors' code); else w competes.
        offered = [w, w + deltas, w - deltas] if self.weight_decay else [w + deltas, w - deltas]
        choices = evaluator.greedy_pass(indices, torch.stack(offered, 1).to(dtype), l2=self.l2,
                                        keep_current=not self.weight_decay).choices
        kept_decayed = int((choices == 0).sum()) if self.weight_decay else 0
        self.accepted += int((choices >= 0).sum()) - kept_decayed
        self.position = stop
        if stop >= sweep.numel():
            self.position = 0
            self.round += 1
        self.evaluations += evaluator.evaluations - before
        return torch.tensor(start)

    def _extra_state(self) -> dict[str, Any]:
        return {"round": self.round, "position": self.position, "accepted": self.accepted,
                "evaluations": self.evaluations}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.round, self.position = int(extra["round"]), int(extra["position"])
        self.accepted, self.evaluations = int(extra["accepted"]), int(extra["evaluations"])
        self._plan_key = None  # sigmas came back in self.state
