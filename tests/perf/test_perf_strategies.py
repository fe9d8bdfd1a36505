"""Smoke runs of ``gradfree perf strategies``: exact evaluation counts, the harness changes nothing a method
computes (our strategies and pycma give the same best values as when driven by hand), targets, medians and
ratios on hand-made rows, failures recorded as rows, and the command line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradfree.perf import strategies as perf
from gradfree.perf.strategies import (
    FUNCTIONS,
    METHODS,
    Method,
    Setup,
    StrategyRow,
    run_strategies,
    runs_at,
    start_point,
    summarise,
)
from gradfree.strategies import STRATEGIES


def test_functions_have_their_minimum_and_known_values() -> None:
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    assert FUNCTIONS["sphere"](x).tolist() == [0.0, 3.0, 14.0]
    assert FUNCTIONS["ellipsoid"](x).tolist() == pytest.approx([0.0, 1 + 1e3 + 1e6, 1 + 4e3 + 9e6])
    assert FUNCTIONS["rosenbrock"](x).tolist() == pytest.approx([2.0, 0.0, 100 * (1 + 1) + 0 + 1])
    assert FUNCTIONS["rastrigin"](x).tolist() == pytest.approx([0.0, 3.0, 14.0], abs=1e-12)


def test_rows_count_exactly_and_match_a_hand_driven_strategy() -> None:
    rows = run_strategies(budgets={10: 125}, seeds=[0], methods=["sep-cma", "snes", "pgpe", "ga+sigma"],
                          functions=["ellipsoid"])
    by = {r.method: r for r in rows}
    assert set(by) == {"sep-cma", "snes", "pgpe", "ga+sigma"}
    assert by["sep-cma"].evaluations == 120 and by["pgpe"].evaluations == 120  # popsize 10 (even already)
    for r in rows:
        assert isinstance(r, StrategyRow) and r.error is None and r.evaluations <= r.budget == 125
        assert r.overhead_s > 0 and r.wall_s >= r.overhead_s and math.isfinite(r.us_per_eval)
    s = STRATEGIES.get("sep-cma")(10, 10, init_mean=start_point(10, 0), sigma=1.0, seed=0)
    while s.evaluations + 10 <= 125:
        s.tell(FUNCTIONS["ellipsoid"](s.ask()))
    assert by["sep-cma"].best_f == s.best_loss  # the harness, taking turns, changes nothing


def test_targets_count_the_first_hitting_evaluation() -> None:
    (easy,) = run_strategies(budgets={5: 40}, seeds=[1], methods=["snes"], functions=["sphere"], target=1e300)
    (never,) = run_strategies(budgets={5: 40}, seeds=[1], methods=["snes"], functions=["sphere"], target=-1.0)
    assert easy.evals_to_target == 1 and never.evals_to_target is None


def test_pycma_through_the_harness_equals_pycma_by_hand() -> None:
    cma = pytest.importorskip("cma")
    (row,) = run_strategies(budgets={8: 100}, seeds=[2], methods=["pycma-diagonal"], functions=["rosenbrock"])
    es = cma.CMAEvolutionStrategy(start_point(8, 2).numpy(), 1.0, {"CMA_diagonal": True, "seed": 3, "verbose": -9})
    best = math.inf
    while es.countevals + es.popsize <= 100:
        xs = es.ask()
        values = FUNCTIONS["rosenbrock"](torch.from_numpy(np.asarray(xs)))
        es.tell(xs, values.tolist())
        best = min(best, float(values.min()))
    assert row.evaluations == es.countevals and row.best_f == best


def _row(method: str, best: float, hit: int | None, overhead: float, *, ours: bool, seed: int = 0) -> StrategyRow:
    return StrategyRow(method, "x", "diagonal CMA", ours, 100, "sphere", seed, 1000, 1000, best, hit, 1e-8,
                       overhead, overhead + 1, None)


def test_medians_and_ratios_to_the_best_peer_of_the_kind() -> None:
    rows = [_row("sep-cma", b, h, o, ours=True, seed=i) for i, (b, h, o) in
            enumerate([(1.0, 500, 0.1), (2.0, 700, 0.2), (9.0, None, 0.3)])]
    rows += [_row("pycma-diagonal", b, h, o, ours=False, seed=i) for i, (b, h, o) in
             enumerate([(4.0, 900, 0.4), (4.0, 1000, 0.4), (4.0, 1000, 0.5)])]
    rows += [_row("ng-DiagonalCMA", 8.0, None, 1.0, ours=False)]
    cells = {c.method: c for c in summarise(rows)}
    mine = cells["sep-cma"]
    assert (mine.best_f, mine.evals_to_target, mine.reached, mine.us_per_eval) == (2.0, 700, 2, 200.0)
    assert mine.peer == "pycma-diagonal" and mine.f_ratio == 0.5 and mine.evals_ratio == 0.7
    assert mine.us_ratio == pytest.approx(0.2 / 0.4)
    assert mine.ratio == ("ev", 0.7)
    assert cells["ng-DiagonalCMA"].evals_to_target == math.inf and cells["ng-DiagonalCMA"].peer is None
    text = perf.format_tables(list(cells.values()), target=1e-8)
    assert "Ours / best peer of its kind" in text and "0.7 (ev)" in text


class _Broken:
    batch = 4

    def __init__(self) -> None:
        self.calls = 0

    def step(self, f):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("peer bug")
        f(torch.zeros(4, 3, dtype=torch.float64))


def test_a_failing_peer_becomes_a_row_and_the_others_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(METHODS, "broken", Method("peerlib", "diagonal CMA", lambda s: _Broken()))
    rows = run_strategies(budgets={3: 40}, seeds=[0], methods=["broken", "sep-cma"], functions=["sphere"])
    by = {r.method: r for r in rows}
    assert by["broken"].error == "RuntimeError: peer bug" and by["broken"].evaluations == 4
    assert by["sep-cma"].error is None and by["sep-cma"].evaluations == 35  # popsize 7
    assert "failed: D=3 sphere broken" in perf.format_failures(rows)
    assert "broken" not in {c.method for c in summarise([by["broken"]])}


def test_full_covariance_and_portfolio_methods_stop_below_10k() -> None:
    assert runs_at("pycma", 1000) and not runs_at("pycma", 10_000) and not runs_at("ng-NGOpt", 10_000)
    assert all(runs_at(n, 10_000) for n in METHODS if METHODS[n].ours)
    assert Setup(1000, torch.zeros(1000), 0, 10).popsize == 24 and Setup(10, torch.zeros(10), 0, 10).even_popsize == 10


def test_main_prints_tables_and_bad_arguments_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    methods = "sep-cma,pycma-diagonal" if perf.available("pycma-diagonal") else "sep-cma,snes"
    assert perf.main(["--quick", "--methods", methods, "--functions", "sphere,rastrigin"]) == 0
    out = capsys.readouterr().out
    assert "D = 10, sphere" in out and "D = 10, rastrigin" in out and "load average" in out
    if "pycma" in methods:
        assert "Ours / best peer of its kind" in out
    assert perf.main(["--quick", "--methods", "sep-cma,nope"]) == 2
    assert "error:" in capsys.readouterr().err
