"""The coordinate-wise finite-difference estimator, checked against autograd."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.estimators import ESTIMATORS

F64 = torch.float64
coordinate = ESTIMATORS.get("coordinate")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Every tensor here is tiny: intra-op threads only add synchronisation, which is slow on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def quadratic(d: int) -> tuple[Callable[[Tensor], Tensor], Tensor, Tensor]:
    """``0.5 x^T A x + b.x`` batched over rows, a point, and the autograd gradient there (float64)."""
    g = gen(d)
    m = torch.randn(d, d, generator=g, dtype=F64)
    a_mat = m @ m.T / d + torch.eye(d, dtype=F64)
    b = torch.randn(d, generator=g, dtype=F64)
    x = torch.randn(d, generator=g, dtype=F64)

    def f(p: Tensor) -> Tensor:
        return 0.5 * ((p @ a_mat) * p).sum(-1) + p @ b

    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(xr.unsqueeze(0)).sum(), xr)
    return f, x, grad


class Recorder:
    """Records every batch; poisons chosen global row numbers with NaN."""

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


def test_registered() -> None:
    assert ESTIMATORS.entry("coordinate").tags["kind"] == "coordinate"


def test_central_is_exact_for_quadratic_on_selected_coordinates() -> None:
    f, x, grad = quadratic(9)
    idx = torch.tensor([0, 3, 4, 8])
    est = coordinate(f, x, generator=gen(0), coordinates=idx, difference="central", smoothing=1e-3)
    assert torch.allclose(est.grad[idx], grad[idx], atol=1e-4, rtol=0)  # exact up to rounding
    rest = torch.ones(9, dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(est.grad[rest], torch.zeros(5, dtype=F64))
    assert est.evaluations == 8 and est.rejected == 0


def test_all_coordinates_by_default() -> None:
    f, x, grad = quadratic(6)
    est = coordinate(f, x, generator=gen(0), difference="central")
    assert torch.allclose(est.grad, grad, atol=1e-4, rtol=0)
    assert est.evaluations == 12
    fwd = coordinate(f, x, generator=gen(0))
    assert fwd.evaluations == 7
    assert torch.allclose(fwd.loss, f(x.unsqueeze(0))[0])
    # forward error is (mu / 2) A_ii per coordinate
    assert torch.allclose(fwd.grad, grad, atol=1e-3 * 5, rtol=0)


def test_forward_is_the_documented_formula() -> None:
    f, x, _ = quadratic(5)
    mu = 1e-2
    idx = torch.tensor([4, 1])
    rec = Recorder(f)
    est = coordinate(rec, x, generator=gen(0), coordinates=idx, smoothing=mu)
    (rows,) = rec.batches
    assert torch.equal(rows[0], x)
    for r, i in zip(rows[1:], idx.tolist(), strict=True):
        want = x.clone()
        want[i] += mu
        assert torch.equal(r, want)
    fx = f(rows)
    assert torch.allclose(est.grad[idx], (fx[1:] - fx[0]) / mu)


def test_central_loss_is_mean_of_perturbed() -> None:
    f, x, _ = quadratic(4)
    rec = Recorder(f)
    est = coordinate(rec, x, generator=gen(0), difference="central", num_coordinates=2)
    assert torch.allclose(est.loss, f(rec.batches[0]).mean())


def test_sampled_coordinates_are_distinct_and_deterministic() -> None:
    f, x, grad = quadratic(12)
    a = coordinate(f, x, generator=gen(3), num_coordinates=5, difference="central")
    b = coordinate(f, x, generator=gen(3), num_coordinates=5, difference="central")
    c = coordinate(f, x, generator=gen(4), num_coordinates=5, difference="central")
    assert torch.equal(a.grad, b.grad)
    assert not torch.equal(a.grad, c.grad)
    nz = a.grad != 0
    assert int(nz.sum()) == 5 and a.evaluations == 10
    assert torch.allclose(a.grad[nz], grad[nz], atol=1e-4, rtol=0)


def test_unbiased_scaling_in_expectation() -> None:
    d, k, reps = 10, 3, 2000
    f, x, grad = quadratic(d)
    g = gen(11)
    raw = torch.stack(
        [coordinate(f, x, generator=g, num_coordinates=k, difference="central").grad for _ in range(reps)]
    )
    g = gen(11)
    scaled = torch.stack(
        [
            coordinate(f, x, generator=g, num_coordinates=k, difference="central", unbiased=True).grad
            for _ in range(reps)
        ]
    )
    assert torch.allclose(scaled, raw * d / k)  # same coordinates, scaled by D/k
    # Each coordinate is in the sample with probability k/D, so E[raw] = (k/D) grad and E[scaled] = grad;
    # per coordinate the relative standard error is sqrt((D/k - 1) / reps) ~ 0.034, allow 5x.
    tol = 5 * math.sqrt((d / k - 1) / reps)
    assert float((scaled.mean(0) - grad).abs().div(grad.abs()).max()) < tol
    assert float((raw.mean(0) * d / k - grad).abs().div(grad.abs()).max()) < tol
    # and the unscaled mean really is k/D of the gradient, not the gradient
    assert float(torch.linalg.vector_norm(raw.mean(0) - grad) / torch.linalg.vector_norm(grad)) > 0.5


def test_nan_coordinates_are_dropped() -> None:
    f, x, grad = quadratic(6)
    idx = torch.tensor([0, 1, 2, 3])
    # central rows: +e0, -e0, +e1, -e1, ...; poison -e1 and +e3
    est = coordinate(Recorder(f, {3, 6}), x, generator=gen(0), coordinates=idx, difference="central")
    assert est.rejected == 2 and est.evaluations == 8
    assert torch.allclose(est.grad[[0, 2]], grad[[0, 2]], atol=1e-4, rtol=0)
    assert torch.equal(est.grad[[1, 3, 4, 5]], torch.zeros(4, dtype=F64))
    # unbiased scaling uses the kept coordinates: D / 2
    est = coordinate(
        Recorder(f, {3, 6}), x, generator=gen(0), coordinates=idx, difference="central", unbiased=True
    )
    assert torch.allclose(est.grad[[0, 2]], grad[[0, 2]] * 3, atol=1e-3, rtol=0)
    # forward: row 0 is f(x); poison +e2 (row 3)
    est = coordinate(Recorder(f, {3}), x, generator=gen(0), coordinates=idx)
    assert est.rejected == 1 and est.evaluations == 5
    assert est.grad[2] == 0 and torch.isfinite(est.grad).all() and torch.isfinite(est.loss)


@pytest.mark.parametrize("difference", ["forward", "central"])
def test_all_nan_gives_zeros_and_nan_loss(difference: str) -> None:
    x = torch.ones(4, dtype=F64)
    est = coordinate(
        lambda p: torch.full((p.shape[0],), float("nan"), dtype=F64),
        x,
        generator=gen(0),
        difference=difference,
    )
    assert torch.equal(est.grad, torch.zeros(4, dtype=F64)) and torch.isnan(est.loss)
    assert est.rejected == (4 if difference == "forward" else 8)
    assert est.evaluations == (5 if difference == "forward" else 8)


def test_nonfinite_center_gives_zeros() -> None:
    f, x, _ = quadratic(4)
    est = coordinate(Recorder(f, {0}), x, generator=gen(0))
    assert torch.equal(est.grad, torch.zeros_like(x)) and torch.isnan(est.loss)


@pytest.mark.parametrize(
    ("difference", "chunk_size"), [("forward", 2), ("forward", 4), ("central", 2), ("central", 5)]
)
def test_chunked_equals_unchunked(difference: str, chunk_size: int) -> None:
    f, x, _ = quadratic(11)
    rec = Recorder(f)
    whole = coordinate(f, x, generator=gen(1), num_coordinates=7, difference=difference)
    parts = coordinate(
        rec, x, generator=gen(1), num_coordinates=7, difference=difference, chunk_size=chunk_size
    )
    assert torch.allclose(whole.grad, parts.grad, rtol=1e-8, atol=1e-10)
    assert torch.allclose(whole.loss, parts.loss)
    assert whole.evaluations == parts.evaluations == sum(b.shape[0] for b in rec.batches)
    assert max(b.shape[0] for b in rec.batches) <= chunk_size and len(rec.batches) > 1


def test_global_rng_untouched_and_no_autograd() -> None:
    f, x, _ = quadratic(5)
    state = torch.get_rng_state()
    est = coordinate(f, x.clone().requires_grad_(True), generator=gen(0), num_coordinates=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert not est.grad.requires_grad


def test_float32() -> None:
    est = coordinate(lambda p: (p**2).sum(-1), torch.ones(3), generator=gen(0), difference="central")
    assert est.grad.dtype == torch.float32
    assert torch.allclose(est.grad, torch.full((3,), 2.0), atol=1e-2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"coordinates": torch.tensor([0, 1]), "num_coordinates": 2}, "not both"),
        ({"coordinates": torch.tensor([0, 5])}, r"\[0, 5\)"),
        ({"coordinates": torch.tensor([-1])}, r"\[0, 5\)"),
        ({"coordinates": torch.tensor([1, 1])}, "repeated"),
        ({"coordinates": torch.tensor([1.0])}, "int64"),
        ({"coordinates": torch.tensor([[1]])}, "1-D"),
        ({"coordinates": torch.tensor([], dtype=torch.int64)}, "empty"),
        ({"num_coordinates": 0}, "num_coordinates"),
        ({"num_coordinates": 6}, "num_coordinates"),
        ({"smoothing": 0.0}, "smoothing"),
        ({"difference": "backward"}, "difference"),
        ({"chunk_size": 1}, "chunk_size"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        coordinate(lambda p: p.sum(-1), torch.zeros(5), generator=gen(0), **kwargs)


def test_bad_point_and_objective_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="1-D floating"):
        coordinate(lambda p: p.sum(-1), torch.zeros(2, 2), generator=gen(0))
    with pytest.raises(ConfigError, match="one loss per row"):
        coordinate(lambda p: p.sum(), torch.zeros(2), generator=gen(0))
