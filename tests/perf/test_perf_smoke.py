"""Smoke runs of the performance benchmarks: well-formed rows, fast paths equal to the loop, and MeZO's
memory behaviour (a behaviour check on sizes where the difference is large, not a timing check)."""

from __future__ import annotations

import math
import sys

import pytest

from gradfree.perf import memory as perf_memory
from gradfree.perf import population as perf_population
from gradfree.perf.memory import MemoryRow, run_memory
from gradfree.perf.population import PopulationRow, run_population


def test_population_rows_are_well_formed_and_match_the_loop() -> None:
    rows = run_population(sizes=(32,), popsizes=(1, 4), min_time=0.0, min_calls=2)
    assert [(r.batch, r.popsize, r.path) for r in rows] == [
        (32, p, path) for p in (1, 4) for path in ("loop", "batched", "vmap")
    ]
    for r in rows:
        assert isinstance(r, PopulationRow)
        assert r.calls >= 2 and r.seconds > 0
        assert math.isfinite(r.evals_per_s) and r.evals_per_s > 0
        assert math.isfinite(r.speedup) and r.speedup > 0
        assert 1 <= r.chunk <= r.popsize
        # float32 losses near log(10): the fast paths must agree with the loop to rounding.
        assert r.max_abs_diff <= 1e-5
    by_path = {(r.popsize, r.path): r for r in rows}
    assert by_path[(4, "batched")].mode == "mlp"  # "auto" picks the batched-matmul path for a plain MLP
    assert by_path[(4, "vmap")].mode == "vmap"
    assert by_path[(4, "loop")].speedup == 1.0 and by_path[(4, "loop")].max_abs_diff == 0.0
    table = perf_population.format_table(rows)
    assert len(table.splitlines()) == 2 + 2  # header, rule, one line per (N, P)


def test_population_main_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    status = perf_population.main(["--sizes", "16", "--popsizes", "1,2", "--min-time", "0", "--min-calls", "1"])
    out = capsys.readouterr().out
    assert status == 0
    assert "batched/loop" in out and "threads" in out and "max |loss - loop loss|" in out


def test_population_bad_arguments_give_an_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert perf_population.main(["--sizes", "0", "--min-time", "0"]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_mezo_extra_memory_stays_below_the_parameters_and_zo_sgd_stores_many_copies() -> None:
    # 3 layers of 1024 x 1024: 3.1M parameters (12 MiB). ZO-SGD with q=8 holds ~9 perturbed copies plus 8
    # directions (about 28x the parameters); MeZO one parameter tensor at a time (4 MiB here).
    rows = run_memory(widths="1024-1024-1024-1024", methods=("mezo", "zo-sgd"), directions=(8,), threads=1)
    assert [r.method for r in rows] == ["mezo", "zo-sgd q=8"]
    for r in rows:
        assert isinstance(r, MemoryRow)
        assert r.params == 3 * (1024 * 1024 + 1024)
        assert r.param_mib == pytest.approx(r.params * 4 / 2**20)
        assert r.inference_mib > r.param_mib  # the whole process, torch included
        assert r.training_mib >= r.inference_mib - 1.0
        assert r.extra_x_params == pytest.approx(r.extra_mib / r.param_mib)
    mezo, zo = rows
    assert mezo.extra_mib < mezo.param_mib
    assert zo.extra_mib > mezo.extra_mib + 4 * zo.param_mib
    assert "extra memory zo-sgd q=8 / mezo" in perf_memory.format_table(rows)
