"""The report sections of explanation trials (kind ``"explain"``), drawn from the rows and their artifacts.

Beyond the shared results table: AUC against the query budget per victim, heat-map grids (the input, then
every method's map) from the trials' ``maps.pt``, the issue's target check at 1,000 queries (the zeroth-order
method that meets it against the most methods, against each black-box baseline and white-box SmoothGrad),
the randomisation check, seconds per image, and ZO-SmoothGrad's convergence to SmoothGrad.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradfree.reports.blocks import Block, Bullets, Figure, Heading, Paragraph, TableBlock
from gradfree.reports.sections import REPORT_SECTIONS, Sections
from gradfree.reports.summary import SPREAD, Row, Table

BASELINES = ("occlusion", "rise", "kernel-shap", "lime")
TARGET_BUDGET = 1000


def _spec(row: Row) -> dict[str, Any]:
    return row.get("spec") or {}


def method_kind(method: str) -> str:
    """``zeroth-order``, ``black-box``, ``white-box`` or ``captum`` for a trial's method."""
    from gradfree.explain import EXPLAINERS

    if method.startswith("captum-"):
        return "captum"
    return str(EXPLAINERS.entry(method).tags.get("kind")) if method in EXPLAINERS else "unknown"


def _victims(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(str(_spec(r).get("victim")) for r in rows))


def _value(row: Row, key: str) -> float | None:
    value = (row.get("final") or {}).get(key, row.get(key))
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value == value else None


def _stats(values: Sequence[float | None]) -> tuple[float, float, float] | None:
    found = [v for v in values if v is not None]
    return (statistics.median(found), min(found), max(found)) if found else None


def _cell(values: Sequence[float | None], fmt: str = "{:.4f}") -> str:
    found = _stats(values)
    if found is None:
        return "—"
    med, low, high = (fmt.format(v) for v in found)
    return med if low == high else f"{med} [{low}, {high}]"


