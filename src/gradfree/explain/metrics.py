"""How good an explanation is: deletion and insertion AUC, faithfulness correlation, the randomisation check.

All metrics score maps against the model itself (white-box evaluations of the metric, not queries of the
explanation): a pixel's importance is its map summed over channels, and a removed pixel loses all its
channels.

* **Deletion and insertion** (Petsiuk et al. 2018, Sec. 4.1): pixels are removed in the map's order, most
  important first, and the probability of the explained class is recorded after each step; the deletion AUC is
  the area under that curve (lower is better: the map found what the class depends on). **Removed pixels are
  replaced by the baseline** (black pixels for the image suites). Insertion starts from a blurred copy of the
  image (RISE's protocol; a Gaussian blur of standard deviation ``blur`` times the image side, 0.1 by default,
  which leaves a shapeless blob at these sizes) and puts the original pixels back in the same order (higher is
  better); ``insert_from="baseline"`` starts from the baseline instead. ``steps`` steps of equal pixel count
  (the image side by default: one row's worth of pixels a step, as RISE's 224 for 224x224 images), the area
  by the trapezoid rule over the fraction of pixels in ``[0, 1]``. Ties in the map are broken at random
  (seeded), not by raster order.
* **Faithfulness correlation** (Bhatt et al. 2020, Sec. 4.1, ``mu_F``): for random subsets ``S`` of pixels,
  the Pearson correlation between the map's total over ``S`` and the score's drop when ``S`` is set to the
  baseline; ``runs`` subsets of ``fraction`` of the pixels each, the target's logit by default.
* **Model-randomisation sanity check** (Adebayo et al. 2018, Sec. 3.1, cascading randomisation): the weights
  of the top ``k`` layers (the last ``k`` with parameters) are re-drawn and the explanation recomputed with the
  same settings and seed; the Spearman rank correlation of the two pixel maps must be low if the
  explanation depends on what the model learned. Both the signed maps and their absolute values are ranked
  (the paper shows both); ties get their mean rank. Maps multiplied by ``x - baseline`` (and pertinent
  positives, which are parts of the input) are zero wherever the input equals the baseline, whatever the
  model — on MNIST most of the image — and those shared ties alone correlate the magnitudes; so the check is
  also reported over the input's *support* (the pixels that differ from the baseline).

References:
    V. Petsiuk, A. Das, K. Saenko. "RISE: Randomized Input Sampling for Explanation of Black-box Models."
    BMVC 2018, Sec. 4.1.
    U. Bhatt, A. Weller, J. M. F. Moura. "Evaluating and Aggregating Feature-based Model Explanations."
    IJCAI 2020, Sec. 4.1.
    J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim. "Sanity Checks for Saliency Maps."
    NeurIPS 2018, Sec. 3.1.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.explain.base import Explanation, Model, check_count, pixel_maps, resolve_baseline
from gradfree.explain.blur import BLUR, blurred
from gradfree.models.init import reset_parameters
from gradfree.objective.input_space import evaluation_mode

ROWS_PER_FORWARD = 2048


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion curves and their areas.

    Attributes:
        deletion, insertion: ``(N,)`` the AUCs (probability of the target class, fraction of pixels in [0, 1]).
        deletion_curve, insertion_curve: ``(N, steps + 1)`` the probabilities after each step.
    """

    deletion: Tensor
    insertion: Tensor
    deletion_curve: Tensor
    insertion_curve: Tensor


def scores_of(model: Model, points: Tensor, targets: Tensor, *, access: str = "probabilities",
              rows: int = ROWS_PER_FORWARD) -> Tensor:
    """``(P,)`` the target score of every row (``targets`` ``(P,)``), in forwards of at most ``rows``."""
    out = []
    with torch.no_grad(), evaluation_mode(model):
        for chunk, t in zip(points.split(rows), targets.split(rows), strict=True):
            s = model(chunk)
            if access == "probabilities":
                s = s.softmax(dim=1)
            out.append(s.gather(1, t.reshape(-1, 1).to(s.device)).squeeze(1))
    return torch.cat(out)


def importance_order(maps: Tensor, *, seed: int = 0) -> Tensor:
    """``(N, P)`` pixel indices, most important first (pixel maps descending, ties in a seeded random order)."""
    pix = pixel_maps(maps).reshape(maps.shape[0], -1)
    gen = torch.Generator().manual_seed(seed)
    shuffle = torch.stack([torch.randperm(pix.shape[1], generator=gen) for _ in range(pix.shape[0])]).to(pix.device)
    by_value = torch.argsort(pix.gather(1, shuffle), dim=1, descending=True, stable=True)
    return shuffle.gather(1, by_value)


def _pixel_view(x: Tensor) -> tuple[Tensor, int]:
    """``(N, C, P)`` view of the inputs with their pixels last, and ``P``."""
    if x.ndim == 4:
        return x.reshape(x.shape[0], x.shape[1], -1), x.shape[2] * x.shape[3]
    flat = x.reshape(x.shape[0], 1, -1)
    return flat, flat.shape[2]


