"""What every attack shares: the goal, the session over a batch of images, the result, and the registry.

An attack is a class registered in :data:`ATTACKS` with an ``Options`` dataclass (its hyper-parameters,
declared once) and one method, :meth:`Attack.run`, that drives a :class:`Session`. The session is the shared
base the brief of the issue asks for: it holds the batch of images being attacked and everything that is
bookkeeping rather than method:

* **queries** go through one :class:`~gradfree.objective.input_space.BlackBox` with a counter per image, so
  every query is counted exactly, charged to the image it belongs to, and refused
  (:class:`~gradfree.objective.input_space.QueryBudgetExceeded`) before it would pass that image's budget;
  white-box references charge one "query" per forward-and-backward pass through the same counter;
* **every queried point is checked**: a point that meets the goal (misclassified, or classified as the
  target, with the attack's confidence margin) and lies in the box ``[0, 1]`` and in the ``eps`` ball is a
  success; the session keeps, per image, the successful point of smallest distortion and the number of
  queries spent when the first one was seen;
* **per-image stopping**: an eps-bounded attack stops an image at its first success (:attr:`Session.active`
  drops it); a minimal-distortion attack (ZOO, C&W, HopSkipJump) keeps shrinking the perturbation until its
  own schedule ends, and the best point is what it returns;
* the **result** (:class:`AttackResult`) is assembled and verified by one forward outside the budget.

Images are pixels in ``[0, 1]``, shape ``(N, *input_shape)``; the model maps them to ``(N, C)`` logits (see
:mod:`gradfree.victims` for trained networks wrapped to take pixels). The model is never modified: queries run
in eval mode under ``torch.no_grad()``, and white-box gradients are taken with respect to the inputs only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.objective.input_space import BlackBox, check_access, evaluation_mode
from gradfree.optim.options import build_options
from gradfree.registry import Registry

Norm = Literal["l2", "linf"]
NORMS: tuple[str, ...] = ("l2", "linf")

WHITE_BOX = "white-box"
"""The access level of the white-box references: the model itself, gradients by autograd."""

FORWARD_BYTES = 48 * 2**20
"""Activation memory of one forward of a query batch (the BlackBox's default is 256 MB). Cache-sized forwards
are faster on a CPU: on one core (best of 6 interleaved rounds) LeNet scored 7,300-7,600 rows/s in chunks of
512-1,024 rows against 4,600 in chunks of 2,560; the half-width CIFAR CNN 1,500 rows/s in chunks of 128
against 520 in chunks of 1,024. 48 MB gives about 840 and 120 rows."""

BOX_TOLERANCE = 1e-6
"""Slack on the pixel box ``[0, 1]`` and on the ``eps`` ball when a queried point is checked (float rounding)."""


def check_norm(norm: str) -> Norm:
    """``norm`` if it is ``"l2"`` or ``"linf"``, else a :class:`ConfigError`."""
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    return norm  # type: ignore[return-value]


def distances(delta: Tensor, norm: str) -> Tensor:
    """Per-row norms of ``delta`` ``(R, ...)``: ``(R,)``, L2 or L-inf over all other dimensions."""
    flat = delta.flatten(1)
    if norm == "l2":
        return torch.linalg.vector_norm(flat, ord=2, dim=1)
    return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])


def margins(outputs: Tensor, labels: Tensor, targets: Tensor | None, *, log: bool = False) -> Tensor:
    """How far each row is past the decision boundary, in score units: ``> 0`` means the goal is met.

    Untargeted: ``max_{i != y} z_i - z_y``; targeted: ``z_t - max_{i != t} z_i`` — the negated C&W margin
    (Carlini & Wagner 2017, Sec. V-A, objective f_6), the quantity every score-based attack here drives up.

    Args:
        outputs: ``(R, C)`` logits, or probabilities with ``log=True`` (margins are then on log-probabilities,
            which equal the logit margins exactly: the log-partition cancels).
        labels: ``(R,)`` true labels. targets: ``(R,)`` target labels for a targeted attack, else ``None``.
    """
    z = torch.log(outputs.clamp_min(1e-30)) if log else outputs
    pick = labels if targets is None else targets
    own = z.gather(1, pick.reshape(-1, 1)).squeeze(1)
    others = z.scatter(1, pick.reshape(-1, 1), float("-inf")).amax(dim=1)
    return others - own if targets is None else own - others


@dataclass(frozen=True)
class Goal:
    """What counts as a success.

    Attributes:
        targeted: reach ``targets`` (else: any label but the true one).
        norm: the distortion measure: ``"l2"`` or ``"linf"``.
        eps: the perturbation bound: a success must lie within ``eps`` of the original under ``norm``.
            Required by eps-bounded attacks; optional for minimal-distortion ones (ZOO, C&W, HopSkipJump),
            which then succeed at any distortion and report how small they got it.
    """

    targeted: bool = False
    norm: Norm = "l2"
    eps: float | None = None

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.eps is not None and not self.eps > 0:
            raise ConfigError(f"eps must be positive, got {self.eps}")


@dataclass
class AttackResult:
    """The outcome of one attack on a batch of images.

    Attributes:
        method: the attack's registered name.
        goal: targeted or not, the norm and ``eps``.
        access: the access level the attack had (``"logits"``, ``"probabilities"``, ``"label"``,
            ``"white-box"``).
        budget: queries each image was allowed (``None``: unlimited, the attack's own schedule ended it).
        x: ``(N, *shape)`` the original images. x_adv: the adversarial images (the original where the attack
            failed).
        labels: ``(N,)`` true labels. targets: ``(N,)`` target labels (targeted attacks) or ``None``.
        success: ``(N,)`` bool, verified: the model's label of ``x_adv`` (one forward outside the budget)
            meets the goal, with ``x_adv`` in the box and the ``eps`` ball.
        predicted: ``(N,)`` the model's labels of ``x_adv``.
        queries: ``(N,)`` int64, the queries each image spent (every query counted; the white-box references
            count forward-and-backward passes).
        first_success: ``(N,)`` int64, the queries spent up to and including the query batch that found the
            first success (``-1``: none). For eps-bounded attacks it equals ``queries`` on successes.
        l2, linf: ``(N,)`` float64 distortions of ``x_adv`` (0 where it failed).
        wall_time: seconds for the whole batch.
        options: the attack's resolved options.
        info: attack-specific counters (e.g. ZOO's binary-search constants).
    """

    method: str
    goal: Goal
    access: str
    budget: int | None
    x: Tensor
    x_adv: Tensor
    labels: Tensor
    targets: Tensor | None
    success: Tensor
    predicted: Tensor
    queries: Tensor
    first_success: Tensor
    l2: Tensor
    linf: Tensor
    wall_time: float
    options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_images(self) -> int:
        """Images attacked."""
        return int(self.x.shape[0])


class Session:
    """The batch of images one attack is working on: queries, per-image counters, success tracking.

    Built by :meth:`Attack.__call__`; an attack's :meth:`Attack.run` only talks to it.

    Args:
        model: ``(B, *shape) -> (B, C)`` logits on pixels in ``[0, 1]``; never modified.
        x: ``(N, *shape)`` the images. labels: ``(N,)`` their true labels.
        goal: see :class:`Goal`. targets: ``(N,)`` target labels, required when ``goal.targeted``.
        budget: queries per image (``None``: unlimited).
        access: what a query returns (``"logits"``, ``"probabilities"``, ``"label"``), or ``"white-box"``.
        generator: the attack's only source of randomness (on the images' device).
        confidence: a success needs a margin (:func:`margins`) above this (C&W's kappa; 0 for the others).
        stop_on_success: drop an image from :attr:`active` at its first success (eps-bounded attacks).

    Attributes:
        x0, labels, targets, goal, generator: as given (``x0`` on the model's device, float).
        success: ``(N,)`` bool, some queried point met the goal within the constraints.
        best: ``(N, *shape)`` the successful point of smallest distortion (``x0`` where none).
        best_distance: ``(N,)`` its distortion under ``goal.norm`` (``inf`` where none).
        first_success: ``(N,)`` int64 queries spent when the first success was seen (``-1``: none).
        finished: ``(N,)`` bool, images the attack has given up on or completed.
        info: attack-specific values copied into the result.
    """

    def __init__(self, model: nn.Module | Callable[[Tensor], Tensor], x: Tensor, labels: Tensor, *, goal: Goal,
                 targets: Tensor | None, budget: int | None, access: str, generator: torch.Generator,
                 confidence: float = 0.0, stop_on_success: bool = True) -> None:
        self._model = model
        self.white_box = access == WHITE_BOX
        self.access = access if self.white_box else check_access(access)
        self.x0 = x.detach()
        self.n = int(x.shape[0])
        self.shape = tuple(int(s) for s in x.shape[1:])
        self.dims = int(self.x0[0].numel())
        self.device = x.device
        self.labels = labels.to(self.device)
        self.targets = None if targets is None else targets.to(self.device)
        self.goal, self.budget, self.generator = goal, budget, generator
        self.confidence = float(confidence)
        self.stop_on_success = stop_on_success
        # One counter per image; white-box passes are charged to the same counter.
        self.box = BlackBox(model, input_shape=self.shape, num_inputs=self.n,
                            access="logits" if self.white_box else self.access, budget=budget,
                            memory_bytes=FORWARD_BYTES)
        self.success = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        self.best = self.x0.clone()
        self.best_distance = torch.full((self.n,), float("inf"), dtype=torch.float64, device=self.device)
        self.first_success = torch.full((self.n,), -1, dtype=torch.int64)
        self.finished = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ state
    @property
    def queries(self) -> Tensor:
        """``(N,)`` int64 queries charged to each image so far (on the CPU)."""
        return self.box.queries

    @property
    def active(self) -> Tensor:
        """``(N,)`` bool: images still being attacked (not finished, not stopped by a success, budget left)."""
        done = self.finished | (self.success if self.stop_on_success else torch.zeros_like(self.success))
        return ~done & (self.remaining().to(self.device) > 0)

    def active_indices(self) -> Tensor:
        """int64 indices of :attr:`active` images (on the images' device)."""
        return torch.nonzero(self.active).flatten()

    def remaining(self, images: Tensor | None = None) -> Tensor:
        """Queries left to ``images`` (all when ``None``), int64 on the CPU; huge without a budget."""
        return self.box.remaining(None if images is None else images.cpu())

    def affordable(self, images: Tensor, cost: int) -> Tensor:
        """The entries of ``images`` that can still pay ``cost`` queries each."""
        if images.numel() == 0:
            return images
        return images[(self.remaining(images) >= cost).to(images.device)]

    def finish(self, images: Tensor) -> None:
        """Mark ``images`` as done: the attack will not query them again."""
        self.finished[images] = True

    # ---------------------------------------------------------------------------------------- queries
    def query(self, points: Tensor, owners: Tensor) -> Tensor:
        """Query the black box: ``points`` ``(R, *shape)``, row ``r`` charged to image ``owners[r]``.

        Returns what the access level gives (``(R, C)`` scores or ``(R,)`` labels); every row is checked
        for success (see the class docstring).

        Raises:
            QueryBudgetExceeded: some image would pass its budget (nothing is queried or charged).
        """
        if self.white_box:
            raise ConfigError("a white-box attack asks for gradients(), not queries")
        owners = owners.reshape(-1).to(self.device, torch.int64)
        outputs = self.box.query(points, owners.cpu())
        self._observe(points, owners, outputs)
        return outputs

    def gradients(self, points: Tensor, owners: Tensor,
                  loss: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """White-box references only: logits, losses and input gradients at ``points``, one pass per row.

        Args:
            points: ``(R, *shape)``. owners: ``(R,)`` the image each row belongs to (charged one query).
            loss: ``loss(logits (R, C), owners (R,)) -> (R,)``; its gradient with respect to ``points`` is
                taken row by row (the rows are independent: eval mode, no batch statistics).

        Returns:
            ``(logits (R, C), losses (R,), grad (R, *shape))``, detached. The model's parameters get no
            ``.grad``: the gradient is taken with respect to the inputs only.
        """
        if not self.white_box:
            raise ConfigError("gradients() is for the white-box references; a black-box attack queries")
        owners = owners.reshape(-1).to(self.device, torch.int64)
        self.box.charge(owners.cpu())
        with torch.enable_grad(), evaluation_mode(self._model):
            p = points.detach().clone().requires_grad_(True)
            logits = self._model(p)
            values = loss(logits, owners)
            (grad,) = torch.autograd.grad(values.sum(), [p])
        logits = logits.detach()
        self._observe(points.detach(), owners, logits)
        return logits, values.detach(), grad.detach()

    def margins(self, outputs: Tensor, owners: Tensor) -> Tensor:
        """:func:`margins` of score rows belonging to ``owners`` (log-probabilities for probability access)."""
        targets = None if self.targets is None else self.targets[owners]
        return margins(outputs, self.labels[owners], targets, log=self.access == "probabilities")

    def hits(self, outputs: Tensor, owners: Tensor) -> Tensor:
        """``(R,)`` bool: the rows whose outputs meet the goal (constraints not checked)."""
        if outputs.ndim == 1:  # labels
            if self.targets is not None:
                return outputs == self.targets[owners]
            return outputs != self.labels[owners]
        return self.margins(outputs, owners) > self.confidence

    def feasible(self, points: Tensor, owners: Tensor) -> Tensor:
        """``(R,)`` bool: the rows inside the pixel box and (when the goal has one) the ``eps`` ball."""
        flat = points.flatten(1)
        ok = (flat.amin(dim=1) >= -BOX_TOLERANCE) & (flat.amax(dim=1) <= 1 + BOX_TOLERANCE)
        if self.goal.eps is not None:
            dist = distances(points - self.x0[owners], self.goal.norm)
            ok &= dist <= self.goal.eps * (1 + BOX_TOLERANCE) + BOX_TOLERANCE
        return ok

    def _observe(self, points: Tensor, owners: Tensor, outputs: Tensor) -> None:
        hit = self.hits(outputs, owners)
        if not bool(hit.any()):
            return
        hit &= self.feasible(points, owners)
        rows = torch.nonzero(hit).flatten()
        if rows.numel() == 0:
            return
        who = owners[rows]
        dist = distances(points[rows] - self.x0[who], self.goal.norm).to(torch.float64)
        # The smallest distortion per image among this call's hits (first such row on ties).
        smallest = torch.full((self.n,), float("inf"), dtype=torch.float64, device=self.device)
        smallest.scatter_reduce_(0, who, dist, reduce="amin")
        is_min = dist == smallest[who]
        rows, who = rows[is_min], who[is_min]
        first = torch.full((self.n,), rows.numel(), dtype=torch.int64, device=self.device)
        first.scatter_reduce_(0, who, torch.arange(rows.numel(), device=self.device), reduce="amin")
        images = torch.nonzero(first < rows.numel()).flatten()
        chosen = rows[first[images]]
        better = smallest[images] < self.best_distance[images]
        images, chosen = images[better], chosen[better]
        self.best[images] = points[chosen].to(self.best.dtype)
        self.best_distance[images] = smallest[images]
        new = images[~self.success[images]]
        self.first_success[new.cpu()] = self.box.queries[new.cpu()]
        self.success[images] = True


class Attack:
    """Base of every registered attack.

    A subclass sets the class attributes and implements :meth:`run`; calling an instance attacks a batch.

    Class attributes:
        name: the registered name. Options: the dataclass of hyper-parameters.
        norms: the norms the attack handles. access_levels: the access levels it can work with (the first
            is its default). bounded: eps-bounded (needs ``eps``, stops per image at its first success) or
            minimal-distortion (runs its schedule and returns the smallest successful perturbation).
        needs_budget: an eps-bounded attack runs until success or its budget, so it needs one (the white-box
            PGD is bounded by its step count instead).
        uses_starts: takes starting adversarial points (decision-based attacks).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[Any]]
    norms: ClassVar[tuple[str, ...]] = NORMS
    access_levels: ClassVar[tuple[str, ...]] = ("logits", "probabilities")
    bounded: ClassVar[bool] = True
    needs_budget: ClassVar[bool] = True
    uses_starts: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = build_options(self.Options, self.name or type(self).__name__, options)

    def confidence(self) -> float:
        """The margin a success needs (C&W's kappa for ZOO and C&W; 0 otherwise)."""
        return 0.0

    def __call__(self, model: nn.Module | Callable[[Tensor], Tensor], x: Tensor, labels: Tensor, *,
                 targets: Tensor | None = None, norm: str = "linf", eps: float | None = None,
                 budget: int | None = None, access: str | None = None, seed: int = 0,
                 starts: Tensor | None = None) -> AttackResult:
        """Attack the images ``x`` of true class ``labels``.

        Args:
            model: ``(B, *shape) -> (B, C)`` logits on pixels in ``[0, 1]``; never modified.
            x: ``(N, *shape)`` images in ``[0, 1]``. labels: ``(N,)`` int64 true labels.
            targets: ``(N,)`` target labels for a targeted attack (``None``: untargeted).
            norm: ``"l2"`` or ``"linf"``. eps: the perturbation bound (required by eps-bounded attacks).
            budget: queries per image (``None``: unlimited; eps-bounded attacks need one).
            access: the access level (default: the attack's first).
            seed: seeds the attack's generator (the global RNG is never used).
            starts: ``(N, *shape)`` adversarial starting points, for decision-based attacks (e.g. images of
                the target class for a targeted HopSkipJump).

        Returns:
            The verified :class:`AttackResult`.
        """
        goal = Goal(targeted=targets is not None, norm=check_norm(norm), eps=eps)
        access = self.access_levels[0] if access is None else access
        self._check(x, labels, targets, goal, budget, access, starts)
        generator = torch.Generator(device=x.device).manual_seed(int(seed))
        session = Session(model, x.to(torch.get_default_dtype()) if not x.is_floating_point() else x, labels,
                          goal=goal, targets=targets, budget=budget, access=access, generator=generator,
                          confidence=self.confidence(), stop_on_success=self.bounded)
        start = time.perf_counter()
        self.run(session, starts=starts)
        wall = time.perf_counter() - start
        return self._result(session, model, wall)

    def run(self, s: Session, *, starts: Tensor | None = None) -> None:
        """Attack the session's images; every query goes through ``s`` (implemented by each attack)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------- helpers
    def _check(self, x: Tensor, labels: Tensor, targets: Tensor | None, goal: Goal, budget: int | None,
               access: str, starts: Tensor | None) -> None:
        name = self.name or type(self).__name__
        if access not in self.access_levels:
            raise ConfigError(f"{name} works with access {', '.join(self.access_levels)}; got {access!r}")
        if goal.norm not in self.norms:
            raise ConfigError(f"{name} attacks under {', '.join(self.norms)}; got norm {goal.norm!r}")
        if self.bounded and goal.eps is None:
            raise ConfigError(f"{name} is eps-bounded: give eps (e.g. 0.3 on MNIST under linf)")
        if self.bounded and self.needs_budget and budget is None:
            raise ConfigError(f"{name} runs until success or its query budget: give a budget per image")
        if x.ndim < 2 or labels.shape != (x.shape[0],):
            raise ConfigError(f"expected images (N, ...) and labels (N,), got {tuple(x.shape)} and "
                              f"{tuple(labels.shape)}")
        if targets is not None and targets.shape != labels.shape:
            raise ConfigError(f"targets must have the shape of labels {tuple(labels.shape)}, got "
                              f"{tuple(targets.shape)}")
        if targets is not None and bool((targets.to(labels.device) == labels).any()):
            raise ConfigError("a target equals the true label of its image; pick targets != labels")
        if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            raise ConfigError("attacks work on pixels in [0, 1]; wrap a model trained on standardised inputs "
                              "(gradfree.victims.PixelClassifier)")
        if starts is not None and not self.uses_starts:
            raise ConfigError(f"{name} takes no starting points (only decision-based attacks do)")
        if starts is not None and starts.shape != x.shape:
            raise ConfigError(f"starts must have the shape of x {tuple(x.shape)}, got {tuple(starts.shape)}")

    def _result(self, s: Session, model: nn.Module | Callable[[Tensor], Tensor], wall: float) -> AttackResult:
        x_adv = torch.where(s.success.reshape(-1, *[1] * len(s.shape)), s.best, s.x0)
        with torch.no_grad(), evaluation_mode(model):  # verification: outside the budget, not a query
            logits = torch.cat([model(chunk) for chunk in x_adv.split(1024)]) if s.n else x_adv.new_zeros(0, 1)
        owners = torch.arange(s.n, device=s.device)
        verified = (margins(logits, s.labels, s.targets) > s.confidence) & s.feasible(x_adv, owners) & s.success
        x_adv = torch.where(verified.reshape(-1, *[1] * len(s.shape)), x_adv, s.x0)
        delta = (x_adv - s.x0).to(torch.float64)
        info = dict(s.info)
        mismatched = int((s.success & ~verified).sum())
        if mismatched:  # a success seen in a query that the verifying forward did not confirm (float noise)
            info["unverified"] = mismatched
        return AttackResult(
            method=self.name, goal=s.goal, access=s.access, budget=s.budget, x=s.x0, x_adv=x_adv,
            labels=s.labels, targets=s.targets, success=verified.cpu(), predicted=logits.argmax(dim=1).cpu(),
            queries=s.queries.clone(), first_success=torch.where(verified.cpu(), s.first_success, -1),
            l2=distances(delta, "l2").cpu(), linf=distances(delta, "linf").cpu(), wall_time=wall,
            options=asdict(self.options), info=info)


ATTACKS: Registry[type[Attack]] = Registry("attack")
"""Every attack by name; tags: ``kind`` (``"score"``, ``"label"``, ``"white-box"``), ``norms``, ``bounded``."""


def register(cls: type[Attack], *, summary: str, kind: str) -> type[Attack]:
    """Register an :class:`Attack` subclass under its ``name`` (used by each attack's file)."""
    ATTACKS.add(cls.name, cls, summary=summary, kind=kind, norms=cls.norms, bounded=cls.bounded)
    return cls


def build_attack(name: str, **options: Any) -> Attack:
    """The registered attack ``name`` with ``options`` (an unknown option is a :class:`ConfigError`)."""
    return ATTACKS.get(name)(**options)
