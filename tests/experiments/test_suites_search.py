"""The search suites ask their questions fairly: one stopping rule (mdp-mnist), one budget (search-vs-gradient)."""

from __future__ import annotations

from gradfree.experiments.suite import load_suites, suite_sizes
from gradfree.optim.registry import load_methods


def test_mdp_mnist_gives_every_method_the_same_stopping_rule() -> None:
    suite = load_suites().get("mdp-mnist")
    for size in suite_sizes("mdp-mnist"):
        trials = suite(size)
        assert {t.label for t in trials} >= {"rso", "adam"}
        assert len({t.spec.time_limit for t in trials}) == 1 and len({t.spec.patience for t in trials}) == 1
        assert all(t.spec.budget is None and t.spec.task == "mdp-mnist" and t.spec.model == "mlp:784-32-10"
                   for t in trials)
        assert all({"budget", "stopping", "regularisation"} <= set(t.notes) for t in trials)
    full = suite("full")
    assert {t.spec.time_limit for t in full} == {120.0}
    kinds = {t.label: load_methods().entry(t.spec.optimizer).tags["kind"] for t in full}
    assert kinds == {"rso": "zeroth-order", "zo-adam": "zeroth-order", "adam": "gradient", "adam+l2": "gradient",
                     "rso+shift": "zeroth-order", "adam+l2+shift": "gradient"}
    by = {t.label: t.spec for t in full if t.spec.seed == 0}
    assert by["rso"].options["l2"] == by["adam+l2"].options["weight_decay"]  # the same penalty for both
    # The augmented pair: the same augmentation for both, and otherwise the settings of the pair without it.
    assert by["rso+shift"].augment == by["adam+l2+shift"].augment == "shift:1"
    assert {by[label].augment for label in ("rso", "zo-adam", "adam", "adam+l2")} == {None}
    assert by["rso+shift"].options == by["rso"].options and by["adam+l2+shift"].options == by["adam+l2"].options


def test_mdp_mnist_minute_is_a_minute_under_the_same_rule_and_says_what_it_changed() -> None:
    """The 60-s suite: the same task, model and stopping rule as mdp-mnist at half its time; each RSO variant
    differs from mdp-mnist's rso only where its label says (shifts, the perturbation scale, L2, rounds) and in
    the rounds that fit; the Adam reference is mdp-mnist's best method unchanged. Every RSO row stops after the
    same number of evaluations without a better validation loss."""
    minute, mdp = load_suites().get("mdp-mnist-minute"), load_suites().get("mdp-mnist")
    for size in suite_sizes("mdp-mnist-minute"):
        trials = minute(size)
        assert len({t.spec.time_limit for t in trials}) == 1
        assert {t.spec.patience for t in trials if "l2=5e-3" not in t.label} == {5}
        assert len({t.spec.patience * t.spec.eval_every for t in trials if t.spec.optimizer == "rso"}) == 1
        assert all(t.spec.task == ("mdp-mnist-uncentred" if t.label.endswith("uncentred") else "mdp-mnist")
                   and t.spec.model == "mlp:784-32-10" and t.spec.budget is None for t in trials)
    full = {t.label: t.spec for t in minute("full") if t.spec.seed == 0}
    reference = {t.label: t.spec for t in mdp("full") if t.spec.seed == 0}
    assert {s.time_limit for s in full.values()} == {60.0}
    rso = reference["rso"]
    for label in ("rso", "rso+shift", "rso lr=3", "rso lr=3+shift"):
        spec = full[label]
        assert spec.optimizer == "rso" and spec.batch_size is None
        assert spec.augment == ("shift:1" if label.endswith("shift") else None)
        assert spec.options == dict(rso.options, rounds=rso.options["rounds"] // 2,
                                    lr=3.0 if "lr=3" in label else rso.options["lr"])
        assert spec.eval_every == rso.eval_every  # twice as often in time: about as many validations in 60 s
    for label in ("rso lr=3 uncentred", "rso lr=3+shift uncentred"):  # the 120-s suite's rounds: 1.8x the speed
        spec = full[label]
        assert spec.augment == ("shift:1" if "shift" in label else None)
        assert spec.options == dict(rso.options, lr=3.0) and spec.eval_every == rso.eval_every
    for label, rounds in (("rso l2=5e-3, 24 rounds, uncentred", 24), ("rso l2=5e-3+shift, 32 rounds, uncentred", 32)):
        spec = full[label]
        assert spec.augment == ("shift:1" if "shift" in label else None) and spec.task == "mdp-mnist-uncentred"
        assert spec.options == dict(rso.options, lr=3.0, rounds=rounds, l2=5e-3)
        assert (spec.eval_every, spec.patience) == (rso.eval_every // 2, 10)
    for label in ("adam+l2+shift", "adam+l2+shift uncentred"):
        adam = full[label]
        assert (adam.optimizer, adam.options, adam.augment, adam.batch_size, adam.eval_every) == (
            "adam", reference["adam+l2+shift"].options, "shift:1", 64, reference["adam+l2+shift"].eval_every)


def test_search_vs_gradient_is_at_equal_budget_on_the_regression_task() -> None:
    trials = load_suites().get("search-vs-gradient")("full")
    assert {t.label for t in trials} == {"grid", "adam", "grid+adam"}
    assert len({t.spec.budget for t in trials}) == 1
    assert all(t.spec.task == "synthetic-regression" and t.spec.model == "mlp:10-5-4-1:tanh"
               and t.spec.batch_size is None for t in trials)
    hybrid = next(t for t in trials if t.label == "grid+adam")
    assert hybrid.spec.options["switch_after"] == hybrid.spec.budget // 2
    grid = next(t for t in trials if t.label == "grid")
    assert grid.spec.options["weight_range"] == (-5.0, 5.0) and grid.spec.options["range_size"] == 100
