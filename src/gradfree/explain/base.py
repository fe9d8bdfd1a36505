"""The shared call shape of explanation methods, their result, their registry, and the black-box setup.

Every registered method is a function::

    explanation = method(model, x, *, target=None, queries=1000, access="logits", baseline=0.0,
                         generator=None, **options)

* ``x`` is a batch ``(N, *input_shape)``; each input is explained on its own, with its own query budget;
* ``target``: the class to explain, one int for all inputs or ``(N,)`` int64; ``None`` explains the class the
  model predicts;
* ``queries``: the query budget **per input**, everything included: the one query of the input itself that
  every method spends first (its scores give the predicted class and ``f(x)``) and every perturbed input after
  it. A black-box method only sees the model through :class:`~gradfree.objective.input_space.BlackBox`, whose
  counter is exact and whose budget cannot be passed (it raises before a query that would pass it);
* ``access``: what a query returns, ``"logits"`` or ``"probabilities"``; the explained score is the target
  class's logit or probability. Label-only access carries no score to attribute and is refused;
* ``baseline``: the value a *removed* feature takes (a number, or a tensor broadcastable to ``x``): occlusion,
  RISE, KernelSHAP and LIME replace features by it, integrated gradients start their path at it, the
  ``times_input`` maps multiply by ``x - baseline``, contrastive explanations treat it as "absent". For inputs
  standardised per channel, 0 is the data mean; :func:`channel_minimum` gives the black pixel instead;
* ``generator``: the only source of randomness (``None``: a fresh generator seeded 0).

White-box references (autograd) take the same arguments; for them a "query" is one forward and backward pass
of one input, counted in the result the same way.

The result is an :class:`Explanation`: maps of the input's shape, the explained classes, the queries each input
spent, the wall time, and method-specific extras (the completeness gap of integrated gradients, the pertinent
negative of a contrastive explanation...).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import torch
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.objective.input_space import BlackBox, evaluation_mode
from gradfree.registry import Registry

Model = nn.Module | Callable[[Tensor], Tensor]
"""A classifier: ``(B, *input_shape) -> (B, C)`` scores."""

SCORE_ACCESS: tuple[str, ...] = ("logits", "probabilities")
"""Access levels an explanation can attribute (a label carries no score)."""

ROW_BYTES = 64 * 2**20
"""Bound on the bytes of perturbed inputs built for one query call (the box splits forwards further)."""


@dataclass(frozen=True)
class Explanation:
    """Attribution maps of a batch of inputs.

    Attributes:
        maps: ``(N, *input_shape)`` float, the attribution of every input element (positive: evidence for the
            target class).
        targets: ``(N,)`` int64, the explained classes.
        queries: ``(N,)`` int64, queries each input spent (for white-box methods: gradient evaluations).
        method: the registered name.
        seconds: wall time of the whole batch.
        extras: method-specific ``(N, ...)`` tensors, documented by each method.
    """

    maps: Tensor
    targets: Tensor
    queries: Tensor
    method: str
    seconds: float
    extras: dict[str, Tensor] = field(default_factory=dict)

    def pixel_maps(self) -> Tensor:
        """Maps summed over channels: ``(N, H, W)`` for images ``(C, H, W)``, the maps themselves otherwise."""
        return pixel_maps(self.maps)


def pixel_maps(maps: Tensor) -> Tensor:
    """``(N, C, H, W) -> (N, H, W)`` by summing channels (a pixel is removed with all its channels); other
    shapes unchanged."""
    return maps.sum(dim=1) if maps.ndim == 4 else maps


class Explainer(Protocol):
    """Call shape every registered explanation method follows (see the module docstring)."""

    def __call__(self, model: Model, x: Tensor, *, target: int | Tensor | None = None, queries: int = 1000,
                 access: str = "logits", baseline: float | Tensor = 0.0, generator: torch.Generator | None = None,
                 **options: object) -> Explanation: ...


EXPLAINERS: Registry[Explainer] = Registry("explanation method")
"""Explanation methods by name; tags: ``kind`` (``"zeroth-order"``, ``"black-box"`` or ``"white-box"``) and
``options`` (the keyword options the method takes beyond the shared ones)."""

KINDS: tuple[str, ...] = ("zeroth-order", "black-box", "white-box")


def register(name: str, method: Callable[..., Explanation], *, kind: str, summary: str,
             options: tuple[str, ...] = ()) -> None:
    """Register ``method`` in :data:`EXPLAINERS` (its concrete keyword options do not fit the protocol's
    ``**options: object`` for mypy, hence the cast, as for the estimators)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    EXPLAINERS.add(name, cast(Explainer, method), summary=summary, kind=kind, options=options)


