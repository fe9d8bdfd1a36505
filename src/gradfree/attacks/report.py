"""The report sections of attack trials (kind ``"attack"``), drawn from the rows and their artifacts.

Beyond the shared results table: per victim and setting, success rate against queries per image, a picture
grid (the original, then each attack's adversarial image and magnified perturbation with the predicted
labels) from the trials' ``adversarial.pt``, and the issue's target checks — ZOO against white-box C&W-L2
(paired image by image), ZOO against ART's ZooAttack (success, L2, time), the query efficiency of the
score-based attacks at the L-inf bound, and black-box attacks against PGD on the non-differentiable victim.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gradfree.attacks.peers import ZOO_AT_ART_LABEL
from gradfree.reports.blocks import Block, Bullets, Figure, Heading, Paragraph, TableBlock, file_part
from gradfree.reports.sections import REPORT_SECTIONS, Sections
from gradfree.reports.summary import SPREAD, Row, Table

QUERY_TARGETS = {"mnist": 300, "cifar10": 100}
"""The issue's median-query targets of the best score-based attack, by the victim's task."""

SCORE_BASED = ("nes", "zo-signsgd", "bandits-td", "square")
ZOO = ("zoo-adam", "zoo-newton")


def _spec(row: Row) -> dict[str, Any]:
    return row.get("spec") or {}


def _value(row: Row, key: str) -> float | None:
    value = (row.get("final") or {}).get(key, row.get(key))
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value == value else None


def _cell(values: Sequence[float | None], fmt: str) -> str:
    found = [v for v in values if v is not None]
    if not found:
        return "—"
    med, low, high = (fmt.format(v) for v in (statistics.median(found), min(found), max(found)))
    return med if low == high else f"{med} [{low}, {high}]"


def _setting(row: Row) -> tuple[str, str, bool, float | None]:
    s = _spec(row)
    eps = s.get("eps")
    return str(s.get("victim")), str(s.get("norm")), bool(s.get("targeted")), None if eps is None else float(eps)


def _setting_text(setting: tuple[str, str, bool, float | None]) -> str:
    victim, norm, targeted, eps = setting
    return (f"`{victim}`, {'targeted' if targeted else 'untargeted'}, {norm}"
            + (f" eps {eps:g}" if eps is not None else " (minimal distortion)"))


def _by(rows: Sequence[Row], key: Any) -> dict[Any, list[Row]]:
    out: dict[Any, list[Row]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def _ok(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.get("status") == "ok"]


def overview(rows: Sequence[Row]) -> list[Block]:
    """What ran and how it is measured."""
    ok = _ok(rows)
    victims = ", ".join(f"`{v}`" for v in dict.fromkeys(str(_spec(r).get("victim")) for r in rows))
    methods = ", ".join(dict.fromkeys(str(r.get("label")) for r in rows))
    seeds = sorted({int(r.get("seed", 0)) for r in rows})
    images = sorted({int(_spec(r).get("images", 0)) for r in rows})
    accuracies: dict[tuple[str, int], Any] = {}
    for r in ok:
        accuracies.setdefault((str(_spec(r).get("victim")), int(_spec(r).get("victim_seed", 0))),
                              r.get("victim_accuracy"))
    acc_text = "; ".join(f"`{v}` seed {s}: {100 * a:.2f}%" for (v, s), a in sorted(accuracies.items())
                         if isinstance(a, float))
    return [Paragraph(
        f"{len(rows)} attack trials ({len(ok)} ok, {len(rows) - len(ok)} failed) on {victims}: {methods}; seeds "
        f"{', '.join(map(str, seeds))} (a seed trains its own victim and draws the attack's randomness and the "
        f"targets); the first {', '.join(map(str, images))} correctly classified test images of each victim. "
        "Pixels are in [0, 1] and every distortion is measured there. A success is verified by one forward of "
        "the returned image (outside the budget): misclassified (untargeted) or classified as the target, inside "
        "the box and the eps ball. Distortions are means and medians over successes; queries are per image, "
        "every query counted, a failure charged the full budget; white-box references count forward-and-backward "
        f"passes. Table cells are {SPREAD}; seconds are the batch's wall time divided by its images, on one core."),
        Paragraph(f"Victims' test accuracy (measured): {acc_text}." if acc_text else "")]


@dataclass
class _Shown:
    """The first images of a trial, as :func:`gradfree.attacks.pictures.adversarial_grid` reads them."""

    x: Tensor
    x_adv: Tensor
    labels: Tensor
    targets: Tensor | None
    predicted: Tensor
    success: Tensor
    l2: Tensor
    linf: Tensor

    @property
    def num_images(self) -> int:
        return int(self.x.shape[0])


def _load_shown(row: Row, out: Path) -> tuple[_Shown, list[str]] | None:
    path = (row.get("artifacts") or {}).get("adversarial")
    if not path or not (out / path).is_file():
        return None
    saved = torch.load(out / path, weights_only=True)
    names = [str(c) for c in saved.get("class_names", [])]
    return _Shown(saved["x"], saved["x_adv"], saved["labels"], saved.get("targets"), saved["predicted"],
                  saved["success"], saved["l2"], saved["linf"]), names


def _success_within(curve: list[tuple[int, float]], budget: int) -> float:
    """A trial's success rate within ``budget`` queries from its sampled curve ``[(queries, rate), ...]``
    (sorted): the rate at its last sample at or below the budget (0 before the first). Trials sample their
    curves at budgets of their own (a white-box reference at its own spend), so a median over seeds reads each
    one there rather than at whichever seed happened to sample a budget."""
    within = [rate for q, rate in curve if q <= budget]
    return within[-1] if within else 0.0


def figures(rows: Sequence[Row], out: Path) -> list[Block]:
    """Success-against-queries curves and picture grids per setting, then the target checks."""
    from gradfree.attacks.pictures import adversarial_grid, success_curves

    ok = _ok(rows)
    blocks: list[Block] = [Heading("Attacks")]
    for setting, members in _by(ok, _setting).items():
        victim, norm, targeted, eps = setting
        stem = file_part(f"attack_{victim}_{norm}_{'targeted' if targeted else 'untargeted'}_{eps}")
        curves: dict[str, tuple[list[int], list[float]]] = {}
        for label, trials in _by(members, lambda r: str(r.get("label"))).items():
            steps = [sorted((int(p["queries"]), float(p["success_rate"])) for p in r.get("history") or [])
                     for r in trials]
            steps = [s for s in steps if s]
            if steps:
                budgets = sorted({q for s in steps for q, _ in s})
                curves[label] = (budgets, [statistics.median(_success_within(s, q) for s in steps) for q in budgets])
        if curves:
            file = f"{stem}_success.png"
            success_curves(curves, out / file, title=f"Success rate against queries: {_setting_text(setting)}"
                           .replace("`", ""))
            blocks.append(Figure(file, f"Success rate against queries per image, {_setting_text(setting)}: the "
                                       "share of images whose first success came within that many queries, median "
                                       "over seeds (white-box references: forward-and-backward passes)."))
        shown: dict[str, _Shown] = {}
        names: list[str] = []
        for label, trials in _by(members, lambda r: str(r.get("label"))).items():
            first = min(trials, key=lambda r: int(r.get("seed", 0)))
            loaded = _load_shown(first, out)
            if loaded is not None and len(shown) < 6:
                shown[label], names = loaded[0], loaded[1] or names
        if shown:
            file = f"{stem}_grid.png"
            adversarial_grid(shown, out / file, images=4, class_names=names or None,
                             title=_setting_text(setting).replace("`", ""))
            blocks.append(Figure(file, f"Adversarial examples, {_setting_text(setting)} (lowest seed): the original "
                                       "with its label, then each attack's adversarial image with the label the "
                                       "model gives it and the perturbation magnified (mid-grey: no change)."))
    blocks += _zoo_vs_cw(ok)
    blocks += _zoo_vs_art(ok)
    blocks += _query_efficiency(ok)
    blocks += _non_differentiable(ok)
    return blocks


def _label_rows(rows: Sequence[Row], methods: Sequence[str]) -> dict[str, list[Row]]:
    return _by([r for r in rows if str(_spec(r).get("method")) in methods], lambda r: str(r.get("label")))


def _zoo_vs_cw(rows: Sequence[Row]) -> list[Block]:
    """ZOO's mean L2 against white-box C&W-L2 on the same images (same victim, seed and goal)."""
    body = []
    for (victim, targeted), members in _by(rows, lambda r: (str(_spec(r).get("victim")),
                                                             bool(_spec(r).get("targeted")))).items():
        cws = {int(r.get("seed", 0)): r for r in members if _spec(r).get("method") == "cw-l2"}
        if not cws:
            continue
        for label, zoos in _label_rows(members, ZOO).items():
            if label == ZOO_AT_ART_LABEL:
                continue  # one search step at ART's c: a wall-time comparison, not a distortion one
            ratios, success, zl2, cl2 = [], [], [], []
            for z in zoos:
                c = cws.get(int(z.get("seed", 0)))
                if c is None:
                    continue
                pairs = [(a, b) for a, b, sa, sb in zip(z.get("l2_per_image") or [], c.get("l2_per_image") or [],
                                                        z.get("success_per_image") or [],
                                                        c.get("success_per_image") or [], strict=False) if sa and sb]
                success.append(_value(z, "test_success_rate"))
                zl2.append(_value(z, "test_l2_mean"))
                cl2.append(_value(c, "test_l2_mean"))
                if pairs:
                    ratios.append(sum(a for a, _ in pairs) / max(sum(b for _, b in pairs), 1e-12))
            if success:
                body.append([f"`{victim}`", "targeted" if targeted else "untargeted", label, _cell(success, "{:.1%}"),
                             _cell(zl2, "{:.3f}"), _cell(cl2, "{:.3f}"), _cell(ratios, "{:.3f}")])
    if not body:
        return []
    table = Table(["victim", "goal", "attack", "success", "L2 mean", "C&W-L2 mean", "L2 / C&W (paired)"], body,
                  [False, False, False, True, True, True, True])
    return [Heading("ZOO against white-box C&W-L2", level=3),
            TableBlock(table, "Target: untargeted 100% success with mean L2 within 10% of C&W-L2 (ratio <= 1.10), "
                              "targeted >= 97%. The ratio pairs the images both attacks broke, seed by seed."),
            ]


