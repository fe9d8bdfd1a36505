"""The metrics on hand-made results: success rate, distortion over successes, queries with failures charged
the full budget, medians of even counts, success-against-budget curves, and the table."""

from __future__ import annotations

import math

import torch

from gradfree.attacks.base import AttackResult, Goal
from gradfree.attacks.metrics import charged_queries, combine, markdown_table, success_curve, summarize


def _result(*, budget: int | None = 100) -> AttackResult:
    x = torch.zeros(4, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.3  # L2 0.3, L-inf 0.3
    x_adv[1] = 0.1  # L2 0.2, L-inf 0.1
    x_adv[3, 0, 1, 1] = 0.5  # L2 0.5, L-inf 0.5
    success = torch.tensor([True, True, False, True])
    delta = (x_adv - x).flatten(1).double()
    return AttackResult(method="square", goal=Goal(norm="linf", eps=0.5), access="logits", budget=budget, x=x,
                        x_adv=x_adv, labels=torch.zeros(4, dtype=torch.int64), targets=None, success=success,
                        predicted=torch.tensor([1, 1, 0, 2]), queries=torch.tensor([10, 30, 100, 20]),
                        first_success=torch.tensor([10, 30, -1, 20]), l2=delta.norm(dim=1),
                        linf=delta.abs().amax(dim=1), wall_time=2.0)


def test_summary_figures() -> None:
    s = summarize(_result())
    assert s.images == 4 and s.success_rate == 0.75
    assert math.isclose(s.l2_mean, (0.3 + 0.2 + 0.5) / 3, rel_tol=1e-6) and math.isclose(s.l2_median, 0.3, rel_tol=1e-6)
    assert math.isclose(s.linf_mean, 0.3, rel_tol=1e-6) and math.isclose(s.linf_median, 0.3, rel_tol=1e-6)
    # failures charged the budget: (10 + 30 + 100 + 20) / 4; median of 10, 20, 30, 100 is (20 + 30) / 2
    assert s.queries_mean == 40.0 and s.queries_median == 25.0
    assert s.success_queries_mean == 20.0 and s.success_queries_median == 20.0
    assert s.time_per_image == 0.5 and s.wall_time == 2.0


def test_failures_are_charged_the_budget() -> None:
    r = _result()
    r.queries[2] = 64  # a failure that stopped early (it could not pay a whole step) still costs the budget
    assert charged_queries(r).tolist() == [10.0, 30.0, 100.0, 20.0]
    unlimited = _result(budget=None)
    unlimited.queries[2] = 64
    assert charged_queries(unlimited).tolist() == [10.0, 30.0, 64.0, 20.0]


def test_success_curve_counts_first_successes_within_each_budget() -> None:
    assert success_curve(_result(), [5, 10, 25, 30, 1000]) == [0.0, 0.25, 0.5, 0.75, 0.75]


def test_nothing_succeeded_gives_nan_distortions() -> None:
    r = _result()
    r.success[:] = False
    s = summarize(r)
    assert s.success_rate == 0 and math.isnan(s.l2_mean) and math.isnan(s.success_queries_median)
    assert s.queries_mean == 100.0


def test_combine_and_table() -> None:
    both = combine([_result(), _result()])
    assert both.num_images == 8 and summarize(both).success_rate == 0.75 and both.wall_time == 4.0
    table = markdown_table([summarize(_result())])
    lines = table.strip().splitlines()
    assert len(lines) == 3 and "| square | logits | no | linf | 0.5 | 75.0% |" in lines[2]