def channel_minimum(x: Tensor) -> Tensor:
    """The per-channel minimum of a batch of images ``(N, C, H, W)``, shape ``(C, 1, 1)``: the black pixel of
    standardised data whose batch holds one (MNIST, CIFAR-10), a baseline that removes a pixel."""
    if x.ndim != 4:
        raise ConfigError(f"channel_minimum needs images (N, C, H, W), got shape {tuple(x.shape)}")
    return x.amin(dim=(0, 2, 3)).reshape(-1, 1, 1)


def resolve_baseline(baseline: float | Tensor, x: Tensor) -> Tensor:
    """``baseline`` as ``(N, *input_shape)`` in ``x``'s dtype and device."""
    if isinstance(baseline, bool) or not isinstance(baseline, int | float | Tensor):
        raise ConfigError(f"baseline must be a number or a tensor broadcastable to the inputs, got {baseline!r}")
    b = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    try:
        return torch.broadcast_to(b, x.shape).clone()
    except RuntimeError:
        raise ConfigError(f"a baseline of shape {tuple(b.shape)} does not broadcast to inputs of shape "
                          f"{tuple(x.shape)}") from None


def check_inputs(x: Tensor) -> None:
    """Raise :class:`ConfigError` unless ``x`` is a floating batch ``(N, *input_shape)`` with ``N >= 1``."""
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2 or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ConfigError(f"explanations take a floating batch of inputs (N, *input_shape), got {shape}")


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int ``>= minimum``, else a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number ``> 0``, else a :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def input_range(x: Tensor) -> Tensor:
    """``(N,)`` the range ``max - min`` of each input (1 where an input is constant): the scale of noise and
    steps, as SmoothGrad sets its noise (Smilkov et al. 2017, Sec. 3)."""
    flat = x.reshape(x.shape[0], -1)
    r = flat.amax(dim=1) - flat.amin(dim=1)
    return torch.where(r > 0, r, torch.ones_like(r))


