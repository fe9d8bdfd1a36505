"""The ``explain`` trial kind, its report sections and the two suites, on the offline digits victim."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradfree.experiments.kinds import TRIAL_KINDS
from gradfree.experiments.runner import run_trials
from gradfree.experiments.suite import SUITES, Trial
from gradfree.explain import suites  # noqa: F401  (registers the suites)
from gradfree.explain.trials import ExplainSpec


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private cache, so the digits victim trained here never lands in the user's."""
    return tmp_path_factory.mktemp("cache")


def test_trials_run_through_the_runner_and_the_report_draws_their_sections(cache: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from gradfree.reports.report import write_report

    monkeypatch.setenv("GRADFREE_CACHE", str(cache))
    trials = [Trial("zo-smoothgrad", ExplainSpec(victim="digits-mlp", method="zo-smoothgrad", queries=q, images=4,
                                                 sanity_images=3, sanity_layers=(1, 2), pictures=3,
                                                 reference_samples=200 if q == 61 else 0, reference_images=2),
                    group=f"q={q}") for q in (21, 61)]
    trials += [Trial(name, ExplainSpec(victim="digits-mlp", method=name, queries=q, images=4, pictures=3,
                                       options={"grouping": "grid:8"} if name != "fd-saliency" else {}),
                     group=f"q={q}") for name, q in (("fd-saliency", 21), ("fd-saliency", 61), ("kernel-shap", 61))]
    trials.append(Trial("captum Lime", ExplainSpec(victim="digits-mlp", method="captum-lime", queries=61, images=2,
                                                   options={"grouping": "grid:8"}), group="q=61"))
    outcome = run_trials(trials, out_dir=tmp_path, suite="explain-test", log=None)
    assert outcome.failed == 0 and outcome.ran == len(trials)
    from gradfree.experiments.rows import RESULTS, read_rows

    rows, _ = read_rows(tmp_path / RESULTS)
    first = rows[0]
    assert first["kind"] == "explain" and first["status"] == "ok"
    assert set(first["final"]) == {"test_deletion_auc", "test_insertion_auc", "test_faithfulness", "test_queries"}
    assert first["final"]["test_queries"] == 21 and first["images"] == 4 and first["headline"]["name"] == "deletion_auc"
    assert set(first["sanity"]) == {"1", "2"} and -1 <= first["sanity"]["2"]["signed"] <= 1
    assert "cosine_to_smoothgrad" not in first and -1 <= rows[1]["cosine_to_smoothgrad"] <= 1
    assert len(first["history"]) == 33  # 32 deletion steps on the 64 digits pixels, and the start
    assert (tmp_path / first["artifacts"]["maps"]).is_file() and (tmp_path / first["artifacts"]["grid"]).is_file()
    files = write_report(tmp_path)
    text = files.markdown.read_text()
    for expected in ("Deletion AUC", "against its query budget", "randomisation check", "seconds per image",
                     "Explanation settings", "converge"):
        assert expected.lower() in text.lower(), expected
    assert any(p.name.startswith("explain_digits-mlp_grid") for p in files.figures)


def test_the_suites_list_every_method_at_every_budget_with_unique_keys() -> None:
    assert "explain" in TRIAL_KINDS
    for name, victim in (("explain-mnist", "mnist-lenet"), ("explain-cifar10", "cifar10-cnn")):
        for size in ("quick", "full", "gpu"):
            trials = SUITES.get(name)(size)
            keys = [t.key for t in trials]
            assert len(keys) == len(set(keys))
            main = [t for t in trials if isinstance(t.spec, ExplainSpec) and t.spec.victim == victim
                    and "queries" in t.group and "convergence" not in t.group and "captum" not in t.group]
            budgets = {t.spec.queries for t in main}
            assert budgets == ({100, 1000} if size == "quick" else {100, 1000, 10_000})
            for q in budgets:
                methods = {t.spec.method for t in main if t.spec.queries == q}
                assert {"fd-saliency", "zo-smoothgrad", "zo-ig", "contrastive", "occlusion", "rise", "kernel-shap",
                        "lime", "gradient", "smoothgrad", "integrated-gradients"} <= methods
            assert all((t.spec.sanity_images > 0) == (t.spec.queries == 1000 and t.spec.seed == 0) for t in main)
            for t in main:  # superpixel groups are capped at what the budget pays for
                if t.label == "fd-saliency (superpixels)":
                    assert int(t.spec.options["grouping"].split(":")[1]) <= (t.spec.queries - 1) // 2
            assert any(t.spec.method == "captum-kernel-shap" for t in trials)
    quantized = [t for t in SUITES.get("explain-mnist")("quick") if t.spec.victim == "mnist-quantized"]
    assert quantized and {t.spec.queries for t in quantized} == {1000}


def _row(label: str, method: str, deletion: float, insertion: float, seed: int = 0) -> dict:
    return {"key": f"{label}/seed{seed}", "label": label, "seed": seed, "status": "ok", "kind": "explain",
            "spec": {"victim": "v", "method": method, "queries": 1000},
            "final": {"test_deletion_auc": deletion, "test_insertion_auc": insertion}}


def test_the_target_check_compares_the_best_zeroth_order_method_with_each_baseline() -> None:
    from gradfree.explain.report import _target_check

    rows = [_row("zo-ig", "zo-ig", 0.05, 0.99), _row("zo-ig", "zo-ig", 0.07, 0.97, seed=1),
            _row("zo-smoothgrad", "zo-smoothgrad", 0.08, 0.98), _row("occlusion", "occlusion", 0.09, 0.985),
            _row("lime", "lime", 0.055, 0.99), _row("smoothgrad", "smoothgrad", 0.058, 0.99)]
    (block,) = _target_check(rows, "v")
    assert "**zo-ig** (deletion 0.0600, insertion 0.9800)" in block.caption  # medians over its two seeds
    verdicts = {r[0]: r[-1] for r in block.table.rows}
    assert verdicts == {"occlusion": "not beaten", "lime": "not beaten", "smoothgrad": "within 10%"}
    rows[4] = _row("lime", "lime", 0.065, 0.97)
    rows[3] = _row("occlusion", "occlusion", 0.09, 0.97)
    (block,) = _target_check(rows, "v")
    assert {r[0]: r[-1] for r in block.table.rows}["lime"] == "beaten"
    # The method judged is the one meeting the target against the most methods, not merely the lowest deletion.
    rows = [*rows[:3], _row("occlusion", "occlusion", 0.09, 0.985), _row("lime", "lime", 0.055, 0.99),
            _row("smoothgrad", "smoothgrad", 0.058, 0.99), _row("zo-ig (blur)", "zo-ig", 0.062, 0.995)]
    (block,) = _target_check(rows, "v")
    assert "**zo-ig (blur)**" in block.caption
    assert {r[0]: r[-1] for r in block.table.rows} == {"occlusion": "beaten", "lime": "not beaten",
                                                        "smoothgrad": "within 10%"}


def test_randomisation_verdict_reads_the_maps_over_the_input_support() -> None:
    """Off the support, maps that are parts of the input are 0 whatever the model: the verdict reads the signed
    correlation over the support where it was measured (from the second cascade step on), else the whole map's."""
    from gradfree.explain.report import _sanity_table

    def row(label: str, whole: float, support: float | None) -> dict[str, object]:
        steps = {k: {"signed": whole, "absolute": abs(whole), "signed_support": support} for k in ("1", "2")}
        steps["1"] = {"signed": 0.9, "absolute": 0.9, "signed_support": 0.9}  # the last layer alone: not read
        return {"label": label, "sanity": steps}

    rows = [row("masked", 0.36, 0.1), row("model-blind", 0.1, 0.5), row("unmeasured", 0.36, None),
            row("fine", -0.05, -0.2)]
    (block,) = _sanity_table(rows, "victim")
    verdicts = {r[0]: r[-1] for r in block.table.rows}
    assert verdicts == {"masked": "passes", "model-blind": "fails", "unmeasured": "fails", "fine": "passes"}
