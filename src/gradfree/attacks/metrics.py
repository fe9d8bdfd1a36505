"""The figures an attack is judged by, computed from an :class:`~gradfree.attacks.base.AttackResult` alone.

* **success rate** — the fraction of images whose returned adversarial image the model (verified by one
  forward) classifies as the goal asks, within the box and the ``eps`` ball;
* **distortion** — L2 and L-inf of ``x_adv - x``, mean and median over the successes only (a failure has
  no perturbation to measure);
* **queries** — mean and median over all images, a failure charged the full budget (``None`` budget: what
  it spent), as Ilyas et al. 2018 and Andriushchenko et al. 2020 report them; also mean and median over the
  successes alone;
* **time per image** — the batch's wall time divided by its images (the images are attacked together);
* :func:`success_curve` — success rate against a query budget: the fraction of images whose first success
  came within ``Q`` queries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from gradfree.attacks.base import AttackResult


@dataclass(frozen=True)
class AttackSummary:
    """One attack's figures on one batch (distortions NaN when nothing succeeded)."""

    method: str
    targeted: bool
    norm: str
    eps: float | None
    access: str
    budget: int | None
    images: int
    success_rate: float
    l2_mean: float
    l2_median: float
    linf_mean: float
    linf_median: float
    queries_mean: float
    queries_median: float
    success_queries_mean: float
    success_queries_median: float
    time_per_image: float
    wall_time: float

    def row(self) -> dict[str, object]:
        """As a plain dict (for JSON rows and tables)."""
        return asdict(self)


def _mean(t: Tensor) -> float:
    return float(t.to(torch.float64).mean()) if t.numel() else math.nan


def _median(t: Tensor) -> float:
    """The median; for an even count the mean of the two middle values (numpy's, not torch's lower one)."""
    if not t.numel():
        return math.nan
    s = torch.sort(t.to(torch.float64).flatten()).values
    n = s.numel()
    return float(s[n // 2]) if n % 2 else float((s[n // 2 - 1] + s[n // 2]) / 2)


def charged_queries(result: AttackResult) -> Tensor:
    """``(N,)`` queries per image with every failure charged the full budget (its spent queries if none)."""
    spent = result.queries.to(torch.float64)
    if result.budget is None:
        return spent
    return torch.where(result.success, spent, torch.full_like(spent, float(result.budget)))


def summarize(result: AttackResult) -> AttackSummary:
    """The :class:`AttackSummary` of ``result``."""
    ok = result.success
    n = result.num_images
    queries = charged_queries(result)
    return AttackSummary(
        method=result.method, targeted=result.goal.targeted, norm=result.goal.norm, eps=result.goal.eps,
        access=result.access, budget=result.budget, images=n,
        success_rate=float(ok.to(torch.float64).mean()) if n else math.nan,
        l2_mean=_mean(result.l2[ok]), l2_median=_median(result.l2[ok]),
        linf_mean=_mean(result.linf[ok]), linf_median=_median(result.linf[ok]),
        queries_mean=_mean(queries), queries_median=_median(queries),
        success_queries_mean=_mean(result.queries[ok]), success_queries_median=_median(result.queries[ok]),
        time_per_image=result.wall_time / n if n else math.nan, wall_time=result.wall_time)


def success_curve(result: AttackResult, budgets: Sequence[int]) -> list[float]:
    """Success rate at each query budget ``Q``: images whose first success came within ``Q`` queries."""
    first = result.first_success
    hit = result.success & (first >= 0)
    n = max(result.num_images, 1)
    return [float((hit & (first <= q)).sum()) / n for q in budgets]


def combine(results: Sequence[AttackResult]) -> AttackResult:
    """Several results of the same attack and goal (e.g. batches, or seeds) as one, for one summary."""
    if not results:
        raise ValueError("nothing to combine")
    first = results[0]

    def cat(name: str) -> Tensor:
        return torch.cat([getattr(r, name).cpu() for r in results])

    targets = None if first.targets is None else torch.cat(
        [r.targets.cpu() for r in results if r.targets is not None])
    return AttackResult(
        method=first.method, goal=first.goal, access=first.access, budget=first.budget, x=cat("x"),
        x_adv=cat("x_adv"), labels=cat("labels"), targets=targets, success=cat("success"),
        predicted=cat("predicted"), queries=cat("queries"), first_success=cat("first_success"), l2=cat("l2"),
        linf=cat("linf"), wall_time=sum(r.wall_time for r in results), options=first.options,
        info={"parts": len(results)})


COLUMNS = (("method", "attack"), ("access", "access"), ("targeted", "targeted"), ("norm", "norm"),
           ("eps", "eps"), ("success_rate", "success"), ("l2_mean", "L2 mean"), ("l2_median", "L2 median"),
           ("linf_mean", "L-inf mean"), ("queries_mean", "queries mean"), ("queries_median", "queries median"),
           ("time_per_image", "s / image"))
"""The columns of :func:`markdown_table`: (field, header)."""


def _cell(key: str, value: object) -> str:
    if value is None:
        return "-"
    if key == "success_rate" and isinstance(value, float):
        return "-" if math.isnan(value) else f"{100 * value:.1f}%"
    if key == "targeted":
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if key.startswith("queries"):
            return f"{value:,.0f}"
        if key == "time_per_image":
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def markdown_table(summaries: Sequence[AttackSummary]) -> str:
    """A markdown table of summaries, one row each."""
    head = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(k, getattr(s, k)) for k, _ in COLUMNS) + " |" for s in summaries]
    return "\n".join([head, rule, *body]) + "\n"