def make_generator(generator: torch.Generator | None) -> torch.Generator:
    """``generator``, or a CPU generator seeded 0 when none is given (the global RNG is never used)."""
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise ConfigError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def on_device(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on ``device``: ``generator`` itself when it is there, else one seeded from it."""
    if generator.device.type == device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def _shape_message(x: Tensor, exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (f"the model does not accept a batch of shape {tuple(x.shape)} (inputs of shape {tuple(x.shape[1:])}): "
            f"{first}; pass a batch (N, *input_shape)")


def _check_scores(outputs: Tensor, x: Tensor) -> None:
    if outputs.ndim != 2 or outputs.shape[0] != x.shape[0]:
        raise ConfigError(f"the model must return (N, classes) scores; for a batch of shape {tuple(x.shape)} it "
                          f"returned {tuple(outputs.shape)}")


def resolve_targets(target: int | Tensor | None, predicted: Tensor) -> Tensor:
    """``(N,)`` int64 targets from ``target`` (``None``: ``predicted``)."""
    n = predicted.shape[0]
    if target is None:
        return predicted.clone()
    if isinstance(target, bool):
        raise ConfigError("target must be a class index or a tensor of them")
    t = torch.full((n,), target, dtype=torch.int64) if isinstance(target, int) else target
    if not isinstance(t, Tensor) or t.dtype not in (torch.int64, torch.int32) or t.reshape(-1).shape != (n,):
        raise ConfigError(f"target must be an int or an integer tensor of shape ({n},)")
    return t.reshape(-1).to(torch.int64).to(predicted.device)


class BlackBoxProblem:
    """One batch to explain through a :class:`BlackBox`: the targets, ``f(x)``, the baseline, and batched scoring.

    Built by :meth:`build`, which spends the first query of every input on the input itself. Methods query
    only through :meth:`outputs`, :meth:`score` and :meth:`score_rows`, so every query is counted.

    Attributes:
        box: the black box (budget ``queries`` per input, one counter per input).
        x: ``(N, *shape)`` the inputs. baseline: ``(N, *shape)``. targets: ``(N,)`` int64.
        clean: ``(N,)`` the target score at each input (logit or probability, per the access level).
        clean_outputs: ``(N, C)`` the box's outputs at each input.
        budget: queries per input.
    """

    def __init__(self, box: BlackBox, x: Tensor, baseline: Tensor, targets: Tensor, clean_outputs: Tensor,
                 budget: int, started: float) -> None:
        self.box, self.x, self.baseline, self.targets = box, x, baseline, targets
        self.clean_outputs = clean_outputs
        self.clean = clean_outputs.gather(1, targets.reshape(-1, 1)).squeeze(1)
        self.budget, self.started = budget, started
        d = 1
        for s in x.shape[1:]:
            d *= s
        self.num_dims = d

    @classmethod
    def build(cls, model: Model, x: Tensor, *, target: int | Tensor | None, queries: int, access: str,
              baseline: float | Tensor, minimum: int = 2, what: str = "this method") -> BlackBoxProblem:
        """Check the arguments, wrap ``model`` in a box and query every input once.

        Args:
            minimum: the fewest queries per input the method can work with (a clear error below it).
            what: the method's name, for that error.
        """
        started = time.perf_counter()
        check_inputs(x)
        check_count("queries", queries, 1)
        if queries < minimum:
            raise ConfigError(f"{what} needs at least {minimum} queries per input, got {queries}")
        if access not in SCORE_ACCESS:
            raise ConfigError(f"explanations need scores to attribute: access must be one of "
                              f"{', '.join(SCORE_ACCESS)}, got {access!r}")
        x = x.detach()
        box = BlackBox(model, input_shape=tuple(x.shape[1:]), num_inputs=x.shape[0], access=access, budget=queries)
        try:
            outputs = box.query(x, owners=torch.arange(x.shape[0]))
        except RuntimeError as exc:
            raise ConfigError(_shape_message(x, exc)) from None
        _check_scores(outputs, x)
        targets = resolve_targets(target, outputs.argmax(dim=1))
        if int(targets.min()) < 0 or int(targets.max()) >= outputs.shape[1]:
            raise ConfigError(f"target classes must lie in 0..{outputs.shape[1] - 1}")
        return cls(box, x, resolve_baseline(baseline, x), targets, outputs, queries, started)

    def with_baseline(self, baseline: Tensor) -> BlackBoxProblem:
        """The same batch, box and counters with another baseline ``(N, *shape)`` (a second path start)."""
        view = copy.copy(self)
        view.baseline = baseline.to(self.x.dtype)
        return view

    @property
    def num_inputs(self) -> int:
        """Inputs in the batch."""
        return int(self.x.shape[0])

    def left(self) -> Tensor:
        """``(N,)`` queries each input has left."""
        return self.box.remaining()

    def outputs(self, points: Tensor, owners: Tensor) -> Tensor:
        """The box's outputs ``(P, C)`` for ``points`` ``(P, *shape)``, one query charged to each owner."""
        return self.box.query(points, owners=owners)

    def score(self, points: Tensor, owners: Tensor) -> Tensor:
        """``(P,)`` the target score of each owner at ``points`` ``(P, *shape)``; one query per row."""
        out = self.outputs(points, owners)
        index = self.targets[owners.to(self.targets.device)].reshape(-1, 1).to(out.device)
        return out.gather(1, index).squeeze(1)

    def score_rows(self, counts: Sequence[int], build: Callable[[int, int, int], Tensor], *,
                   max_rows: int | None = None) -> list[Tensor]:
        """Scores of ``counts[i]`` perturbed rows of every input ``i``, packed into few query calls.

        Args:
            counts: rows per input.
            build: ``build(i, start, stop) -> (stop - start, *shape)`` rows ``start .. stop - 1`` of input
                ``i``; called in increasing ``start`` for each input, inputs in order.
            max_rows: rows per query call (default: :data:`ROW_BYTES` worth); rows of several inputs share a
                call when they are few, the rows of one input are split over calls when they are many.

        Returns:
            for each input, its ``(counts[i],)`` target scores.
        """
        if max_rows is None:
            max_rows = max(1, ROW_BYTES // max(1, self.num_dims * self.x.element_size()))
        parts: list[list[Tensor]] = [[] for _ in counts]
        rows: list[Tensor] = []
        owners: list[int] = []
        sizes: list[int] = []

        def flush() -> None:
            if not rows:
                return
            owner = torch.repeat_interleave(torch.tensor(owners), torch.tensor(sizes))
            scores = self.score(torch.cat(rows), owner)
            for i, piece in zip(owners, scores.split(sizes), strict=True):
                parts[i].append(piece)
            rows.clear()
            owners.clear()
            sizes.clear()

        pending = 0
        for i, k in enumerate(counts):
            start = 0
            while start < k:
                stop = min(k, start + max_rows - pending)
                rows.append(build(i, start, stop))
                owners.append(i)
                sizes.append(stop - start)
                pending += stop - start
                start = stop
                if pending >= max_rows:
                    flush()
                    pending = 0
        flush()
        empty = self.x.new_zeros(0)
        return [torch.cat(p) if p else empty for p in parts]

    def explanation(self, maps: Tensor, method: str, **extras: Tensor) -> Explanation:
        """The finished :class:`Explanation` (queries read from the box's counter)."""
        return Explanation(maps.detach().reshape(self.x.shape).to(self.x.dtype), self.targets.clone(),
                           self.box.queries.clone(), method, time.perf_counter() - self.started, dict(extras))


class WhiteBoxProblem:
    """One batch to explain by autograd (white-box references): targets, baseline and the gradient count.

    A "query" of a white-box method is one forward and backward pass of one input; the first forward (the
    prediction) is counted as one, as for black-box methods.
    """

    def __init__(self, model: Model, x: Tensor, *, target: int | Tensor | None, queries: int, access: str,
                 baseline: float | Tensor) -> None:
        self.started = time.perf_counter()
        check_inputs(x)
        check_count("queries", queries, 2)
        if access not in SCORE_ACCESS:
            raise ConfigError(f"access must be one of {', '.join(SCORE_ACCESS)}, got {access!r}")
        self.model, self.access, self.budget = model, access, queries
        self.x = x.detach()
        self.baseline = resolve_baseline(baseline, self.x)
        try:
            with torch.no_grad(), evaluation_mode(model):
                logits = model(self.x)
        except RuntimeError as exc:
            raise ConfigError(_shape_message(self.x, exc)) from None
        _check_scores(logits, self.x)
        self.targets = resolve_targets(target, logits.argmax(dim=1))
        self.queries = torch.ones(self.x.shape[0], dtype=torch.int64)

    def gradient(self, points: Tensor, targets: Tensor) -> Tensor:
        """``(P, *shape)`` gradient of each row's target score (logit or probability) at ``points``; counts
        one query per row to the row's input (``targets`` index rows to inputs through :meth:`charge`)."""
        with evaluation_mode(self.model), torch.enable_grad():
            p = points.detach().requires_grad_(True)
            out = self.model(p)
            if self.access == "probabilities":
                out = out.softmax(dim=1)
            score = out.gather(1, targets.reshape(-1, 1).to(out.device)).sum()
            (grad,) = torch.autograd.grad(score, p)
        return grad

    def charge(self, owners: Tensor) -> None:
        """Count one gradient evaluation for each entry of ``owners``."""
        self.queries += torch.bincount(owners.cpu(), minlength=self.queries.numel())

    def explanation(self, maps: Tensor, method: str, **extras: Tensor) -> Explanation:
        """The finished :class:`Explanation`."""
        return Explanation(maps.detach().reshape(self.x.shape).to(self.x.dtype), self.targets.clone(),
                           self.queries.clone(), method, time.perf_counter() - self.started, dict(extras))
