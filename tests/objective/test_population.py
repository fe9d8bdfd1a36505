"""PopulationLoss: the batched paths (mlp, vmap) and the loop against a plain per-vector reference loop."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradfree.errors import ConfigError
from gradfree.objective.population import PopulationLoss, activation_elements, is_plain_mlp
from gradfree.params import FlatParams


def reference(module: nn.Module, names: list[str], vectors: Tensor, x: Tensor, y: Tensor,
              loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """The plain loop: write each vector into a copy of the module by name, run it, take the loss."""
    model = copy.deepcopy(module)
    params = dict(model.named_parameters())
    out = []
    with torch.no_grad():
        for v in vectors:
            offset = 0
            for n in names:
                p = params[n]
                p.copy_(v[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
            assert offset == v.numel()
            out.append(loss_fn(model(x), y))
    return torch.stack(out)


# ------------------------------------------------------------------ problems


def _mnist_mlp() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)


def _tanh_biasfree() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(20, 16, bias=False), nn.Tanh(), nn.Linear(16, 8), nn.Sigmoid(),
                          nn.Linear(8, 4))
    g = torch.Generator().manual_seed(3)
    return model, torch.randn(48, 20, generator=g), torch.randint(0, 4, (48,), generator=g)


class _SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _cnn() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(4)
    g = torch.Generator().manual_seed(5)
    return _SmallCNN(), torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 5, (32,), generator=g)


# name -> (problem, include patterns or None, modes it supports)
CASES: dict[str, tuple[Callable[[], tuple[nn.Module, Tensor, Tensor]], list[str] | None, tuple[str, ...]]] = {
    "mlp-784-32-10": (_mnist_mlp, None, ("mlp", "vmap", "loop")),
    "tanh-biasfree": (_tanh_biasfree, None, ("mlp", "vmap", "loop")),
    "head-only": (_mnist_mlp, [r"^3\."], ("mlp", "vmap", "loop")),
    "first-weight-and-last-bias": (_tanh_biasfree, [r"^0\.weight", r"^4\.bias"], ("mlp", "vmap", "loop")),
    "cnn": (_cnn, None, ("vmap", "loop")),
    "cnn-head-only": (_cnn, [r"^head\."], ("vmap", "loop")),
}
PARAMS = [pytest.param(case, mode, id=f"{case}-{mode}") for case, (_, _, modes) in CASES.items() for mode in modes]


def _population(p: int, flat: FlatParams, seed: int = 6) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return flat.get() + 0.1 * torch.randn(p, flat.num_dims, generator=g)


@pytest.mark.parametrize(("case", "mode"), PARAMS)
def test_equals_plain_loop(case: str, mode: str) -> None:
    make, include, _ = CASES[case]
    module, x, y = make()
    flat = FlatParams(module, include=include)
    loss = PopulationLoss(flat, F.cross_entropy, mode=mode)
    assert loss.mode == mode
    x0 = flat.get()
    for p in (1, 7, 33):
        vectors = _population(p, flat, seed=p)
        got = loss(vectors, x, y)
        assert got.shape == (p,)
        want = reference(module, flat.names, vectors, x, y, F.cross_entropy)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        assert torch.unique(want).numel() == p  # the members really differ
    assert torch.equal(flat.get(), x0)  # no path leaves a population member in the module


@pytest.mark.parametrize("mode", ["mlp", "vmap", "loop"])
def test_mse_regression(mode: str) -> None:
    torch.manual_seed(7)
    module = nn.Sequential(nn.Linear(6, 10), nn.GELU(), nn.Linear(10, 3))
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(40, 6, generator=g), torch.randn(40, 3, generator=g)
    flat = FlatParams(module)
    vectors = _population(9, flat)
    got = PopulationLoss(flat, F.mse_loss, mode=mode)(vectors, x, y)
    torch.testing.assert_close(got, reference(module, flat.names, vectors, x, y, F.mse_loss), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("case", "mode"), [("mlp-784-32-10", "mlp"), ("tanh-biasfree", "vmap"),
                                            ("cnn", "vmap"), ("head-only", "mlp")])
@pytest.mark.parametrize("chunk", [1, 3])
def test_chunking_gives_identical_results(case: str, mode: str, chunk: int) -> None:
    make, include, _ = CASES[case]
    module, x, y = make()
    flat = FlatParams(module, include=include)
    whole = PopulationLoss(flat, F.cross_entropy, mode=mode)
    vectors = _population(10, flat)
    assert whole.chunk_size(x) >= 10
    per_member = (activation_elements(module, x) + flat.num_dims) * x.element_size()
    chunked = PopulationLoss(flat, F.cross_entropy, mode=mode,
                             memory_bytes=chunk * per_member + per_member // 2)
    assert chunked.chunk_size(x) == chunk
    got, want = chunked(vectors, x, y), whole(vectors, x, y)
    assert torch.equal(got, want)


def test_tiny_memory_bound_still_makes_progress() -> None:
    module, x, y = _tanh_biasfree()
    flat = FlatParams(module)
    loss = PopulationLoss(flat, F.cross_entropy, memory_bytes=1)
    assert loss.chunk_size(x) == 1
    vectors = _population(4, flat)
    torch.testing.assert_close(loss(vectors, x, y),
                               reference(module, flat.names, vectors, x, y, F.cross_entropy), rtol=1e-5, atol=1e-5)


def test_auto_mode() -> None:
    mlp, _, _ = _mnist_mlp()
    assert is_plain_mlp(mlp)
    assert PopulationLoss(FlatParams(mlp), F.cross_entropy).mode == "mlp"
    cnn, _, _ = _cnn()
    assert not is_plain_mlp(cnn)
    assert PopulationLoss(FlatParams(cnn), F.cross_entropy).mode == "vmap"
    bn = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    assert not is_plain_mlp(bn)
    assert PopulationLoss(FlatParams(bn.train()), F.cross_entropy).mode == "loop"
    assert PopulationLoss(FlatParams(bn.eval()), F.cross_entropy).mode == "vmap"
    # a bare Linear is not a Sequential stack
    assert PopulationLoss(FlatParams(nn.Linear(3, 2)), F.mse_loss).mode == "vmap"


def test_mlp_mode_refuses_other_modules() -> None:
    cnn, _, _ = _cnn()
    with pytest.raises(ConfigError, match="mode='mlp'"):
        PopulationLoss(FlatParams(cnn), F.cross_entropy, mode="mlp")


def test_batchnorm_train_mode_loop_equals_reference() -> None:
    torch.manual_seed(9)
    module = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()
    g = torch.Generator().manual_seed(10)
    x, y = torch.randn(30, 5, generator=g), torch.randint(0, 3, (30,), generator=g)
    flat = FlatParams(module)
    loss = PopulationLoss(flat, F.cross_entropy)
    assert loss.mode == "loop"
    vectors = _population(7, flat)
    want = reference(module, flat.names, vectors, x, y, F.cross_entropy)
    torch.testing.assert_close(loss(vectors, x, y), want, rtol=1e-5, atol=1e-5)


def test_loop_restores_parameters_even_on_error() -> None:
    module, x, y = _tanh_biasfree()
    flat = FlatParams(module)
    x0 = flat.get()
    loss = PopulationLoss(flat, F.cross_entropy, mode="loop")
    loss(_population(5, flat), x, y)
    assert torch.equal(flat.get(), x0)
    calls = 0

    def failing(out: Tensor, target: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("boom")
        return F.cross_entropy(out, target)

    with pytest.raises(RuntimeError, match="boom"):
        PopulationLoss(flat, failing, mode="loop")(_population(5, flat), x, y)
    assert calls == 3
    assert torch.equal(flat.get(), x0)


def test_float64_paths_agree_tightly() -> None:
    module, x, y = _tanh_biasfree()
    module.double()
    x = x.double()
    flat = FlatParams(module)
    vectors = _population(7, flat)
    want = reference(module, flat.names, vectors, x, y, F.cross_entropy)
    for mode in ("mlp", "vmap", "loop"):
        got = PopulationLoss(flat, F.cross_entropy, mode=mode)(vectors, x, y)
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(3,), (2, 5), (2, 84, 1)])
def test_bad_population_shape_is_config_error(shape: tuple[int, ...]) -> None:
    module, x, y = _tanh_biasfree()
    flat = FlatParams(module)
    with pytest.raises(ConfigError, match="expected vectors of shape"):
        PopulationLoss(flat, F.cross_entropy)(torch.zeros(shape), x, y)