def deletion_insertion(model: Model, x: Tensor, maps: Tensor | Explanation, *, targets: Tensor,
                       baseline: float | Tensor = 0.0, steps: int | None = None, insert_from: str = "blur",
                       blur: float = BLUR, access: str = "probabilities", seed: int = 0) -> Curves:
    """Deletion and insertion curves and AUCs of ``maps`` (see the module docstring).

    Args:
        model: the classifier explained. x: ``(N, *shape)``. maps: the attributions (or an Explanation).
        targets: ``(N,)`` the explained classes.
        baseline: what a deleted pixel becomes (and where ``insert_from="baseline"`` starts).
        steps: removal steps (default: the image side).
        insert_from: ``"blur"`` (RISE) or ``"baseline"``.
        blur: the insertion start's blur, a fraction of the image side.
        access: the curve's score, ``"probabilities"`` (RISE) or ``"logits"``.
        seed: the tie-breaking order.
    """
    maps = maps.maps if isinstance(maps, Explanation) else maps
    if maps.shape != x.shape:
        raise ConfigError(f"maps of shape {tuple(maps.shape)} do not match inputs of shape {tuple(x.shape)}")
    if insert_from not in ("blur", "baseline"):
        raise ConfigError(f"insert_from must be blur or baseline, got {insert_from!r}")
    n = x.shape[0]
    base = resolve_baseline(baseline, x)
    pixels_x, p = _pixel_view(x)
    steps = check_count("steps", steps if steps is not None else (x.shape[-1] if x.ndim == 4 else min(p, 32)))
    start = blurred(x, blur) if insert_from == "blur" and x.ndim == 4 else base
    order = importance_order(maps, seed=seed)
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * p / steps).long()
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(p, device=order.device).expand(n, -1))  # the step index of each pixel
    curves = []
    for source, target_img in ((pixels_x, _pixel_view(base)[0]), (_pixel_view(start)[0], pixels_x)):
        rows = []
        for k in counts.tolist():
            changed = (rank < k).unsqueeze(1)  # (N, 1, P): the first k pixels of each order
            rows.append(torch.where(changed, target_img, source))
        stacked = torch.stack(rows, dim=1).reshape(n * (steps + 1), *x.shape[1:])
        s = scores_of(model, stacked, targets.repeat_interleave(steps + 1), access=access)
        curves.append(s.reshape(n, steps + 1))
    deletion_curve, insertion_curve = curves
    return Curves(_auc(deletion_curve), _auc(insertion_curve), deletion_curve, insertion_curve)


def _auc(curve: Tensor) -> Tensor:
    """Trapezoid area of curves sampled at evenly spaced fractions of ``[0, 1]``."""
    steps = curve.shape[1] - 1
    return (curve[:, 1:] + curve[:, :-1]).sum(dim=1) / (2 * steps)


def faithfulness_correlation(model: Model, x: Tensor, maps: Tensor | Explanation, *, targets: Tensor,
                             baseline: float | Tensor = 0.0, runs: int = 100, fraction: float = 0.1,
                             access: str = "logits", seed: int = 0) -> Tensor:
    """``(N,)`` Pearson correlation between the map's total over random pixel subsets and the score's drop when
    they are set to the baseline (Bhatt et al. 2020, Sec. 4.1); NaN where either side is constant."""
    maps = maps.maps if isinstance(maps, Explanation) else maps
    runs = check_count("runs", runs, 2)
    if not 0 < fraction < 1:
        raise ConfigError(f"fraction must lie in (0, 1), got {fraction!r}")
    n = x.shape[0]
    pix = pixel_maps(maps).reshape(n, -1)
    pixels_x, p = _pixel_view(x)
    base, _ = _pixel_view(resolve_baseline(baseline, x))
    size = max(1, round(fraction * p))
    gen = torch.Generator().manual_seed(seed)
    subsets = torch.rand(n, runs, p, generator=gen).argsort(dim=2)[:, :, :size].to(x.device)  # (N, R, size)
    member = torch.zeros(n, runs, p, dtype=torch.bool, device=x.device).scatter_(2, subsets, True)
    points = torch.where(member.unsqueeze(2), base.unsqueeze(1), pixels_x.unsqueeze(1))  # (N, R, C, P)
    clean = scores_of(model, x, targets, access=access)
    after = scores_of(model, points.reshape(n * runs, *x.shape[1:]), targets.repeat_interleave(runs), access=access)
    drop = clean.unsqueeze(1) - after.reshape(n, runs)
    total = (pix.unsqueeze(1) * member).sum(dim=2)
    return _pearson(total.to(torch.float64), drop.to(torch.float64))