def _zoo_vs_art(rows: Sequence[Row]) -> list[Block]:
    """ZOO against ART's ZooAttack on the same images."""
    body = []
    for (victim, targeted), members in _by(rows, lambda r: (str(_spec(r).get("victim")),
                                                             bool(_spec(r).get("targeted")))).items():
        labels = _label_rows(members, (*ZOO, "art-zoo"))
        if not any(_spec(r).get("method") == "art-zoo" for r in members):
            continue
        for label, trials in labels.items():
            body.append([f"`{victim}`", "targeted" if targeted else "untargeted", label,
                         _cell([_value(r, "test_success_rate") for r in trials], "{:.1%}"),
                         _cell([_value(r, "test_l2_mean") for r in trials], "{:.3f}"),
                         _cell([_value(r, "test_queries_mean") for r in trials], "{:,.0f}"),
                         _cell([_value(r, "test_seconds_per_image") for r in trials], "{:.3g}")])
    if not body:
        return []
    table = Table(["victim", "goal", "attack", "success", "L2 mean", "queries mean", "s / image"], body,
                  [False, False, False, True, True, True, True])
    return [Heading("ZOO against ART's ZooAttack", level=3),
            TableBlock(table, "Same model and images. ART runs one image at a time (its batch_size=1 default) through "
                              "its PyTorchClassifier; its queries are the rows its classifier scored. Target: the same "
                              "or better success and L2 at >= 10x less wall time, at ART's best settings "
                              "(initial_const=10, max_iter=100, use_resize=False); ART's defaults are shown too. "
                              "zoo-adam (ART's settings) is ours doing ART's work: c = 10, one binary-search step, "
                              "100 iterations of 128 coordinates, lr 0.01, h 1e-4, early abort; the other ZOO rows "
                              "search further (several steps over c), for less distortion.")]


