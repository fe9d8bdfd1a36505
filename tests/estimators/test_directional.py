"""Random-direction estimators (gaussian, sphere, rademacher) against autograd and their known variance."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.estimators import ESTIMATORS, Estimate
from gradfree.estimators.directional import directional_estimate

DIRECTIONAL = ["gaussian", "sphere", "rademacher"]
DIFFERENCES = ["forward", "central"]
F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Every tensor here is tiny: intra-op threads only add synchronisation, which is slow on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def problem(name: str, d: int) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """A batched objective ``(P, D) -> (P,)`` and a point, all float64."""
    g = gen(1234 + d)
    x = torch.randn(d, generator=g, dtype=F64)
    if name == "linear":
        a = torch.randn(d, generator=g, dtype=F64)
        return (lambda p: p @ a), x
    if name == "quadratic":
        m = torch.randn(d, d, generator=g, dtype=F64)
        a_mat = m @ m.T / d + torch.eye(d, dtype=F64)
        b = torch.randn(d, generator=g, dtype=F64)
        return (lambda p: 0.5 * ((p @ a_mat) * p).sum(-1) + p @ b), x
    if name == "softplus":  # sum_j log(1 + exp(w_j . x)): not quadratic, gradient W^T sigmoid(W x)
        # stored transposed and contiguous: a matmul with a transposed view is much slower on CPU
        wt = torch.randn(2 * d, d, generator=g, dtype=F64).T.contiguous()
        return (lambda p: F.softplus(p @ wt).sum(-1)), x
    raise AssertionError(name)


def autograd_grad(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x.unsqueeze(0)).sum(), x)
    return g


class Recorder:
    """Objective wrapper that records every batch and can poison chosen rows (global row numbers) with NaN."""

    def __init__(self, f: Callable[[Tensor], Tensor], nan_rows: set[int] | None = None) -> None:
        self.f = f
        self.nan_rows = nan_rows or set()
        self.batches: list[Tensor] = []

    def __call__(self, p: Tensor) -> Tensor:
        start = sum(b.shape[0] for b in self.batches)
        self.batches.append(p.clone())
        out = self.f(p).clone()
        for r in range(p.shape[0]):
            if start + r in self.nan_rows:
                out[r] = float("nan")
        return out

    @property
    def rows(self) -> Tensor:
        return torch.cat(self.batches)


def test_registered_names() -> None:
    for name in DIRECTIONAL:
        assert name in ESTIMATORS
        assert ESTIMATORS.entry(name).tags["kind"] == "directional"


# --- agreement with autograd ---


@pytest.mark.parametrize("fn", ["linear", "quadratic", "softplus"])
@pytest.mark.parametrize("difference", DIFFERENCES)
@pytest.mark.parametrize("name", DIRECTIONAL)
def test_mean_of_many_directions_matches_autograd(name: str, difference: str, fn: str) -> None:
    d, q = 6, 20_000
    f, x = problem(fn, d)
    true = autograd_grad(f, x)
    est = ESTIMATORS.get(name)(
        f, x, generator=gen(7), num_directions=q, smoothing=1e-4, difference=difference
    )
    # E||g - grad||^2 = (D + 1)||grad||^2 / q at most (Gaussian, linear; smoothing bias is O(mu^2) here), so
    # the relative error has RMS sqrt((D + 1) / q) ~ 0.019; allow five times that.
    rel = float(torch.linalg.vector_norm(est.grad - true) / torch.linalg.vector_norm(true))
    assert rel < 5 * math.sqrt((d + 1) / q), rel
    assert est.grad.dtype == F64
    # forward: f(x) itself; central: the mean of f(x +- mu u_i), f(x) + O(mu^2)
    assert torch.isclose(est.loss, f(x.unsqueeze(0))[0], rtol=1e-6)


@pytest.mark.parametrize("name", DIRECTIONAL)
def test_mean_over_seeds_matches_autograd(name: str) -> None:
    # The same property, as an average of many single-direction central (SPSA-style) estimates.
    f, x = problem("softplus", 5)
    true = autograd_grad(f, x)
    g = gen(3)
    est = ESTIMATORS.get(name)
    reps = 800
    mean = torch.stack(
        [est(f, x, generator=g, difference="central", smoothing=1e-4).grad for _ in range(reps)]
    ).mean(0)
    rel = float(torch.linalg.vector_norm(mean - true) / torch.linalg.vector_norm(true))
    assert rel < 5 * math.sqrt(6 / reps), rel  # RMS relative error <= sqrt((D + 1) / reps)


@pytest.mark.parametrize("name", DIRECTIONAL)
@pytest.mark.parametrize("difference", DIFFERENCES)
def test_estimate_is_the_documented_formula(name: str, difference: str) -> None:
    d, q, mu = 7, 5, 1e-2
    f, x = problem("softplus", d)
    rec = Recorder(f)
    est = ESTIMATORS.get(name)(
        rec, x, generator=gen(0), num_directions=q, smoothing=mu, difference=difference
    )
    assert len(rec.batches) == 1  # every evaluation in one batched call
    rows = rec.rows
    fx = f(rows)
    scale = d if name == "sphere" else 1
    if difference == "forward":
        u = (rows[1:] - x) / mu
        assert torch.equal(rows[0], x)
        want = scale / q * ((fx[1:] - fx[0]) / mu) @ u
        assert torch.allclose(est.loss, fx[0])
    else:
        u = (rows[0::2] - x) / mu
        assert torch.allclose(rows[1::2], x - mu * u)
        want = scale / q * ((fx[0::2] - fx[1::2]) / (2 * mu)) @ u
        assert torch.allclose(est.loss, fx.mean())
    assert torch.allclose(est.grad, want, rtol=1e-10, atol=1e-12)
    # the direction distributions
    if name == "sphere":
        assert torch.allclose(torch.linalg.vector_norm(u, dim=1), torch.ones(q, dtype=F64))
    if name == "rademacher":
        assert torch.allclose(u.abs(), torch.ones_like(u))


# --- variance ---


@pytest.mark.parametrize("d", [4, 16])
@pytest.mark.parametrize("name", DIRECTIONAL)
def test_variance_for_linear_function(name: str, d: int) -> None:
    """E||g - a||^2 = (D+1)||a||^2/q (gaussian), (D-1)||a||^2/q (sphere x D, rademacher); Liu et al. 2020."""
    a = torch.randn(d, generator=gen(1), dtype=F64)
    x = torch.zeros(d, dtype=F64)
    est = ESTIMATORS.get(name)
    reps = 1500
    for q in (2, 8):
        g = gen(100 * d + q)
        sq = torch.stack(
            [
                ((est(lambda p: p @ a, x, generator=g, num_directions=q).grad - a) ** 2).sum()
                for _ in range(reps)
            ]
        )
        theory = ((d + 1) if name == "gaussian" else (d - 1)) * float(a @ a) / q
        # the standard error of the mean is 1.5-4.2% here (measured, heaviest for gaussian q=2 D=4);
        # 15% is > 3.5 standard errors
        assert abs(float(sq.mean()) / theory - 1) < 0.15, (q, float(sq.mean()), theory)


def test_central_differences_beat_forward_on_curvature() -> None:
    # forward differences carry an O(mu) curvature term per direction, central ones do not: with one shared
    # set of directions and a large mu, central must be closer to the smoothed gradient.
    f, x = problem("quadratic", 5)
    true = autograd_grad(f, x)
    errs = {}
    for difference in DIFFERENCES:
        est = ESTIMATORS.get("gaussian")(
            f, x, generator=gen(2), num_directions=4000, smoothing=1.0, difference=difference
        )
        errs[difference] = float(torch.linalg.vector_norm(est.grad - true))
    assert errs["central"] < errs["forward"]


# --- antithetic ---


@pytest.mark.parametrize("name", DIRECTIONAL)
def test_antithetic_forward_equals_central_over_half(name: str) -> None:
    f, x = problem("softplus", 6)
    anti = ESTIMATORS.get(name)(f, x, generator=gen(5), num_directions=8, antithetic=True, smoothing=1e-2)
    cent = ESTIMATORS.get(name)(
        f, x, generator=gen(5), num_directions=4, difference="central", smoothing=1e-2
    )
    assert torch.allclose(anti.grad, cent.grad, rtol=1e-9, atol=1e-12)
    assert anti.evaluations == 9 and cent.evaluations == 8
    assert torch.allclose(anti.loss, f(x.unsqueeze(0))[0])  # antithetic forward also returns f(x)


def test_antithetic_rows_are_mirrored() -> None:
    f, x = problem("linear", 4)
    rec = Recorder(f)
    ESTIMATORS.get("gaussian")(rec, x, generator=gen(0), num_directions=6, antithetic=True)
    rows = rec.rows
    assert rows.shape == (7, 4)
    assert torch.allclose(rows[1::2] - x, -(rows[2::2] - x))


# --- counts, non-finite losses ---


@pytest.mark.parametrize("name", DIRECTIONAL)
@pytest.mark.parametrize(
    ("difference", "antithetic", "q", "expected"),
    [("forward", False, 1, 2), ("forward", False, 5, 6), ("central", False, 5, 10), ("forward", True, 4, 5)],
)
def test_evaluation_counts(name: str, difference: str, antithetic: bool, q: int, expected: int) -> None:
    f, x = problem("linear", 3)
    rec = Recorder(f)
    est = ESTIMATORS.get(name)(
        rec, x, generator=gen(0), num_directions=q, difference=difference, antithetic=antithetic
    )
    assert est.evaluations == expected == rec.rows.shape[0]
    assert len(rec.batches) == 1
    assert est.rejected == 0


@pytest.mark.parametrize("name", DIRECTIONAL)
def test_nan_rows_forward_are_dropped(name: str) -> None:
    d, q, mu = 5, 6, 1e-3
    f, x = problem("linear", d)
    rec = Recorder(f, nan_rows={2, 5})  # row 0 is f(x); rows 2 and 5 are directions 2 and 5 (1-based)
    est = ESTIMATORS.get(name)(rec, x, generator=gen(9), num_directions=q, smoothing=mu)
    assert est.rejected == 2 and est.evaluations == q + 1
    assert torch.isfinite(est.grad).all()
    rows = rec.rows
    keep = [1, 3, 4, 6]
    u = (rows[keep] - x) / mu
    fx = f(rows)
    scale = d if name == "sphere" else 1
    want = scale / len(keep) * ((fx[keep] - fx[0]) / mu) @ u
    assert torch.allclose(est.grad, want, rtol=1e-8)
    assert torch.allclose(est.loss, fx[0])


def test_nan_rows_central_are_dropped() -> None:
    d, q, mu = 4, 3, 1e-3
    f, x = problem("softplus", d)
    rec = Recorder(f, nan_rows={3})  # x - mu u_2
    est = ESTIMATORS.get("rademacher")(
        rec, x, generator=gen(9), num_directions=q, smoothing=mu, difference="central"
    )
    assert est.rejected == 1 and est.evaluations == 2 * q
    rows = rec.rows
    fx = f(rows)
    u = (rows[[0, 4]] - x) / mu
    want = 0.5 * ((fx[[0, 4]] - fx[[1, 5]]) / (2 * mu)) @ u
    assert torch.allclose(est.grad, want, rtol=1e-8)
    finite = [0, 1, 2, 4, 5]
    assert torch.allclose(est.loss, fx[finite].mean())  # the mean of the finite perturbed losses


@pytest.mark.parametrize("name", DIRECTIONAL)
@pytest.mark.parametrize("difference", DIFFERENCES)
def test_all_nan_gives_zeros_and_nan_loss(name: str, difference: str) -> None:
    x = torch.ones(4, dtype=F64)
    est = ESTIMATORS.get(name)(
        lambda p: torch.full((p.shape[0],), float("nan"), dtype=F64),
        x,
        generator=gen(0),
        num_directions=3,
        difference=difference,
    )
    assert torch.equal(est.grad, torch.zeros(4, dtype=F64))
    assert torch.isnan(est.loss)
    assert est.rejected == (3 if difference == "forward" else 6)


def test_nonfinite_center_gives_zeros_and_nan_loss() -> None:
    f, x = problem("linear", 4)
    rec = Recorder(f, nan_rows={0})
    est = ESTIMATORS.get("gaussian")(rec, x, generator=gen(0), num_directions=3)
    assert torch.equal(est.grad, torch.zeros_like(x)) and torch.isnan(est.loss)
    assert est.rejected == 0 and est.evaluations == 4


def test_infinite_losses_are_rejected_too() -> None:
    x = torch.zeros(3, dtype=F64)

    def f(p: Tensor) -> Tensor:
        out = p.sum(-1)
        out[1] = float("inf")
        return out

    est = ESTIMATORS.get("sphere")(f, x, generator=gen(0), num_directions=4)
    assert est.rejected == 1 and torch.isfinite(est.grad).all()


# --- determinism, chunking ---


@pytest.mark.parametrize("name", DIRECTIONAL)
def test_same_seed_same_estimate(name: str) -> None:
    f, x = problem("softplus", 8)
    a, b, c = (ESTIMATORS.get(name)(f, x, generator=gen(s), num_directions=4) for s in (11, 11, 12))
    assert torch.equal(a.grad, b.grad) and torch.equal(a.loss, b.loss)
    assert not torch.equal(a.grad, c.grad)


def test_global_rng_untouched() -> None:
    f, x = problem("linear", 8)
    state = torch.get_rng_state()
    for name in DIRECTIONAL:
        ESTIMATORS.get(name)(f, x, generator=gen(0), num_directions=3)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", DIRECTIONAL)
@pytest.mark.parametrize(
    ("difference", "antithetic", "chunk_size"),
    [("forward", False, 2), ("forward", False, 5), ("central", False, 2), ("central", False, 7),
     ("forward", True, 3), ("forward", True, 4)],
)  # fmt: skip
def test_chunked_equals_unchunked(name: str, difference: str, antithetic: bool, chunk_size: int) -> None:
    d, q = 20, 10  # D >= 16 so torch's blocked normal sampler would expose a grouping-dependent stream
    f, x = problem("softplus", d)
    g1, g2 = gen(21), gen(21)
    rec = Recorder(f)
    kw = {"num_directions": q, "difference": difference, "antithetic": antithetic}
    whole = ESTIMATORS.get(name)(f, x, generator=g1, **kw)
    parts = ESTIMATORS.get(name)(rec, x, generator=g2, chunk_size=chunk_size, **kw)
    # Same directions; only the rounding of batched evaluation differs (eps * |f| / mu ~ 1e-11 relative).
    assert torch.allclose(whole.grad, parts.grad, rtol=1e-8, atol=1e-10)
    assert torch.allclose(whole.loss, parts.loss, rtol=1e-12)
    assert whole.evaluations == parts.evaluations == rec.rows.shape[0]
    assert max(b.shape[0] for b in rec.batches) <= chunk_size
    assert len(rec.batches) > 1
    assert torch.equal(g1.get_state(), g2.get_state())  # the same random numbers were consumed


def test_chunked_with_nan_matches_unchunked() -> None:
    f, x = problem("linear", 6)
    whole = ESTIMATORS.get("gaussian")(Recorder(f, {3, 4}), x, generator=gen(1), num_directions=7)
    parts = ESTIMATORS.get("gaussian")(
        Recorder(f, {3, 4}), x, generator=gen(1), num_directions=7, chunk_size=3
    )
    assert whole.rejected == parts.rejected == 2
    assert torch.allclose(whole.grad, parts.grad, rtol=1e-8)


# --- dtypes, validation ---


def test_float32_point_gives_float32_estimate() -> None:
    x = torch.zeros(5)
    est = ESTIMATORS.get("gaussian")(lambda p: p.sum(-1).double(), x, generator=gen(0), num_directions=2)
    assert est.grad.dtype == torch.float32 and est.loss.dtype == torch.float32


def test_does_not_track_gradients() -> None:
    x = torch.zeros(3, requires_grad=True)
    est = ESTIMATORS.get("sphere")(lambda p: (p**2).sum(-1), x, generator=gen(0))
    assert not est.grad.requires_grad and x.grad is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_directions": 0}, "num_directions"),
        ({"num_directions": 2.0}, "num_directions"),
        ({"smoothing": 0.0}, "smoothing"),
        ({"smoothing": -1e-3}, "smoothing"),
        ({"smoothing": float("nan")}, "smoothing"),
        ({"difference": "backward"}, "difference"),
        ({"num_directions": 3, "antithetic": True}, "even"),
        ({"num_directions": 4, "antithetic": True, "difference": "central"}, "antithetic"),
        ({"chunk_size": 1}, "chunk_size"),
        ({"chunk_size": 1, "difference": "central"}, "chunk_size"),
        ({"num_directions": 2, "antithetic": True, "chunk_size": 2}, "chunk_size"),
    ],
)
@pytest.mark.parametrize("name", DIRECTIONAL)
def test_bad_arguments_raise_config_error(name: str, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ESTIMATORS.get(name)(lambda p: p.sum(-1), torch.zeros(3), generator=gen(0), **kwargs)


@pytest.mark.parametrize("x", [torch.zeros(2, 3), torch.zeros(3, dtype=torch.int64), torch.tensor(1.0)])
def test_bad_point_raises_config_error(x: Tensor) -> None:
    with pytest.raises(ConfigError, match="1-D floating"):
        ESTIMATORS.get("gaussian")(lambda p: p.sum(-1), x, generator=gen(0))


def test_bad_objective_shape_and_distribution_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="one loss per row"):
        ESTIMATORS.get("gaussian")(lambda p: p, torch.zeros(3), generator=gen(0))
    with pytest.raises(ConfigError, match="distribution"):
        bad: Any = "cauchy"
        directional_estimate(lambda p: p.sum(-1), torch.zeros(3), generator=gen(0), distribution=bad)


def test_estimate_type() -> None:
    est = ESTIMATORS.get("rademacher")(lambda p: p.sum(-1), torch.zeros(3), generator=gen(0))
    assert isinstance(est, Estimate)


def test_all_directions_rejected_keeps_the_finite_centre_loss() -> None:
    # Every perturbed point is NaN but f(x) is fine: no step (used == 0), yet the loss at x is still reported,
    # so a trainer can tell "no usable direction" from "the current point is broken".
    f, x = problem("linear", 4)
    rec = Recorder(f, nan_rows={1, 2, 3})
    est = ESTIMATORS.get("gaussian")(rec, x, generator=gen(0), num_directions=3)
    assert est.used == 0 and est.rejected == 3
    assert torch.equal(est.grad, torch.zeros_like(x))
    assert torch.allclose(est.loss, f(x.unsqueeze(0))[0])


def test_used_counts_the_directions_in_the_estimate() -> None:
    f, x = problem("linear", 4)
    est = ESTIMATORS.get("gaussian")(Recorder(f, nan_rows={2}), x, generator=gen(0), num_directions=5)
    assert est.used == 4 and est.rejected == 1