def _by_label(rows: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(str(r.get("label")), []).append(r)
    return out


def overview(rows: Sequence[Row]) -> list[Block]:
    """What ran and how it is scored."""
    specs = [_spec(r) for r in rows]
    victims = ", ".join(f"`{v}`" for v in _victims(rows))
    budgets = sorted({int(s.get("queries", 0)) for s in specs})
    images = sorted({int(s.get("images", 0)) for s in specs})
    seeds = sorted({int(r.get("seed", 0)) for r in rows})
    text = (f"{len(rows)} explanation trials on {victims}: every method at "
            f"{', '.join(f'{b:,}' for b in budgets)} queries per image, on the first "
            f"{', '.join(map(str, images))} correctly classified test images, seeds {', '.join(map(str, seeds))} "
            "(the seed draws the method's randomness; deterministic methods repeat the same maps). A query is "
            "one image scored by the model, counted per image by the black box, the image's own first query "
            "included; white-box methods count one forward and backward pass as one query. Images are pixels "
            "in [0, 1] and the baseline, what a removed pixel becomes, is black (0).")
    scoring = ("**Deletion AUC** (lower is better): pixels are removed (set to black) in the map's order, most "
               "important first, one image row's worth per step, and the probability of the explained class is "
               "averaged over the steps (RISE, Petsiuk et al. 2018, Sec. 4.1). **Insertion AUC** (higher is "
               "better) puts the pixels back in the same order into a blurred copy of the image (a Gaussian of a "
               "tenth of the image side); the rows also hold insertion starting from black "
               "(`insertion_from_black`). **Faithfulness** is the correlation between a map's total over random "
               "subsets of a tenth of the pixels and the logit's drop when they are removed (Bhatt et al. "
               f"2020). Table cells are {SPREAD}; wall time is the explanation of the whole batch.")
    return [Paragraph(text), Paragraph(scoring)]


def figures(rows: Sequence[Row], out: Path) -> list[Block]:
    """AUC-against-queries plots, heat-map grids, the target check, the randomisation check, timings, and the
    convergence plot."""
    from gradfree.explain.pictures import auc_against_queries, convergence_plot

    blocks: list[Block] = [Heading("Explanations")]
    main_rows = [r for r in rows if not _spec(r).get("reference_samples") and "captum" not in str(r.get("group"))]
    for victim in _victims(main_rows):
        members = [r for r in main_rows if _spec(r).get("victim") == victim]
        beside = [r for r in rows if _spec(r).get("victim") == victim and "captum" in str(r.get("group"))]
        safe = victim.replace("/", "_")
        for key, name, better in (("test_deletion_auc", "deletion AUC", "lower is better"),
                                  ("test_insertion_auc", "insertion AUC", "higher is better")):
            points = _points(members, key)
            if any(len(v) > 1 for v in points.values()):
                file = f"explain_{safe}_{key.removeprefix('test_')}.png"
                auc_against_queries(points, out / file, metric=name, better=better,
                                    title=f"{name} against queries per image, {victim}")
                blocks.append(Figure(file, f"{name} ({better}) of every method against its query budget on "
                                           f"`{victim}`: median over seeds, band from min to max."))
        grid = _grid(members, out, safe)
        if grid is not None:
            blocks.append(grid)
        for group in dict.fromkeys(str(r.get("group") or "") for r in members):
            blocks += _target_check([r for r in members if str(r.get("group") or "") == group], victim)
        blocks += _sanity_table(members, victim)
        blocks += _timing_table([*members, *beside], victim)
    curves = _convergence(rows)
    if curves:
        file = "explain_smoothgrad_convergence.png"
        convergence_plot(curves, out / file)
        blocks.append(Figure(file, "Cosine similarity of each method's maps to autograd SmoothGrad with many "
                                   "samples, against queries (or samples) per image: median over seeds and images."))
    return blocks


def _points(rows: Sequence[Row], key: str) -> dict[str, list[tuple[float, float, float, float]]]:
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for label, members in _by_label(rows).items():
        by_budget: dict[int, list[float | None]] = {}
        for r in members:
            by_budget.setdefault(int(_spec(r).get("queries", 0)), []).append(_value(r, key))
        for q, values in sorted(by_budget.items()):
            found = _stats(values)
            if found is not None:
                out.setdefault(label, []).append((float(q), *found))
    return out


def _grid(rows: Sequence[Row], out: Path, safe: str) -> Figure | None:
    """The heat-map grid at the target budget (else the largest one) from the trials' ``maps.pt``."""
    import torch

    from gradfree.explain.pictures import heatmap_grid

    budgets = sorted({int(_spec(r).get("queries", 0)) for r in rows})
    if not budgets:
        return None
    budget = TARGET_BUDGET if TARGET_BUDGET in budgets else budgets[-1]
    maps: dict[str, Any] = {}
    images = captions = None
    for label, members in _by_label([r for r in rows if int(_spec(r).get("queries", 0)) == budget]).items():
        first = min(members, key=lambda r: int(r.get("seed", 0)))
        path = (first.get("artifacts") or {}).get("maps")
        if not path or not (out / path).is_file():
            continue
        saved = torch.load(out / path, weights_only=True)
        if images is None:
            images, captions = saved["images"], [str(c) for c in saved["labels"]]
        if saved["maps"].shape == images.shape:
            maps[label] = saved["maps"]
    if images is None or not maps:
        return None
    file = f"explain_{safe}_grid_{budget}.png"
    heatmap_grid(images, maps, out / file, captions=captions,
                 title=f"{budget:,} queries per image: the input, then each method's map (red: for the class)")
    return Figure(file, f"Heat maps at {budget:,} queries per image (seed 0): one row per test image (its class "
                        "under it), the input then each method's map on its own symmetric scale.")


def _target_check(rows: Sequence[Row], victim: str) -> list[Block]:
    """The issue's target at 1,000 queries within one group of trials: the zeroth-order method that meets it
    against the most baselines (then the lowest median deletion AUC) against each baseline and white-box
    SmoothGrad (nothing when the group lacks them)."""
    at = [r for r in rows if int(_spec(r).get("queries", 0)) == TARGET_BUDGET]
    labels = _by_label(at)
    method = {label: str(_spec(members[0]).get("method")) for label, members in labels.items()}
    point: dict[str, tuple[float, float]] = {}  # the median deletion and insertion AUC of each label with both
    for label, members in labels.items():
        d = _stats([_value(r, "test_deletion_auc") for r in members])
        i = _stats([_value(r, "test_insertion_auc") for r in members])
        if d is not None and i is not None:
            point[label] = (d[0], i[0])
    zo = [label for label in point if method_kind(method[label]) == "zeroth-order"]
    others = [label for label in point if method[label] in (*BASELINES, "smoothgrad")]
    if not zo or not others or not any(m in BASELINES for m in method.values()):
        return []

    def verdicts(label: str) -> list[str]:
        d_zo, i_zo = point[label]
        return [("within 10%" if d_zo <= 1.1 * point[o][0] and i_zo >= 0.9 * point[o][1] else "not within 10%")
                if method[o] == "smoothgrad"
                else ("beaten" if d_zo < point[o][0] and i_zo > point[o][1] else "not beaten") for o in others]

    best = min(zo, key=lambda label: (-sum(v in ("beaten", "within 10%") for v in verdicts(label)), point[label][0]))
    d_best, i_best = point[best]
    body = [[o, f"{point[o][0]:.4f}", f"{point[o][1]:.4f}", f"{d_best / point[o][0]:.3f}",
             f"{i_best / point[o][1]:.3f}", verdict] for o, verdict in zip(others, verdicts(best), strict=True)]
    table = Table(["against", "deletion AUC", "insertion AUC", "best ZO / it (deletion)", "best ZO / it (insertion)",
                   "target"], body, [False, True, True, True, True, False])
    return [TableBlock(table, caption=f"`{victim}` at {TARGET_BUDGET:,} queries: the zeroth-order method that meets "
                                      f"the target against the most methods (then the lowest median deletion AUC) "
                                      f"is **{best}** (deletion {d_best:.4f}, insertion {i_best:.4f}). Target: lower "
                                      "deletion and higher insertion than each baseline, and within 10% of white-box "
                                      "SmoothGrad (medians over seeds).")]


def _sanity_table(rows: Sequence[Row], victim: str) -> list[Block]:
    checked = [r for r in rows if isinstance(r.get("sanity"), dict)]
    if not checked:
        return []
    layers = list(dict.fromkeys(k for r in checked for k in r["sanity"]))
    body = []
    for label, members in _by_label(checked).items():
        cells = []
        for k in layers:
            for field in ("signed", "absolute", "signed_support"):
                cells.append(_cell([_num((r["sanity"].get(k) or {}).get(field)) for r in members], "{:+.3f}"))
        worst = max((abs(v) for r in members for k in layers[1:] or layers
                     if (v := _verdict_rho(r["sanity"].get(k) or {})) is not None), default=None)
        cells.append("—" if worst is None else ("passes" if worst < 0.3 else "fails"))
        body.append([label, *cells])
    header = ["method"] + [f"top {k}: {f}" for k in layers for f in ("signed", "|map|", "signed, support")] + \
        ["|rho| < 0.3"]
    table = Table(header, body, [False] + [True] * (len(header) - 2) + [False])
    return [TableBlock(table, caption=f"`{victim}`, randomisation check (Adebayo et al. 2018): Spearman "
                                      "correlation between the maps of the trained model and of the model with its "
                                      "top k layers re-drawn, mean over images; of the signed maps, of their "
                                      "magnitudes, and of the signed maps over the pixels that are not black. The "
                                      "verdict uses |rho| of the signed maps over those pixels (the whole image "
                                      "where they were not measured) once more than the last layer is re-drawn "
                                      "(re-drawing the last layer alone can flip a map's sign as a whole). Off "
                                      "them, maps that are parts of the input (gradient times input, pertinent "
                                      "positives) are 0 whatever the model, and those shared zeros alone "
                                      f"correlate two maps. Cells: {SPREAD}.")]


def _verdict_rho(sanity: dict[str, Any]) -> float | None:
    """The correlation the randomisation verdict reads: of the signed maps over the input's support (the pixels
    that differ from the baseline), else of the signed maps over every pixel."""
    inside = _num(sanity.get("signed_support"))
    return inside if inside is not None else _num(sanity.get("signed"))


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value == value else None


def _timing_table(rows: Sequence[Row], victim: str) -> list[Block]:
    budgets = sorted({int(_spec(r).get("queries", 0)) for r in rows})
    body = []
    for label, members in _by_label(rows).items():
        body.append([label, *(_cell([_value(r, "seconds_per_image") for r in members
                                     if int(_spec(r).get("queries", 0)) == b], "{:.3g}") for b in budgets)])
    table = Table(["method", *(f"{b:,} queries" for b in budgets)], body, [False] + [True] * len(budgets))
    return [TableBlock(table, caption=f"`{victim}`: seconds per image of the explanation (the batch's wall time "
                                      f"over its images; metrics not included). Cells: {SPREAD}.")]


def _convergence(rows: Sequence[Row]) -> dict[str, list[tuple[float, float, float, float]]]:
    with_reference = [r for r in rows if _num(r.get("cosine_to_smoothgrad")) is not None]
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for label, members in _by_label(with_reference).items():
        by_budget: dict[int, list[float | None]] = {}
        for r in members:
            by_budget.setdefault(int(_spec(r).get("queries", 0)), []).append(_num(r.get("cosine_to_smoothgrad")))
        for q, values in sorted(by_budget.items()):
            found = _stats(values)
            if found is not None:
                out.setdefault(f"{label} ({_spec(members[0]).get('victim')})", []).append((float(q), *found))
    return out


def settings(rows: Sequence[Row]) -> list[Block]:
    """Each method's options."""
    items = []
    for label, members in _by_label(rows).items():
        spec = _spec(members[0])
        options = spec.get("options") or {}
        text = ", ".join(f"{k}={v!r}" for k, v in sorted(options.items())) or "defaults"
        items.append(f"`{label}`: method `{spec.get('method')}` ({method_kind(str(spec.get('method')))}), {text}, "
                     f"access {spec.get('access')}")
    return [Heading("Explanation settings"), Bullets(items)] if items else []


REPORT_SECTIONS.add("explain", Sections(overview=overview, figures=figures, settings=settings),
                    summary="explanations: AUC against queries, heat-map grids, target check, randomisation check")