def _query_efficiency(rows: Sequence[Row]) -> list[Block]:
    """Every score-based attack's success and median queries at the L-inf bound, untargeted."""
    body = []
    checks = []
    for (victim, eps), members in _by([r for r in rows if _spec(r).get("norm") == "linf"
                                       and not _spec(r).get("targeted")],
                                      lambda r: (str(_spec(r).get("victim")), _spec(r).get("eps"))).items():
        best: tuple[float, float, str] | None = None
        for label, trials in _label_rows(members, SCORE_BASED).items():
            success = [_value(r, "test_success_rate") for r in trials]
            median = [_value(r, "test_queries_median") for r in trials]
            body.append([f"`{victim}`", f"{eps:g}" if isinstance(eps, float) else str(eps), label,
                         _cell(success, "{:.1%}"), _cell(median, "{:,.0f}"),
                         _cell([_value(r, "test_queries_mean") for r in trials], "{:,.0f}")])
            s, m = [v for v in success if v is not None], [v for v in median if v is not None]
            if s and m and (best is None or (statistics.median(s), -statistics.median(m)) > (best[0], -best[1])):
                best = (statistics.median(s), statistics.median(m), label)
        task = "cifar10" if "cifar" in victim else "mnist" if "mnist" in victim else ""
        if best is not None and task in QUERY_TARGETS:
            met = best[0] >= 0.99 and best[1] <= QUERY_TARGETS[task]
            checks.append(f"`{victim}` eps {eps}: best score-based attack {best[2]} at {best[0]:.1%} success, median "
                          f"{best[1]:,.0f} queries (target >= 99% at <= {QUERY_TARGETS[task]}): "
                          f"**{'met' if met else 'not met'}**")
    if not body:
        return []
    table = Table(["victim", "eps", "attack", "success", "median queries", "mean queries"], body,
                  [False, True, False, True, True, True])
    return [Heading("Query efficiency, untargeted L-inf", level=3), TableBlock(table, "Failures charged the budget."),
            *([Bullets(checks)] if checks else [])]


