"""Perturbations regenerated from seeds: the OpenAI-ES trick for shipping populations as integers.

Every generation a strategy draws one 63-bit *generation seed* from its own generator. Row ``r`` of the
generation's standard normal block is drawn from a fresh ``torch.Generator`` seeded with
``row_seed(gen_seed, r)`` (a splitmix64 mix of the two), so any range of rows can be rebuilt by someone who
knows only the generation seed and the range: a remote worker evaluating members ``[start, stop)`` calls
:func:`gaussian_rows` (or :meth:`PopulationSpec.members`) with the mean and scale it was sent and gets the
very numbers the strategy used, at a cost proportional to its own rows. (Slicing one sequential
``torch.randn(P, D)`` stream would not do: torch's vectorised sampler consumes the stream in blocks, so a
row's numbers depend on how many rows were drawn before it.)

Rows are always drawn on the CPU in float32 or float64 (the strategy's dtype, float32 for half precisions) and
then moved, so a CUDA run sees the same perturbations as a CPU run. They are bit-identical across processes
with the same torch build and CPU instruction set (torch's normal sampler has an AVX2/AVX512 path whose last
bits may differ from the scalar one).

Reference: Salimans, Ho, Chen, Sidor, Sutskever (2017), "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning", section 2.1 (shared noise table / seeds instead of perturbations).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def row_seed(gen_seed: int, row: int) -> int:
    """The 63-bit seed of row ``row`` of generation ``gen_seed`` (splitmix64 of the pair)."""
    return _splitmix64((_splitmix64(gen_seed) + row) & _MASK64) >> 1


def gaussian_rows(
    gen_seed: int,
    start: int,
    stop: int,
    num_dims: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Rows ``[start, stop)`` of the standard normal block of generation ``gen_seed``.

    Any slice equals the same rows of a larger request: ``gaussian_rows(s, 0, P, D)[a:b]`` is
    ``gaussian_rows(s, a, b, D)`` bit for bit.

    Args:
        gen_seed: the generation seed (from :meth:`PopulationSpec` or a strategy's ``pending_seed``).
        start, stop: the row range, ``0 <= start <= stop``.
        num_dims: row length ``D``.
        dtype, device: of the result; drawn on the CPU in float64 for float64, float32 otherwise.

    Returns:
        Tensor of shape ``(stop - start, num_dims)``.
    """
    draw = torch.float64 if dtype == torch.float64 else torch.float32
    out = torch.empty(max(stop - start, 0), num_dims, dtype=draw)
    gen = torch.Generator()
    for r in range(start, stop):
        gen.manual_seed(row_seed(gen_seed, r))
        torch.randn(num_dims, generator=gen, dtype=draw, out=out[r - start])
    return out.to(device=device, dtype=dtype)


@dataclass(frozen=True)
class PopulationSpec:
    """Everything but the mean and scale needed to rebuild a generation ``mean + scale * eps_i``.

    With ``antithetic`` the members come in mirrored pairs, ``eps_{2k} = z_k`` and ``eps_{2k+1} = -z_k``
    where ``z_k`` is row ``k`` of :func:`gaussian_rows`; otherwise ``eps_i = z_i``.

    Attributes:
        gen_seed: the generation seed.
        popsize: members in the generation.
        antithetic: whether members are mirrored pairs.
    """

    gen_seed: int
    popsize: int
    antithetic: bool

    def noise(
        self, start: int, stop: int, num_dims: int, *, dtype: torch.dtype, device: torch.device | str
    ) -> Tensor:
        """The signed perturbations ``eps_i`` of members ``[start, stop)``; shape ``(stop - start, D)``."""
        if not self.antithetic:
            return gaussian_rows(self.gen_seed, start, stop, num_dims, dtype=dtype, device=device)
        base = gaussian_rows(self.gen_seed, start // 2, (stop + 1) // 2, num_dims, dtype=dtype, device=device)
        idx = torch.arange(start, stop)
        eps = base[torch.div(idx, 2, rounding_mode="floor") - start // 2]
        sign = torch.where(idx % 2 == 0, 1.0, -1.0).to(device=device, dtype=dtype)
        return eps * sign[:, None]

    def members(self, mean: Tensor, scale: float | Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """Members ``[start, stop)`` as ``mean + scale * eps_i``, exactly as the strategy's ``ask`` has them.

        Args:
            mean: the search centre, shape ``(D,)``.
            scale: the sampling scale, a float or a ``(D,)`` tensor (e.g. ``strategy.scale``).
            start, stop: the member range (``stop`` defaults to ``popsize``).

        Returns:
            Tensor of shape ``(stop - start, D)`` on ``mean``'s device and dtype.
        """
        stop = self.popsize if stop is None else stop
        eps = self.noise(start, stop, mean.shape[0], dtype=mean.dtype, device=mean.device)
        return mean + scale * eps
