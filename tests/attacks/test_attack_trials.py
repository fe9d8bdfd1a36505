"""The ``attack`` trial kind through the runner, its report sections, and the two suites' trial lists
(on the offline digits victim)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from gradfree.attacks import ATTACKS
from gradfree.attacks import suites as attack_suites  # noqa: F401  (registers the suites)
from gradfree.attacks.trials import AttackSpec
from gradfree.experiments.kinds import TRIAL_KINDS
from gradfree.experiments.rows import RESULTS, read_rows
from gradfree.experiments.runner import run_trials
from gradfree.experiments.suite import SUITES, Trial


def test_trials_run_through_the_runner_and_the_report_draws_their_sections(victim_cache: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from gradfree.reports.report import write_report

    monkeypatch.setenv("GRADFREE_CACHE", str(victim_cache))
    v = {"victim": "digits-mlp", "images": 4, "pictures": 3}
    trials = [
        Trial("square", AttackSpec(method="square", norm="linf", eps=0.3, queries=300, **v), group="linf"),
        Trial("nes", AttackSpec(method="nes", norm="linf", eps=0.3, queries=600, **v), group="linf"),
        Trial("pgd", AttackSpec(method="pgd", norm="linf", eps=0.3, queries=None, **v), group="linf"),
        Trial("hopskipjump", AttackSpec(method="hopskipjump", targeted=True, norm="l2", eps=None, queries=400,
                                        options={"iterations": 3}, **v), group="hsj"),
        Trial("zoo-adam", AttackSpec(method="zoo-adam", norm="l2", eps=None, queries=None,
                                     options={"iterations": 20, "binary_steps": 2, "coordinates": 16}, **v),
              group="l2"),
        Trial("cw-l2", AttackSpec(method="cw-l2", norm="l2", eps=None, queries=None,
                                  options={"iterations": 50, "binary_steps": 2}, **v), group="l2"),
    ]
    outcome = run_trials(trials, out_dir=tmp_path, suite="attack-test", log=None)
    rows, _ = read_rows(tmp_path / RESULTS)
    assert outcome.failed == 0, [r.get("error") for r in rows if r["status"] != "ok"]
    first = rows[0]
    assert first["kind"] == "attack" and first["headline"]["name"] == "success_rate"
    assert set(first["final"]) == {"test_success_rate", "test_l2_mean", "test_l2_median", "test_linf_mean",
                                   "test_queries_mean", "test_queries_median", "test_seconds_per_image"}
    assert first["images"] == 4 and len(first["l2_per_image"]) == 4 and first["budget"] == 300
    curve = [p["success_rate"] for p in first["history"]]
    assert curve == sorted(curve) and curve[-1] == first["final"]["test_success_rate"]
    assert all((tmp_path / first["artifacts"][k]).is_file() for k in ("adversarial", "grid"))
    hsj = next(r for r in rows if r["label"] == "hopskipjump")
    assert hsj["access"] == "label" and all(q <= 400 for q in hsj["queries_per_image"])
    files = write_report(tmp_path)
    text = files.markdown.read_text()
    for expected in ("Success rate against queries", "Adversarial examples", "ZOO against white-box C&W-L2",
                     "Query efficiency", "no query budget"):
        assert expected.lower() in text.lower(), expected
    assert any(p.name.endswith("_grid.png") for p in files.figures)


def test_the_suites_cover_every_attack_goal_and_norm_with_unique_keys() -> None:
    assert "attack" in TRIAL_KINDS
    for name, victim in (("attacks-mnist", "mnist-lenet"), ("attacks-cifar10", "cifar10-cnn")):
        for size in ("quick", "full", "gpu"):
            trials = SUITES.get(name)(size)
            keys = [t.key for t in trials]
            assert len(keys) == len(set(keys))
            main = [t.spec for t in trials if isinstance(t.spec, AttackSpec) and t.spec.victim == victim]
            for targeted in (False, True):
                methods = {s.method for s in main if s.targeted == targeted}
                assert set(ATTACKS.names()) | {"art-zoo"} <= methods
                for method in ATTACKS.names():
                    norms = {s.norm for s in main if s.targeted == targeted and s.method == method}
                    assert norms == set(ATTACKS.get(method).norms), (method, norms)
            # ours at ART's best settings beside every ART trial at them: same images, c, iterations
            art = sorted((s for s in main if s.method == "art-zoo" and s.options["settings"] != "defaults"),
                         key=lambda s: (s.seed, s.targeted))
            ours = sorted((s for s in main if s.method == "zoo-adam" and s.options["binary_steps"] == 1),
                          key=lambda s: (s.seed, s.targeted))
            assert len(art) == len(ours) == 2 * len({s.seed for s in main})
            for a, z in zip(art, ours, strict=True):
                assert (a.seed, a.targeted, a.images) == (z.seed, z.targeted, z.images)
                assert z.options["initial_const"] == a.options["settings"]["initial_const"] == 10.0
                assert z.options["iterations"] == a.options["settings"]["max_iter"]
            seeds = {s.seed for s in main}
            assert seeds == ({0} if size == "quick" else {0, 1, 2})
            assert all(s.victim_seed == s.seed for s in main)
    mnist = SUITES.get("attacks-mnist")("full")
    others = {t.spec.victim for t in mnist}
    assert {"mnist-rso", "mnist-quantized"} <= others
    quantized = {t.spec.method for t in mnist if t.spec.victim == "mnist-quantized"}
    assert {"pgd", "square", "nes", "bandits-td", "zo-signsgd", "hopskipjump"} <= quantized
    # ZOO's own settings: CIFAR-10's targeted ZOO-ADAM takes the larger step, the rest share the task's
    for name, lr, targeted_adam in (("attacks-mnist", 0.03, 0.03), ("attacks-cifar10", 0.003, 0.01)):
        zoo = [t.spec for t in SUITES.get(name)("full") if isinstance(t.spec, AttackSpec)
               and t.spec.method.startswith("zoo-") and t.spec.options["binary_steps"] > 1]
        assert {s.options["lr"] for s in zoo if s.targeted and s.method == "zoo-adam"} == {targeted_adam}
        assert {s.options["lr"] for s in zoo if not (s.targeted and s.method == "zoo-adam")} == {lr}


def test_success_curves_read_each_seed_at_every_budget_of_the_median() -> None:
    """Seeds sample their curves at budgets of their own; the median reads each seed's curve as a step
    function, so a budget only one seed sampled does not drag the median down to that seed alone."""
    from gradfree.attacks.report import _success_within

    early = [(1, 0.0), (10, 0.5), (20, 1.0)]
    late = [(1, 0.0), (15, 0.6), (30, 1.0)]
    assert [_success_within(early, q) for q in (0, 1, 9, 10, 25, 100)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    third = [(1, 0.0), (12, 0.9), (25, 1.0)]
    budgets = sorted({q for c in (early, late, third) for q, _ in c})
    medians = [statistics.median(_success_within(c, q) for c in (early, late, third)) for q in budgets]
    assert medians == sorted(medians)  # monotone, as every seed's own curve is
    assert medians[budgets.index(30)] == 1.0