def _non_differentiable(rows: Sequence[Row]) -> list[Block]:
    """Black-box attacks against white-box PGD on the quantised victim."""
    members = [r for r in rows if "quantized" in str(_spec(r).get("victim"))]
    if not members:
        return []
    body = []
    for label, trials in _by(members, lambda r: str(r.get("label"))).items():
        spec = _spec(trials[0])
        body.append([label, str(spec.get("norm")), f"{spec.get('eps')}", _cell([_value(r, "test_success_rate")
                                                                                  for r in trials], "{:.1%}"),
                     _cell([_value(r, "test_queries_median") for r in trials], "{:,.0f}")])
    table = Table(["attack", "norm", "eps", "success", "median queries"], body, [False, False, True, True, True])
    return [Heading("The non-differentiable victim", level=3),
            TableBlock(table, "`mnist-quantized`: the LeNet behind an 8-level input quantisation, whose autograd "
                              "gradient is zero. Target: a black-box attack at >= 95% success where white-box PGD "
                              "stays far below.")]


def settings(rows: Sequence[Row]) -> list[Block]:
    """Each label's method, budget and options."""
    items = []
    for label, members in _by(rows, lambda r: str(r.get("label"))).items():
        spec = _spec(members[0])
        options = spec.get("options") or {}
        opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
        budget = spec.get("queries")
        items.append(f"**{label}**: `{spec.get('method')}` ({opts}); "
                     f"{'budget ' + format(budget, ',') + ' queries per image' if budget else 'no query budget'}")
    return [Bullets(items)] if items else []


REPORT_SECTIONS.add("attack", Sections(overview=overview, figures=figures, settings=settings),
                    summary="attacks: success-against-queries curves, picture grids, ZOO vs C&W and ART, query "
                            "efficiency, the non-differentiable victim")
