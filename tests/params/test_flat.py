"""FlatParams: a flat vector view of a module's parameters (round trips, selection, order, errors)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradfree.errors import ConfigError
from gradfree.params import FlatParams


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3))


class _Net(nn.Module):
    """A small CNN with batch norm and a named head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _cnn() -> _Net:
    torch.manual_seed(1)
    net = _Net()
    net.train()
    net(torch.randn(4, 1, 6, 6))  # non-trivial running statistics
    return net


def _buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in module.named_buffers()}


@pytest.mark.parametrize("make", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_get_set_round_trip(make) -> None:
    module = make()
    flat = FlatParams(module)
    params = list(module.parameters())
    assert flat.num_dims == sum(p.numel() for p in params)
    x0 = flat.get()
    assert torch.equal(x0, torch.cat([p.detach().reshape(-1) for p in params]))
    buffers = _buffers(module)
    v = torch.randn(flat.num_dims, generator=torch.Generator().manual_seed(2))
    flat.set_(v)
    assert torch.equal(flat.get(), v)
    for p, (name, t) in zip(params, flat.unflatten(v).items(), strict=True):
        assert torch.equal(p.detach(), t), name
    flat.add_(v, alpha=-0.5)
    assert torch.allclose(flat.get(), 0.5 * v, rtol=0, atol=1e-7)
    flat.set_(x0)
    assert torch.equal(flat.get(), x0)
    # get() is a copy: changing it leaves the module alone
    x0.add_(1.0)
    assert not torch.equal(flat.get(), x0)
    after = _buffers(module)
    assert after.keys() == buffers.keys()
    for name, b in buffers.items():
        assert torch.equal(after[name], b), name


def test_set_keeps_parameter_identity_and_requires_grad() -> None:
    module = _mlp()
    before = [id(p) for p in module.parameters()]
    FlatParams(module).set_(torch.zeros(FlatParams(module).num_dims))
    assert [id(p) for p in module.parameters()] == before
    assert all(p.requires_grad and p.grad is None for p in module.parameters())
    assert all(bool((p == 0).all()) for p in module.parameters())


def test_cnn_names_offsets_shapes() -> None:
    module = _cnn()
    flat = FlatParams(module)
    assert flat.names == ["body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias", "head.weight",
                          "head.bias"]
    shapes = [s.shape for s in flat.slots]
    assert shapes == [torch.Size([3, 1, 3, 3]), torch.Size([3]), torch.Size([3]), torch.Size([3]),
                      torch.Size([2, 48]), torch.Size([2])]
    offsets = [s.offset for s in flat.slots]
    assert offsets == [0, 27, 30, 33, 36, 132]
    assert [s.stop for s in flat.slots] == [*offsets[1:], 134]
    assert flat.num_dims == 134


def test_include_selects_only_the_head() -> None:
    module = _cnn()
    flat = FlatParams(module, include=[r"^head\."])
    assert flat.names == ["head.weight", "head.bias"]
    assert flat.num_dims == 2 * 48 + 2
    body = {n: p.detach().clone() for n, p in module.named_parameters() if not n.startswith("head.")}
    flat.set_(torch.full((flat.num_dims,), 0.25))
    assert bool((module.head.weight == 0.25).all()) and bool((module.head.bias == 0.25).all())
    for n, p in module.named_parameters():
        if n in body:
            assert torch.equal(p.detach(), body[n]), n


def test_include_several_patterns_keep_module_order() -> None:
    flat = FlatParams(_cnn(), include=[r"head\.bias", r"^body\.0\."])
    assert flat.names == ["body.0.weight", "body.0.bias", "head.bias"]


def test_default_skips_frozen_parameters() -> None:
    module = _mlp()
    module[1].weight.requires_grad_(False)
    assert FlatParams(module).names == ["1.bias", "3.weight", "3.bias"]


def test_params_order_is_the_callers() -> None:
    module = _mlp()
    order = [module[3].bias, module[1].weight, module[3].weight]
    flat = FlatParams(module, params=order)
    assert flat.names == ["3.bias", "1.weight", "3.weight"]
    assert torch.equal(flat.get(), torch.cat([p.detach().reshape(-1) for p in order]))
    v = torch.arange(flat.num_dims, dtype=torch.float32)
    flat.set_(v)
    assert torch.equal(module[3].bias.detach(), v[:3])
    assert torch.equal(module[1].weight.detach().reshape(-1), v[3 : 3 + 60])
    # without a module the names are positions
    bare = FlatParams(None, params=order)
    assert bare.names == ["param0", "param1", "param2"]
    assert torch.equal(bare.get(), v)


def test_float64_model_keeps_dtype_and_device() -> None:
    module = _mlp().double()
    flat = FlatParams(module)
    assert flat.dtype == torch.float64
    assert flat.device == torch.device("cpu")
    x = flat.get()
    assert x.dtype == torch.float64 and x.device == flat.device
    v = torch.randn(flat.num_dims, dtype=torch.float64) * 1e-3 + 1.0
    flat.set_(v)
    assert torch.equal(flat.get(), v)  # no round trip through float32
    assert all(p.dtype == torch.float64 for p in module.parameters())


def test_unflatten_a_batch() -> None:
    module = _cnn()
    flat = FlatParams(module)
    batch = torch.randn(5, flat.num_dims)
    views = flat.unflatten(batch)
    assert list(views) == flat.names
    for (name, view), slot in zip(views.items(), flat.slots, strict=True):
        assert view.shape == (5, *slot.shape), name
        assert view.data_ptr() == batch[:, slot.offset].data_ptr()  # a view, not a copy
        for i in range(5):
            assert torch.equal(view[i].reshape(-1), batch[i, slot.offset : slot.stop])
    # and a single vector gives the parameter shapes
    assert [t.shape for t in flat.unflatten(batch[0]).values()] == [s.shape for s in flat.slots]


def test_split_pairs_parameters_with_slices() -> None:
    module = _mlp()
    flat = FlatParams(module)
    v = torch.randn(flat.num_dims)
    pairs = list(flat.split(v))
    assert [p for p, _ in pairs] == list(module.parameters())
    assert torch.equal(torch.cat([t.reshape(-1) for _, t in pairs]), v)


@pytest.mark.parametrize("bad", [(10,), (1, 80), (81,), ()])
def test_bad_vector_shape_is_config_error(bad: tuple[int, ...]) -> None:
    flat = FlatParams(_mlp())
    assert flat.num_dims == 83
    x0 = flat.get()
    with pytest.raises(ConfigError, match=r"\(83,\)"):
        flat.set_(torch.zeros(bad))
    with pytest.raises(ConfigError, match=r"\(83,\)"):
        flat.add_(torch.zeros(bad))
    assert torch.equal(flat.get(), x0)


def test_selection_errors_are_config_errors() -> None:
    module = _cnn()
    with pytest.raises(ConfigError, match="no parameter matches"):
        FlatParams(module, include=["^tail"])
    with pytest.raises(ConfigError, match="not both"):
        FlatParams(module, include=["head"], params=[module.head.weight])
    with pytest.raises(ConfigError, match="not parameters of the module"):
        FlatParams(module, params=[module.head.weight, nn.Parameter(torch.zeros(2))])
    with pytest.raises(ConfigError, match="params="):
        FlatParams(None)
    with pytest.raises(ConfigError, match="no parameters"):
        FlatParams(nn.ReLU())


def test_mixed_dtypes_are_config_error() -> None:
    module = _mlp()
    module[3].double()
    with pytest.raises(ConfigError, match="mix dtypes"):
        FlatParams(module)
    # selecting one kind works
    assert FlatParams(module, include=[r"^3\."]).dtype == torch.float64
