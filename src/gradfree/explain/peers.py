"""captum's ``Occlusion``, ``KernelShap`` and ``Lime`` on the same model, inputs, targets and baseline.

For the reference checks (our occlusion equals captum's; our KernelSHAP and LIME agree with captum's in
expectation) and the wall-time comparison at equal samples. captum is an optional extra
(``gradfree[peers]``); each function raises a :class:`~gradfree.errors.ConfigError` naming it when it is
missing. captum draws its samples from torch's global generator: each call here seeds a forked copy of it
(``torch.random.fork_rng``), so the caller's global random state is left as it was.

captum evaluates ``perturbations_per_eval`` samples per forward; the comparisons pass all of an input's
samples at once (its fastest setting) unless told otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.explain.base import Model, resolve_baseline
from gradfree.objective.input_space import evaluation_mode


def _captum() -> Any:
    try:
        import captum.attr
    except ImportError:
        raise ConfigError("captum is not installed: pip install 'gradfree[peers]' (or captum) for the "
                          "comparisons with captum") from None
    return captum.attr


def _forward(model: Model, access: str) -> Callable[[Tensor], Tensor]:
    def forward(inputs: Tensor) -> Tensor:
        with torch.no_grad(), evaluation_mode(model):
            out = model(inputs)
        return out.softmax(dim=1) if access == "probabilities" else out

    return forward


def captum_occlusion(model: Model, x: Tensor, *, targets: Tensor, baseline: float | Tensor = 0.0, window: int,
                     stride: int, access: str = "logits") -> Tensor:
    """captum's ``Occlusion`` maps ``(N, C, H, W)`` with ``window x window`` windows over all channels."""
    attr = _captum()
    c = x.shape[1]
    occ = attr.Occlusion(_forward(model, access))
    return occ.attribute(x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
                         baselines=resolve_baseline(baseline, x), target=targets.tolist(),
                         perturbations_per_eval=64)


def captum_kernel_shap(model: Model, x: Tensor, *, targets: Tensor, labels: Tensor, samples: int, seed: int,
                       baseline: float | Tensor = 0.0, access: str = "logits",
                       per_eval: int | None = None) -> Tensor:
    """captum's ``KernelShap`` coefficients ``(N, M)`` for the groups ``labels`` ``(N, *shape)`` (one input at
    a time, as captum advises)."""
    attr = _captum()
    base = resolve_baseline(baseline, x)
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ks = attr.KernelShap(_forward(model, access))
        for i in range(x.shape[0]):
            coef = ks.attribute(x[i:i + 1], baselines=base[i:i + 1], target=int(targets[i]),
                                feature_mask=labels[i:i + 1], n_samples=samples,
                                perturbations_per_eval=per_eval or samples, return_input_shape=False)
            out.append(coef.reshape(-1))
    return _stack(out)


def captum_lime(model: Model, x: Tensor, *, targets: Tensor, labels: Tensor, samples: int, seed: int,
                baseline: float | Tensor = 0.0, access: str = "logits", linear: bool = True,
                per_eval: int | None = None) -> Tensor:
    """captum's ``Lime`` coefficients ``(N, M)``: with ``linear`` its ``SkLearnLinearRegression`` surrogate
    (the estimator :func:`gradfree.explain.lime.lime` with ``distance="input", ridge=0`` matches), else
    captum's default ``SkLearnLasso(alpha=0.01)``; captum's default cosine kernel of width 1 either way."""
    attr = _captum()
    from captum._utils.models.linear_model import SkLearnLasso, SkLearnLinearRegression

    base = resolve_baseline(baseline, x)
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        surrogate = SkLearnLinearRegression() if linear else SkLearnLasso(alpha=0.01)
        lime = attr.Lime(_forward(model, access), interpretable_model=surrogate)
        for i in range(x.shape[0]):
            coef = lime.attribute(x[i:i + 1], baselines=base[i:i + 1], target=int(targets[i]),
                                  feature_mask=labels[i:i + 1], n_samples=samples,
                                  perturbations_per_eval=per_eval or samples, return_input_shape=False)
            out.append(coef.reshape(-1))
    return _stack(out)


def _stack(rows: list[Tensor]) -> Tensor:
    width = max(r.numel() for r in rows)
    out = torch.zeros(len(rows), width, dtype=torch.float64)
    for i, r in enumerate(rows):
        out[i, :r.numel()] = r.detach().to(torch.float64).cpu()
    return out