def _pearson(a: Tensor, b: Tensor) -> Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(den > 0, (a * b).sum(dim=1) / den.clamp(min=1e-300), torch.full_like(den, float("nan")))


def average_ranks(v: Tensor) -> Tensor:
    """``(N, P)`` ranks ``0 .. P-1`` of each row, ties given their mean rank."""
    order = v.argsort(dim=1, stable=True)
    sorted_v = v.gather(1, order)
    ranks = torch.empty_like(v, dtype=torch.float64)
    for i in range(v.shape[0]):
        _, inverse, counts = torch.unique_consecutive(sorted_v[i], return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).to(torch.float64)
        mean_rank = ends - (counts.to(torch.float64) + 1) / 2
        ranks[i, order[i]] = mean_rank[inverse]
    return ranks


def spearman(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """``(N,)`` Spearman rank correlation of the rows of ``a`` and ``b`` (flattened per row; ties averaged),
    over the elements where ``mask`` is true when one is given (NaN for a row with fewer than two)."""
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if mask is None:
        return _pearson(average_ranks(a), average_ranks(b))
    m = mask.reshape(mask.shape[0], -1).to(torch.bool)
    out = torch.full((a.shape[0],), float("nan"), dtype=torch.float64)
    for i in range(a.shape[0]):
        if int(m[i].sum()) >= 2:
            out[i] = spearman(a[i:i + 1, m[i]], b[i:i + 1, m[i]])[0]
    return out


def parameterised_layers(model: nn.Module) -> list[nn.Module]:
    """The modules that hold parameters of their own, in forward (registration) order."""
    return [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]


def randomize_top_layers(model: nn.Module, layers: int, *, generator: torch.Generator) -> nn.Module:
    """A copy of ``model`` with its last ``layers`` parameterised layers re-drawn (PyTorch's default init;
    Adebayo et al. 2018, Sec. 3.1, cascading randomisation from the top)."""
    layers = check_count("layers", layers)
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    copied = copy.deepcopy(model).cpu()  # re-drawn on the CPU, where the seeded generator lives
    found = parameterised_layers(copied)
    if layers > len(found):
        raise ConfigError(f"the model has {len(found)} layers with parameters; cannot randomise {layers}")
    for m in found[len(found) - layers:]:
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            reset_parameters(m, generator=generator)
        else:
            with torch.no_grad():
                for p in m.parameters(recurse=False):
                    p.copy_(torch.randn(p.shape, generator=generator).to(p))
    return copied.to(device)


@dataclass(frozen=True)
class SanityResult:
    """Rank correlations between the maps of the trained model and of models with their top layers re-drawn.

    Attributes:
        layers: the numbers of top layers randomised, in order.
        signed, absolute: ``(len(layers), N)`` Spearman correlations of the signed maps and of their magnitudes,
            over all pixels.
        signed_support, absolute_support: the same over the pixels where the input differs from the baseline
            (``None`` without a ``support``).
    """

    layers: tuple[int, ...]
    signed: Tensor
    absolute: Tensor
    signed_support: Tensor | None = None
    absolute_support: Tensor | None = None


def sanity_check(explain: Callable[[nn.Module], Explanation], model: nn.Module, *, layers: tuple[int, ...] = (1, 2),
                 seed: int = 0, support: Tensor | None = None) -> SanityResult:
    """The model-randomisation check (Adebayo et al. 2018, Sec. 3.1) of one explanation method.

    Args:
        explain: computes the explanation of the fixed inputs and targets for a model (same settings and seed
            every call, e.g. ``lambda m: EXPLAINERS.get("zo-smoothgrad")(m, x, target=t, generator=...)``).
        model: the trained model (not modified).
        layers: how many top layers to randomise, one entry per cascade step.
        seed: the re-drawn weights' seed.
        support: ``(N, *pixel shape)`` bool, the pixels that differ from the baseline (see
            :func:`input_support`); adds the correlations over them.
    """
    reference = pixel_maps(explain(model).maps)
    signed, absolute, signed_in, absolute_in = [], [], [], []
    for k in layers:
        other = pixel_maps(explain(randomize_top_layers(model, k, generator=torch.Generator().manual_seed(seed))).maps)
        signed.append(spearman(reference, other))
        absolute.append(spearman(reference.abs(), other.abs()))
        if support is not None:
            signed_in.append(spearman(reference, other, support))
            absolute_in.append(spearman(reference.abs(), other.abs(), support))
    return SanityResult(tuple(layers), torch.stack(signed), torch.stack(absolute),
                        torch.stack(signed_in) if support is not None else None,
                        torch.stack(absolute_in) if support is not None else None)


def input_support(x: Tensor, baseline: float | Tensor = 0.0) -> Tensor:
    """``(N, *pixel shape)`` bool: the pixels where some channel of the input differs from the baseline."""
    differs = x != resolve_baseline(baseline, x)
    return differs.any(dim=1) if x.ndim == 4 else differs
