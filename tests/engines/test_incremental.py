"""Incremental single-weight evaluation against full forward passes of the module.

Every engine (numba MLP, torch Sequential) must give the loss a forward pass gives with the weight written,
for candidates of every layer, step sizes small (fast paths) and large (exact fallbacks), and must stay exact
over long sequences of accepted changes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from gradfree.engines.incremental.mlp import MLPCoordinateEvaluator, mlp_layers
from gradfree.engines.incremental.selection import clear_cache, coordinate_evaluator, incremental_evaluator
from gradfree.engines.incremental.sequential import SequentialCoordinateEvaluator, sequential_stages
from gradfree.errors import DataError
from gradfree.objective.coordinates import PopulationCoordinateEvaluator
from gradfree.objective.row_loss import mean_row_loss, row_loss_kind
from gradfree.params import FlatParams
from gradfree.tasks.classification import ClassificationTask

LossFn = Callable[[Tensor, Tensor], Tensor]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def forward_loss(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, *, dtype: torch.dtype | None = None,
                 change: tuple[int, float] | None = None, flat: FlatParams | None = None) -> float:
    """The loss of a copy of ``model`` (in ``dtype``), with flat coordinate ``change = (index, value)`` set
    to ``value`` (rounded to the model's dtype first, as writing it does)."""
    m = copy.deepcopy(model)
    if change is not None:
        assert flat is not None
        names = [s.name for s in flat.slots]
        params = dict(m.named_parameters())
        index, value = change
        slot = next(s for s in flat.slots if s.offset <= index < s.stop)
        with torch.no_grad():
            params[slot.name].view(-1)[index - slot.offset] = value
        assert slot.name in names
    if dtype is not None:
        m = m.to(dtype)
        x = x.to(dtype)
        y = y.to(dtype) if y.is_floating_point() else y
    with torch.no_grad():
        return float(loss_fn(m(x), y))


def sparse_images(n: int, features: int, *, seed: int, background: float = 0.0) -> Tensor:
    """MNIST-like rows: about 80% of the entries at ``background``, the rest in (0, 3)."""
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.rand(n, features, generator=g)
    x[torch.rand(n, features, generator=g) < 0.8] = 0.0
    return x + background


def check_candidates(evaluator: object, model: nn.Module, flat: FlatParams, loss_fn: LossFn, x: Tensor,
                     y: Tensor, *, steps: int, scales: tuple[float, ...], seed: int, atol: float,
                     exact_dtype: torch.dtype = torch.float64) -> None:
    """``try_values`` at random coordinates equals the forward pass (in ``exact_dtype``) with the value set."""
    g = torch.Generator().manual_seed(seed)
    current = flat.get()
    for _ in range(steps):
        index = int(torch.randint(flat.num_dims, (1,), generator=g))
        scale = scales[int(torch.randint(len(scales), (1,), generator=g))]
        k = int(torch.randint(1, 4, (1,), generator=g))
        values = (current[index] + scale * torch.randn(k, generator=g, dtype=torch.float64)).to(flat.dtype)
        losses = evaluator.try_values(index, values)  # type: ignore[attr-defined]
        assert losses.shape == (k,)
        for v, got in zip(values.tolist(), losses.tolist(), strict=True):
            want = forward_loss(model, loss_fn, x, y, dtype=exact_dtype, change=(index, v), flat=flat)
            assert got == pytest.approx(want, abs=atol), (index, v, scale)
    assert torch.equal(flat.get(), current)  # trying changes nothing


def relu_mlp(widths: list[int], *, seed: int, bias: bool = True, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    torch.manual_seed(seed)  # test-local model init (the library never seeds the global RNG)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------- MLP engine


@pytest.mark.parametrize("background", [0.0, -0.4242])
def test_mnist_shaped_mlp_matches_forward_for_every_layer(background: float) -> None:
    """784-32-10 ReLU, cross-entropy, inputs 80% background (zeros, or standardised blank pixels)."""
    model = relu_mlp([784, 32, 10], seed=0)
    x = sparse_images(200, 784, seed=1, background=background).view(200, 1, 28, 28)
    y = torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(2))
    flat = FlatParams(model)
    ev = coordinate_evaluator(flat, F.cross_entropy, x, y)
    assert isinstance(ev, MLPCoordinateEvaluator)
    assert ev.loss() == pytest.approx(forward_loss(model, F.cross_entropy, x, y), abs=1e-5)
    # float64 forward of the same (float32) weights: the engine is much closer than float32 rounding
    check_candidates(ev, model, flat, F.cross_entropy, x, y, steps=40, scales=(0.003, 0.05, 1.0, 40.0),
                     seed=3, atol=1e-8)
    # and against the module's own float32 forward, the requirement
    check_candidates(ev, model, flat, F.cross_entropy, x, y, steps=10, scales=(0.05,), seed=4, atol=1e-5,
                     exact_dtype=torch.float32)


def test_relu_pairs_of_small_and_large_steps_match_forward() -> None:
    """RSO's two candidates (and a single one) take the vectorised path when the steps are small, and the
    general one when any is large; every pairing agrees with a forward pass (float64 of the float32 weights)."""
    model = relu_mlp([784, 32, 10], seed=30)
    x = sparse_images(120, 784, seed=31, background=-0.4242).view(120, 1, 28, 28)
    y = torch.randint(0, 10, (120,), generator=torch.Generator().manual_seed(32))
    flat = FlatParams(model)
    ev = MLPCoordinateEvaluator(flat, F.cross_entropy, x, y)
    g = torch.Generator().manual_seed(33)
    for index in torch.randint(784 * 32, (12,), generator=g).tolist():  # first-layer weights: shared moves
        w = float(flat.get()[index])
        for a, b in ((0.01, -0.01), (0.01, 3.0), (-2.0, 0.004), (1.5, -1.5)):
            values = torch.tensor([w + a, w + b])
            got = ev.try_values(index, values).tolist()
            assert ev.try_values(index, values[1:]).tolist() == pytest.approx(got[1:], abs=1e-12)
            for v, loss in zip(values.tolist(), got, strict=True):
                want = forward_loss(model, F.cross_entropy, x, y, dtype=torch.float64, change=(index, v), flat=flat)
                assert loss == pytest.approx(want, abs=1e-8), (index, a, b)


def test_class_weights_kept_for_a_unit_follow_the_unit_and_its_output_weights() -> None:
    """The class weights a try keeps for one unit are filled again when a try moves to another unit, or an
    accept changes the unit's output weights: every try gives what an evaluator built for it gives."""
    model = relu_mlp([784, 8, 10], seed=40)
    x = sparse_images(64, 784, seed=41, background=-0.4242).view(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(42))
    flat = FlatParams(model)
    ev = MLPCoordinateEvaluator(flat, F.cross_entropy, x, y)
    g = torch.Generator().manual_seed(43)
    for step in range(24):
        unit = step % 3 if step < 12 else 5  # from unit to unit, then one unit while its output weight moves
        index = unit * 784 + int(torch.randint(784, (1,), generator=g))
        w = float(flat.get()[index])
        values = torch.tensor([w + 0.01, w - 0.02])
        fresh = MLPCoordinateEvaluator(flat, F.cross_entropy, x, y)
        assert ev.try_values(index, values).tolist() == fresh.try_values(index, values).tolist()
        if step % 4 == 3:
            output_weight = 784 * 8 + 8 + (step % 10) * 8 + unit  # W_1[step % 10, unit]
            ev.set_value(output_weight, float(flat.get()[output_weight]) + 0.5)


def test_deeper_mixed_activation_stack_float64() -> None:
    """20-16-12-8-3 with tanh and relu, biases and none, float64: exact to 1e-8 (the float32 softmax copy of
    small cross-entropy steps; everything else is float64)."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 12, bias=False), nn.ReLU(),
                          nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    x = sparse_images(60, 20, seed=6).double()
    y = torch.randint(0, 3, (60,), generator=torch.Generator().manual_seed(7))
    flat = FlatParams(model)
    ev = coordinate_evaluator(flat, F.cross_entropy, x, y)
    assert isinstance(ev, MLPCoordinateEvaluator)
    check_candidates(ev, model, flat, F.cross_entropy, x, y, steps=60, scales=(0.01, 0.5, 50.0), seed=8,
                     atol=1e-8)


@pytest.mark.parametrize("act", [nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Softplus, nn.Hardtanh, nn.Sigmoid,
                                 nn.ReLU6])
def test_activations_and_squared_error_float64(act: type[nn.Module]) -> None:
    model = relu_mlp([12, 9, 7, 4], seed=9, act=act).double()
    x = (sparse_images(40, 12, seed=10) - 1.0).double()
    g = torch.Generator().manual_seed(11)
    for loss_fn, y in ((F.mse_loss, torch.randn(40, 4, generator=g, dtype=torch.float64)),
                       (F.cross_entropy, torch.randint(0, 4, (40,), generator=g))):
        flat = FlatParams(model)
        ev = incremental_evaluator(flat, loss_fn, x, y)
        assert isinstance(ev, MLPCoordinateEvaluator)
        # cross-entropy's small steps read a float32 copy of the softmax: exact to ~1e-8 of the change
        atol = 1e-8 if loss_fn is F.cross_entropy else 1e-12
        check_candidates(ev, model, flat, loss_fn, x, y, steps=25, scales=(0.02, 2.0), seed=12, atol=atol)
        for step in range(30):  # accepts in every layer keep the (float64) caches exact
            index = (17 * step + 5) % flat.num_dims
            ev.set_value(index, float(flat.get()[index]) + (0.5 if step % 3 else -2.0))
            assert ev.loss() == pytest.approx(forward_loss(model, loss_fn, x, y), abs=1e-11)


def test_bias_free_layers_and_head_only_subset() -> None:
    model = relu_mlp([30, 16, 5], seed=13, bias=False)
    x = sparse_images(50, 30, seed=14, background=0.3)
    y = torch.randint(0, 5, (50,), generator=torch.Generator().manual_seed(15))
    for flat in (FlatParams(model), FlatParams(model, include=[r"^3\."]),
                 FlatParams(model, params=[model[3].weight, model[1].weight])):
        ev = incremental_evaluator(flat, F.cross_entropy, x, y)
        assert isinstance(ev, MLPCoordinateEvaluator)
        check_candidates(ev, model, flat, F.cross_entropy, x, y, steps=25, scales=(0.01, 1.0), seed=16,
                         atol=1e-8)


@pytest.mark.parametrize("refresh_every", [0, 50])
def test_caches_stay_exact_over_200_accepts(refresh_every: int) -> None:
    """A search-like sequence: try two values, keep the better when it improves; after 200 accepts (without
    any refresh, and with one every 50) the cached loss and fresh candidates still match forward passes."""
    model = relu_mlp([64, 24, 10], seed=17)
    x = sparse_images(150, 64, seed=18, background=-0.42)
    y = torch.randint(0, 10, (150,), generator=torch.Generator().manual_seed(19))
    flat = FlatParams(model)
    ev = MLPCoordinateEvaluator(flat, F.cross_entropy, x, y, refresh_every=refresh_every)
    g = torch.Generator().manual_seed(20)
    accepted = 0
    while accepted < 200:
        index = int(torch.randint(flat.num_dims, (1,), generator=g))
        w = float(flat.get()[index])
        d = (30.0 if accepted % 10 == 9 else 0.1) * float(torch.randn(1, generator=g))  # some huge steps
        values = torch.tensor([w + d, w - d])
        losses = ev.try_values(index, values)
        k = int(losses.argmin())
        ev.set_value(index, float(values[k]), float(losses[k]))  # keep it either way: more cache updates
        accepted += 1
    assert ev.loss() == pytest.approx(forward_loss(model, F.cross_entropy, x, y, dtype=torch.float64), abs=1e-9)
    assert ev.loss() == pytest.approx(forward_loss(model, F.cross_entropy, x, y), abs=1e-5)
    check_candidates(ev, model, flat, F.cross_entropy, x, y, steps=15, scales=(0.05, 3.0), seed=21, atol=1e-8)
    fresh = MLPCoordinateEvaluator(flat, F.cross_entropy, x, y)
    assert ev._net.zt == pytest.approx(fresh._net.zt, abs=1e-10)  # pre-activations
    assert ev._net.at == pytest.approx(fresh._net.at, abs=1e-10)  # activations
    for field in ("o", "p", "p32", "lrow"):  # outputs, softmax (x2), row losses
        got, want = getattr(ev._outs, field), getattr(fresh._outs, field)
        float32 = got.dtype.itemsize == 4  # the softmax copy: equal up to its own rounding
        assert got == pytest.approx(want, rel=1e-6 if float32 else 0, abs=1e-12 if float32 else 1e-9)


def test_values_are_rounded_like_the_parameter_and_nonfinite_gives_nan() -> None:
    model = relu_mlp([10, 6, 3], seed=22)
    x = sparse_images(20, 10, seed=23)
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(24))
    flat = FlatParams(model)
    ev = incremental_evaluator(flat, F.cross_entropy, x, y)
    assert ev is not None
    w = float(flat.get()[7])
    same = ev.try_values(7, torch.tensor([w, w + 1e-12], dtype=torch.float64))  # w + 1e-12 rounds to w
    assert same.tolist() == [ev.loss(), ev.loss()]
    out = ev.try_values(7, torch.tensor([math.nan, math.inf, 1e39, w + 0.1], dtype=torch.float64))
    assert out[:3].isnan().all() and math.isfinite(out[3])  # 1e39 is stored as inf in float32


def test_evaluations_are_counted_like_the_reference() -> None:
    model = relu_mlp([10, 6, 3], seed=25)
    x = sparse_images(20, 10, seed=26)
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(27))
    counts = []
    for make in (lambda f: MLPCoordinateEvaluator(f, F.cross_entropy, x, y),
                 lambda f: SequentialCoordinateEvaluator(f, F.cross_entropy, x, y),
                 lambda f: PopulationCoordinateEvaluator(f, F.cross_entropy, x, y)):
        m = copy.deepcopy(model)
        ev = make(FlatParams(m))
        trace = [ev.loss(), ev.loss()]
        losses = ev.try_values(3, torch.tensor([0.1, -0.2]))
        ev.set_value(3, 0.1, float(losses[0]))
        trace.append(ev.loss())
        ev.set_value(4, 0.3)
        trace.append(ev.loss())
        counts.append((ev.evaluations, trace))
    assert counts[0][0] == counts[1][0] == counts[2][0] == 4  # 1 + 2 candidates + 1 after the blind set
    for _, trace in counts[:2]:
        assert trace == pytest.approx(counts[2][1], abs=1e-6)


# ---------------------------------------------------------------------------------------------- torch engine


def small_cnn(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(4, 5, 3, stride=2, padding=(1, 0), bias=False), nn.Tanh()), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(5, 6), nn.ReLU(), nn.Dropout(0.5).eval(), nn.Linear(6, 4),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cnn_matches_forward_and_stays_exact_after_accepts(dtype: torch.dtype) -> None:
    model = small_cnn(28).to(dtype)
    g = torch.Generator().manual_seed(29)
    x = torch.randn(24, 2, 12, 12, generator=g).to(dtype)
    y = torch.randint(0, 4, (24,), generator=g)
    flat = FlatParams(model)
    ev = coordinate_evaluator(flat, F.cross_entropy, x, y)
    assert isinstance(ev, SequentialCoordinateEvaluator)
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    check_candidates(ev, model, flat, F.cross_entropy, x, y, steps=30, scales=(0.05, 2.0), seed=30, atol=atol,
                     exact_dtype=dtype)
    for step in range(40):
        index = (step * 7919) % flat.num_dims
        ev.set_value(index, float(flat.get()[index]) + 0.05)
    assert ev.loss() == pytest.approx(forward_loss(model, F.cross_entropy, x, y), abs=atol)


def test_torch_engine_serves_mlps_with_other_losses() -> None:
    """An MLP with a trailing activation, or a loss the numba engine does not know, goes to torch."""
    torch.manual_seed(31)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3), nn.Sigmoid())

    def smooth_l1(out: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(out, target)

    g = torch.Generator().manual_seed(32)
    x, y = torch.randn(16, 8, generator=g), torch.rand(16, 3, generator=g)
    flat = FlatParams(model)
    ev = coordinate_evaluator(flat, smooth_l1, x, y)
    assert isinstance(ev, SequentialCoordinateEvaluator)
    check_candidates(ev, model, flat, smooth_l1, x, y, steps=15, scales=(0.3,), seed=33, atol=1e-6,
                     exact_dtype=torch.float32)


# ---------------------------------------------------------------------------------------------- dispatch


class _Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x) * 2


@pytest.mark.parametrize(("model", "expected"), [
    (nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)), MLPCoordinateEvaluator),
    (nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.ReLU(), nn.Linear(5, 3)), SequentialCoordinateEvaluator),
    (nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.Linear(5, 3)), PopulationCoordinateEvaluator),
    (nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 3)), PopulationCoordinateEvaluator),
    (nn.Sequential(nn.Linear(4, 5), nn.Softmax(dim=1)), PopulationCoordinateEvaluator),
    (_Custom(), PopulationCoordinateEvaluator),
])
def test_dispatch_picks_the_engine_or_falls_back(model: nn.Module, expected: type) -> None:
    x, y = torch.randn(8, 4, generator=torch.Generator().manual_seed(34)), torch.arange(8) % 3
    if isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Softmax):
        y = torch.arange(8) % 5
    ev = coordinate_evaluator(FlatParams(model), F.cross_entropy, x, y)
    assert type(ev) is expected
    index = 2
    got = ev.try_values(index, torch.tensor([0.3]))
    assert float(got[0]) == pytest.approx(
        forward_loss(model, F.cross_entropy, x, y, change=(index, 0.3), flat=FlatParams(model)), abs=1e-5)


def test_row_losses_are_recognised_only_when_plain() -> None:
    y = torch.tensor([0, 2, 1])
    assert row_loss_kind(F.cross_entropy, (3, 3), y) == "cross_entropy"
    assert row_loss_kind(ClassificationTask.loss_fn, (3, 3), y) == "cross_entropy"
    assert row_loss_kind(nn.CrossEntropyLoss(), (3, 3), y) == "cross_entropy"
    assert row_loss_kind(nn.CrossEntropyLoss(label_smoothing=0.1), (3, 3), y) is None
    assert row_loss_kind(F.cross_entropy, (3, 3), torch.tensor([0, -100, 1])) is None  # ignored rows
    assert row_loss_kind(F.mse_loss, (3, 2), torch.zeros(3, 2)) == "mse"
    assert row_loss_kind(F.mse_loss, (3, 2), torch.zeros(3)) is None  # broadcasting
    assert row_loss_kind(lambda o, t: F.cross_entropy(o, t), (3, 3), y) is None
    assert row_loss_kind(mean_row_loss("mse")(lambda o, t: F.mse_loss(o, t)), (3, 2), torch.zeros(3, 2)) == "mse"
    assert mlp_layers(nn.Sequential(nn.Linear(3, 2), nn.Tanh())) is None  # trailing activation
    assert sequential_stages(nn.Sequential(nn.Conv2d(1, 2, 3, padding="same"), nn.Flatten())) is None


def test_evaluator_is_reused_only_while_nothing_changed() -> None:
    model = relu_mlp([10, 6, 3], seed=35)
    x = sparse_images(20, 10, seed=36)
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(37))
    flat = FlatParams(model)
    first = coordinate_evaluator(flat, F.cross_entropy, x, y)
    first.loss()
    first.set_value(5, 0.25, None)
    again = coordinate_evaluator(flat, F.cross_entropy, x, y)
    assert again is first
    before = again.evaluations
    assert again.loss() == pytest.approx(forward_loss(model, F.cross_entropy, x, y), abs=1e-6)
    assert again.evaluations == before + 1  # charged again, as a new evaluator's first loss would be
    with torch.no_grad():
        model[1].weight[0, 0] += 0.5  # changed behind its back: a new evaluator, with the new loss
    other = coordinate_evaluator(flat, F.cross_entropy, x, y)
    assert other is not first
    assert other.loss() == pytest.approx(forward_loss(model, F.cross_entropy, x, y), abs=1e-6)
    x.mul_(2.0)  # the batch changed in place
    third = coordinate_evaluator(flat, F.cross_entropy, x, y)
    assert third is not other
    assert third.loss() == pytest.approx(forward_loss(model, F.cross_entropy, x, y), abs=1e-6)


def test_polynomial_exponentials_are_double_precision() -> None:
    import numpy as np

    from gradfree.engines.incremental.kernels import softmax as sm

    for tmax in (0.02, 0.1):
        t = np.linspace(-tmax, tmax, 2001)
        s = np.zeros_like(t)
        sm._add_weighted_expm1(s, np.ones_like(t), t, 1.0, tmax, t.shape[0])
        assert np.max(np.abs(s - np.expm1(t))) < 4e-16


def test_short_log_series_is_double_precision() -> None:
    import numpy as np

    from gradfree.engines.incremental.kernels import softmax as sm

    s = np.linspace(-0.01005, 0.01005, 2001)
    relative = [abs(f(v) - math.log1p(v)) / max(abs(math.log1p(v)), 1e-300) for v in s
                for f in (sm._log1p_tiny, sm._log1p_small)]
    assert max(relative[0::2]) <= max(relative[1::2]) < 5e-16  # as exact as the long series (the division rounds)


def test_the_tries_fast_loops_give_the_general_loops_results() -> None:
    """The two-candidate pass over ten float32 classes sums each row as the general loop does (bit for bit),
    and the screened scan for rows crossing the kink gathers what a scan of every row gathers, in order."""
    import numpy as np

    from gradfree.engines.incremental.kernels import softmax as sm

    rng = np.random.default_rng(0)
    n = 1000
    p32 = rng.dirichlet(np.ones(10), size=n).T.astype(np.float32).copy()
    u = np.expm1(rng.normal(0.0, 0.01, size=(2, 10)))
    s = np.zeros((2, n))
    sm._stream_pair10(p32, u[0], u[1], s[0], s[1])
    expected = np.zeros((2, n))
    for q in range(10):
        for k in range(2):
            expected[k] += p32[q].astype(np.float64) * u[k, q]
    assert np.array_equal(s, expected)

    z = rng.normal(0.0, 0.05, size=n)
    z[:4] = [0.0, 0.004, -0.004, 0.0039999]  # on the window's edges
    mark = (rng.random(n) < 0.2).astype(np.uint8)
    for cb0, cb1, two in ((0.004, -0.004, True), (-0.03, 0.01, True), (0.02, 0.02, False), (0.0, 0.0, True)):
        gathered, da = np.zeros((2, n), dtype=np.int32), np.zeros((2, n))
        m0, m1 = sm._relu_crossing_pair(n, mark, z, cb0, cb1, two, gathered, da, 3, 0)
        for k, (cb, m) in enumerate(((cb0, m0), (cb1, m1))):
            rows = [r for r in range(n) if mark[r] == 0 and (z[r] > 0) != (z[r] + cb > 0)] if two or k == 0 else []
            assert gathered[k, 3 * (k == 0):m].tolist() == rows
            assert np.array_equal(da[k, 3 * (k == 0):m], [max(z[r] + cb, 0.0) - max(z[r], 0.0) for r in rows])


def test_four_lane_products_and_dot_products_sum_as_one() -> None:
    import numpy as np

    from gradfree.engines.incremental.kernels import softmax as sm

    rng = np.random.default_rng(2)
    for count in (0, 1, 3, 4, 255, 256, 257, 1027, 5000):
        s = np.exp(rng.uniform(-0.1, 0.1, size=count))
        assert sm._log_product_small(s, count) == pytest.approx(float(np.log(s).sum()), rel=1e-13, abs=1e-13)
        a, b = rng.normal(size=count), rng.normal(size=count)
        assert sm._dot4(a, b, count) == pytest.approx(float(a @ b), rel=1e-13, abs=1e-13)
    s = np.full(5000, math.exp(0.1))  # every lane at its largest: still finite
    assert sm._log_product_small(s, 5000) == pytest.approx(500.0, rel=1e-12)


def test_the_fused_background_passes_give_the_separate_loops_results() -> None:
    """One pass over the background rows (two candidates, or one, ten classes, ReLU) gives what the register
    sums, the sums of logs and the screened crossing scan give (the sums to their last bits: it fuses
    multiply-adds; the rows crossing exactly), on rows that are not a multiple of 8 (the flag words' padding)
    and on the window's edges, for tiny and larger moves."""
    import numpy as np

    from gradfree.engines.incremental.kernels import softmax as sm

    rng = np.random.default_rng(1)
    n = 1003
    p32 = rng.dirichlet(np.ones(10), size=n).T.astype(np.float32).copy()
    w = rng.normal(0.0, 0.3, size=10)
    wmax = float(np.abs(w).max())
    y = rng.integers(0, 10, size=n).astype(np.int32)
    wy = w[y]
    mark = (rng.random(n) < 0.2).astype(np.uint8)
    flags = np.zeros(1008, dtype=np.uint8)
    for cb0, cb1 in ((0.004, -0.004), (-0.03, 0.01), (0.02, 0.02), (0.0, 0.0), (0.25, -0.1)):
        z = rng.normal(0.0, 0.05, size=n)
        z[:4] = [0.0, 0.004, -0.004, 0.0039999]
        z[-1] = -cb0  # the last row on the edge: the tail of the last flag word
        u = np.expm1(np.outer([cb0, cb1], w))
        s, t = np.zeros((2, n)), np.zeros((2, n))
        gathered, da = np.zeros((2, n), dtype=np.int32), np.zeros((2, n))
        got = sm._relu_background_pair10(n, p32, u[0], u[1], mark, z, wy, cb0, cb1, wmax, t[0], t[1], flags,
                                         gathered, da, 3, 1, False)
        sm._stream_pair10(p32, u[0], u[1], s[0], s[1])
        terms = np.zeros(n)
        want = [sm._relu_shared_logs(n, mark, z, wy, cb, wmax, s[k], terms) for k, cb in enumerate((cb0, cb1))]
        want_gathered, want_da = np.zeros((2, n), dtype=np.int32), np.zeros((2, n))
        m = sm._relu_crossing_pair(n, mark, z, cb0, cb1, True, want_gathered, want_da, 3, 1)
        assert got[2:] == (m[0], m[1])
        assert got[:2] == pytest.approx(want, rel=1e-13, abs=1e-16)
        assert np.array_equal(gathered, want_gathered) and np.array_equal(da, want_da)
        assert not flags[n:].any()
        # gathered once for both candidates: the rows either one takes across, each with both changes
        union, da_union = np.zeros((2, n), dtype=np.int32), np.zeros((2, n))
        got = sm._relu_background_pair10(n, p32, u[0], u[1], mark, z, wy, cb0, cb1, wmax, t[0], t[1], flags,
                                         union, da_union, 3, 1, True)
        rows = sorted(set(want_gathered[0, 3:m[0]].tolist()) | set(want_gathered[1, 1:m[1]].tolist()))
        assert got[2:] == (3 + len(rows), 1) and got[:2] == pytest.approx(want, rel=1e-13, abs=1e-16)
        assert union[0, 3:got[2]].tolist() == rows
        for k, first in ((0, 3), (1, 1)):
            changes = dict(zip(want_gathered[k, first:m[k]].tolist(), want_da[k, first:m[k]].tolist(), strict=True))
            assert da_union[k, 3:got[2]].tolist() == [changes.get(r, 0.0) for r in rows]
        # one candidate: the first one's sum and crossing rows, its window alone flagged
        one, da_one = np.zeros((2, n), dtype=np.int32), np.zeros((2, n))
        total, m_one = sm._relu_background_one10(n, p32, u[0], mark, z, wy, cb0, wmax, t[0], flags, one, da_one, 2)
        want_one, want_da_one = np.zeros((2, n), dtype=np.int32), np.zeros((2, n))
        m = sm._relu_crossing_pair(n, mark, z, cb0, cb0, False, want_one, want_da_one, 2, 0)
        assert m_one == m[0] and total == pytest.approx(want[0], rel=1e-13, abs=1e-16)
        assert np.array_equal(one, want_one) and np.array_equal(da_one, want_da_one)
        assert flags[:n].tolist() == ((z > min(0.0, -cb0)) & (z <= max(0.0, -cb0))).tolist()


def test_perf_incremental_smoke(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's rows are well formed and every engine agrees with the forward pass (tiny, synthetic)."""
    from gradfree.perf import incremental as perf_incremental
    from gradfree.perf.incremental import IncrementalRow, run_incremental, synthetic_batch

    x, y = synthetic_batch(64, seed=0)
    rows = run_incremental(x=x, y=y, ks=(1, 2), min_time=0.0, min_chunks=1, changes=8, check=4)
    assert [(r.method, r.k) for r in rows] == [
        ("forward", 1), ("reference", 1), ("reference", 2), ("torch-incr", 1), ("torch-incr", 2),
        ("numba-incr", 1), ("numba-incr", 2), ("numba-accept", 1), ("numba-pass", 2), ("numba-pass-rso", 2)]
    for r in rows[-2:]:
        assert 0 < r.changed < 1 and r.evaluations == 2 * r.calls
    for r in rows:
        assert isinstance(r, IncrementalRow)
        assert r.evaluations >= r.calls >= 1 and r.seconds > 0 and r.evals_per_s > 0 and r.cpu_evals_per_s > 0
        if r.method != "forward":
            assert r.max_abs_diff <= 1e-5
    assert "numba-incr" in perf_incremental.format_table(rows)
    assert perf_incremental.main(["--synthetic", "--ks", "x"]) == 2
    assert "error:" in capsys.readouterr().err


    def missing(data_dir: object, *, inputs: str) -> None:
        raise DataError("no MNIST here")

    monkeypatch.setattr(perf_incremental, "mnist_batch", missing)
    assert perf_incremental.main(["--data-dir", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "MNIST not found" in err and "--synthetic" in err
    assert perf_incremental.main(["--raw-pixels", "--uncentred"]) == 2
    assert "pass one" in capsys.readouterr().err


@settings(max_examples=12, deadline=None)
@given(depth=st.integers(1, 3), width=st.integers(1, 7), classes=st.integers(2, 5), rows=st.integers(1, 30),
       background=st.sampled_from([0.0, -0.5, 1.0]), seed=st.integers(0, 10_000))
def test_random_mlps_match_forward(depth: int, width: int, classes: int, rows: int, background: float,
                                   seed: int) -> None:
    """Any depth (a single Linear too), tiny widths and batches, either input background, float64."""
    widths = [6] + [width] * (depth - 1) + [classes]
    model = relu_mlp(widths, seed=seed).double()
    x = sparse_images(rows, 6, seed=seed + 1, background=background).double()
    y = torch.randint(0, classes, (rows,), generator=torch.Generator().manual_seed(seed + 2))
    flat = FlatParams(model)
    clear_cache()
    ev = incremental_evaluator(flat, F.cross_entropy, x, y)
    assert isinstance(ev, MLPCoordinateEvaluator)
    check_candidates(ev, model, flat, F.cross_entropy, x, y, steps=8, scales=(0.01, 1.0, 100.0), seed=seed + 3,
                     atol=1e-8)
    for step in range(10):
        index = (seed + 31 * step) % flat.num_dims
        ev.set_value(index, float(flat.get()[index]) + 0.2)
    assert ev.loss() == pytest.approx(forward_loss(model, F.cross_entropy, x, y), abs=1e-10)


@pytest.mark.parametrize("spec", ["conv1:4", "lenet:small"])
def test_project_cnns_get_the_torch_engine(spec: str) -> None:
    """The registered CNNs (plain Sequentials) are served incrementally, matching the forward pass."""
    from gradfree.models import build_model

    try:
        model = build_model(spec, seed=38, input_shape=(1, 28, 28), num_classes=10)
    except Exception as err:  # the model family may be absent or renamed in this checkout
        pytest.skip(f"{spec} not buildable here: {err}")
    g = torch.Generator().manual_seed(39)
    x, y = torch.randn(6, 1, 28, 28, generator=g), torch.randint(0, 10, (6,), generator=g)
    flat = FlatParams(model)
    ev = coordinate_evaluator(flat, F.cross_entropy, x, y)
    assert isinstance(ev, SequentialCoordinateEvaluator)
    check_candidates(ev, model, flat, F.cross_entropy, x, y, steps=6, scales=(0.1,), seed=40, atol=2e-5,
                     exact_dtype=torch.float32)


@pytest.mark.shared_data
def test_perf_incremental_measures_each_form_of_the_mdp_images(shared_data_dir: object) -> None:
    """--raw-pixels and --uncentred measure the task's images in [0, 1] and divided by the std only: the same
    images as the standardised ones, with a blank background of exactly 0."""
    from pathlib import Path

    import gradfree.perf.incremental as perf_incremental
    from gradfree.data.mnist import MNIST_MEAN, MNIST_STD

    folder = Path(str(shared_data_dir))
    if not (folder / "mnist").is_dir():
        pytest.skip(f"real MNIST not found in {folder}")
    std, y = perf_incremental.mnist_batch(folder)
    raw, y_raw = perf_incremental.mnist_batch(folder, inputs="raw")
    unc, y_unc = perf_incremental.mnist_batch(folder, inputs="uncentred")
    assert torch.equal(y, y_raw) and torch.equal(y, y_unc)
    torch.testing.assert_close(raw, std * MNIST_STD + MNIST_MEAN, rtol=0, atol=1e-6)
    torch.testing.assert_close(unc, raw / MNIST_STD, rtol=0, atol=1e-5)
    assert float(unc.min()) == float(raw.min()) == 0.0 and float(std.min()) < -0.4