@dataclass(frozen=True)
class Timing:
    """Seconds per input of one method at a number of samples (model queries) per input."""

    method: str
    samples: int
    seconds_per_input: float


def time_against_captum(model: Model, x: Tensor, *, samples: int, baseline: float | Tensor = 0.0,
                        grouping: str = "slic:50", repeats: int = 1) -> list[Timing]:
    """Wall time per input of our KernelSHAP, LIME and ZO-SmoothGrad and captum's KernelShap and Lime
    (its default Lasso surrogate), every method at ``samples`` model queries per input on the same inputs.

    Ours run on the whole batch; captum's one input at a time with all its samples per forward. The best of
    ``repeats`` runs is reported.
    """
    from gradfree.explain.base import EXPLAINERS
    from gradfree.explain.grouping import parse_grouping, segment

    with torch.no_grad(), evaluation_mode(model):
        targets = model(x).argmax(dim=1)
    labels = segment(x, parse_grouping(grouping)).labels
    n = x.shape[0]
    runs: dict[str, Callable[[], object]] = {
        "zo-smoothgrad": lambda: EXPLAINERS.get("zo-smoothgrad")(model, x, queries=samples, baseline=baseline),
        "kernel-shap": lambda: EXPLAINERS.get("kernel-shap")(model, x, queries=samples, baseline=baseline,
                                                             grouping=grouping),
        "lime": lambda: EXPLAINERS.get("lime")(model, x, queries=samples, baseline=baseline, grouping=grouping),
        "captum KernelShap": lambda: captum_kernel_shap(model, x, targets=targets, labels=labels, samples=samples,
                                                        seed=0, baseline=baseline),
        "captum Lime": lambda: captum_lime(model, x, targets=targets, labels=labels, samples=samples, seed=0,
                                           baseline=baseline, linear=False),
    }
    out = []
    for name, run in runs.items():
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        out.append(Timing(name, samples, best / n))
    return out


PEER_METHODS: tuple[str, ...] = ("captum-kernel-shap", "captum-lime")
"""captum's methods as a benchmark runs them beside ours (not registered explainers: they need captum)."""


def captum_explain(name: str, model: Model, x: Tensor, *, queries: int, seed: int, baseline: float | Tensor = 0.0,
                   grouping: str | None = None, access: str = "logits") -> tuple[Tensor, Tensor, float]:
    """``(maps, targets, seconds)`` of captum's KernelShap or Lime at ``queries`` samples per input, over the
    groups our KernelSHAP and LIME use at that budget (SLIC, about one per ten queries), the predicted class
    explained, each coefficient spread evenly over its group's elements as ours are. The Lime surrogate is
    captum's default ``SkLearnLasso(alpha=0.01)``."""
    from gradfree.explain.grouping import Grouping, parse_grouping, segment
    from gradfree.explain.kernel_shap import default_groups

    if name not in PEER_METHODS:
        raise ConfigError(f"unknown captum method {name!r}; known: {', '.join(PEER_METHODS)}")
    g = parse_grouping(grouping or "slic")
    if g.size is None and g.kind in ("grid", "slic"):
        g = Grouping(g.kind, default_groups(queries))
    started = time.perf_counter()
    with torch.no_grad(), evaluation_mode(model):
        targets = model(x).argmax(dim=1)
    seg = segment(x, g)
    if name == "captum-kernel-shap":
        coef = captum_kernel_shap(model, x, targets=targets, labels=seg.labels, samples=queries, seed=seed,
                                  baseline=baseline, access=access)
    else:
        coef = captum_lime(model, x, targets=targets, labels=seg.labels, samples=queries, seed=seed,
                           baseline=baseline, access=access, linear=False)
    seconds = time.perf_counter() - started
    maps = torch.zeros(x.shape[0], x[0].numel(), dtype=torch.float64)
    for i in range(x.shape[0]):
        labels = seg.labels[i].reshape(-1).cpu()
        sizes = torch.bincount(labels, minlength=int(seg.counts[i])).to(torch.float64)
        maps[i] = coef[i, :int(seg.counts[i])][labels] / sizes[labels]
    return maps.reshape(x.shape).to(x.dtype).to(x.device), targets, seconds
