"""Batched population evaluation: the losses of P parameter vectors on one batch in one call.

Three paths compute the same numbers:

* ``"mlp"`` — a fast path for ``nn.Sequential`` stacks of ``Linear`` layers and element-wise activations:
  every layer becomes one batched matrix product over the population (``torch.baddbmm``).
* ``"vmap"`` — any module through ``torch.func.functional_call`` vectorised with ``torch.vmap``.
* ``"loop"`` — write each vector into the module and run it: the reference the others are tested against,
  and the fallback for modules that update buffers in place (batch norm in training mode).

The population is split into chunks so that the activations of one chunk stay under a memory bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gradfree.data.ragged import Targets
from gradfree.errors import ConfigError
from gradfree.objective.randomness import same_randomness
from gradfree.params.flat import FlatParams

LossFn = Callable[[Tensor, Any], Tensor]
"""``loss_fn(output (N, ...), target) -> scalar`` (mean over the batch); targets are a tensor or ragged."""

Mode = Literal["auto", "mlp", "vmap", "loop"]

_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
                nn.Identity, nn.Hardtanh)


def is_plain_mlp(module: nn.Module) -> bool:
    """Whether ``module`` is a ``Sequential`` of (an optional leading ``Flatten``,) ``Linear`` layers and
    element-wise activations — the shape the batched-matmul fast path handles."""
    if not isinstance(module, nn.Sequential) or len(module) == 0:
        return False
    layers = list(module)
    if isinstance(layers[0], nn.Flatten):
        layers = layers[1:]
    return any(isinstance(m, nn.Linear) for m in layers) and all(
        isinstance(m, (nn.Linear, *_ELEMENTWISE)) for m in layers
    )


def _updates_buffers(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in module.modules())


def activation_elements(module: nn.Module, x: Tensor) -> int:
    """Number of elements all leaf modules output for the batch ``x`` (a probe for the memory bound)."""
    total = 0

    def count(_m: nn.Module, _i: object, out: object) -> None:
        nonlocal total
        if isinstance(out, Tensor):
            total += out.numel()

    hooks = [m.register_forward_hook(count) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    return max(total, int(x.numel()))


class PopulationLoss:
    """Losses of a population of flat parameter vectors on one batch.

    Args:
        flat: the flat view naming which parameters the vectors hold; the others keep their values.
        loss_fn: ``(output, target) -> scalar``; must be ``torch.vmap``-compatible for the batched paths
            (``torch.nn.functional.cross_entropy`` and ``mse_loss`` are).
        mode: ``"auto"`` picks ``"mlp"`` for plain Linear stacks, ``"loop"`` for modules that update buffers
            in place, and ``"vmap"`` otherwise.
        memory_bytes: bound on the activation memory of one chunk of the population.

    Shapes:
        ``__call__(vectors (P, D), x (N, ...), y (N, ...)) -> (P,)``.
    """

    def __init__(
        self, flat: FlatParams, loss_fn: LossFn, *, mode: Mode = "auto", memory_bytes: int = 256 * 2**20
    ) -> None:
        if flat.module is None:
            raise ConfigError("population evaluation needs a FlatParams built from the module")
        self.flat = flat
        self.module: nn.Module = flat.module
        self.loss_fn = loss_fn
        if mode == "auto":
            if is_plain_mlp(self.module):
                mode = "mlp"
            elif _updates_buffers(self.module):
                mode = "loop"
            else:
                mode = "vmap"
        elif mode == "mlp" and not is_plain_mlp(self.module):
            raise ConfigError("mode='mlp' needs an nn.Sequential of Linear layers and activations")
        self.mode: Mode = mode
        self.memory_bytes = memory_bytes
        self._probe: tuple[tuple[int, ...], int] | None = None

    def __call__(self, vectors: Tensor, x: Tensor, y: Targets, *, seed: int | None = None) -> Tensor:
        """Losses ``(P,)`` of ``vectors`` on the batch ``(x, y)``.

        ``seed``: for a model with stochastic layers (dropout), every member's forward sees torch's RNG seeded
        with it (common random numbers, :mod:`gradfree.objective.randomness`), and the caller's RNG is left as
        it was; ``None`` runs the forwards as they come.
        """
        if vectors.ndim != 2 or vectors.shape[1] != self.flat.num_dims:
            raise ConfigError(f"expected vectors of shape (P, {self.flat.num_dims}), got {tuple(vectors.shape)}")
        if self.mode == "loop":
            return self._loop(vectors, x, y, seed)
        with same_randomness(seed):
            chunk = self.chunk_size(x)
        compute = self._mlp if self.mode == "mlp" else self._vmap
        parts = []
        with torch.no_grad():
            for v in vectors.split(chunk):
                with same_randomness(seed):
                    parts.append(compute(v, x, y, seed))
        return torch.cat(parts)

    def chunk_size(self, x: Tensor) -> int:
        """Population members per chunk for a batch like ``x``, from a one-off probe of activation sizes."""
        if self._probe is None or self._probe[0] != tuple(x.shape):
            self._probe = (tuple(x.shape), activation_elements(self.module, x))
        per_member = (self._probe[1] + self.flat.num_dims) * x.element_size()
        return max(1, self.memory_bytes // per_member)

    def _loop(self, vectors: Tensor, x: Tensor, y: Targets, seed: int | None) -> Tensor:
        saved = self.flat.get()
        losses = torch.empty(vectors.shape[0], dtype=vectors.dtype, device=vectors.device)
        try:
            with torch.no_grad():
                for i, v in enumerate(vectors):
                    self.flat.set_(v)
                    with same_randomness(seed):
                        losses[i] = self.loss_fn(self.module(x), y)
        finally:
            self.flat.set_(saved)
        return losses

    def _vmap(self, vectors: Tensor, x: Tensor, y: Targets, seed: int | None) -> Tensor:
        fixed: dict[str, Tensor] = dict(self.module.named_parameters())
        fixed.update(self.module.named_buffers())

        def one(v: Tensor) -> Tensor:
            tensors = {**fixed, **self.flat.unflatten(v)}
            out = torch.func.functional_call(self.module, tensors, (x,))
            return self.loss_fn(out, y)

        # With a seed (a stochastic model) every member draws the same random numbers ("same"); without one,
        # a random operation under vmap is an error, as it would silently break the comparison.
        return torch.vmap(one, randomness="same" if seed is not None else "error")(vectors)

    def _mlp(self, vectors: Tensor, x: Tensor, y: Targets, seed: int | None = None) -> Tensor:
        views = self.flat.unflatten(vectors)  # name -> (P, *shape)
        names = dict(self.module.named_modules())
        inverse = {id(m): n for n, m in names.items()}
        p = vectors.shape[0]
        # Flatten only where the module itself does, so the fast path never accepts what the module rejects.
        flat_input = x.reshape(x.shape[0], -1) if isinstance(self.module[0], nn.Flatten) else x  # type: ignore[index]
        h = flat_input.unsqueeze(0).expand(p, -1, -1)  # (P, N, in)
        for m in self.module:  # type: ignore[attr-defined]  # a Sequential, checked by is_plain_mlp
            if isinstance(m, nn.Flatten):
                continue
            if isinstance(m, nn.Linear):
                prefix = inverse[id(m)]
                w = views.get(f"{prefix}.weight", m.weight)
                w = w if w.ndim == 3 else w.unsqueeze(0).expand(p, -1, -1)
                b = views.get(f"{prefix}.bias", m.bias)
                if b is None:
                    h = torch.bmm(h, w.transpose(1, 2))
                else:
                    b = b if b.ndim == 2 else b.unsqueeze(0).expand(p, -1)
                    h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            else:
                h = m(h)
        return torch.vmap(self.loss_fn, in_dims=(0, None))(h, y)
