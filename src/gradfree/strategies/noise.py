"""Perturbations regenerated from seeds: the OpenAI-ES trick for shipping populations as integers.

Every generation a strategy draws one 63-bit *generation seed* from its own generator. Row ``r`` of the
generation's standard normal block is drawn from a fresh ``torch.Generator`` seeded with
``row_seed(gen_seed, r)`` (a splitmix64 mix of the two), so any range of rows can be rebuilt by someone who
knows only the generation seed and the range: a remote worker evaluating members ``[start, stop)`` calls
:func:`gaussian_rows` (or :meth:`PopulationSpec.members`) with the mean and scale it was sent and gets the
very numbers the strategy used, at a cost proportional to its own rows. (Slicing one sequential
``torch.randn(P, D)`` stream would not do: torch's vectorised sampler consumes the stream in blocks, so a
row's numbers depend on how many rows were drawn before it.)

Rows are always drawn on the CPU in float32 and then converted and moved, so a CUDA run sees the same
perturbations as a CPU run and a float64 strategy the same numbers as a float32 one, widened. (float32 rather
than the strategy's dtype: torch's CPU normal sampler is about 4.7x slower in float64, 175 against 37 ns a
number measured for rows of 1,000, which made the draw most of sep-CMA-ES's ask/tell time in float64 at
D = 10,000; 24 significant bits are plenty for a search direction.) They are bit-identical across processes
with the same torch build and CPU instruction set (torch's normal sampler has an AVX2/AVX512 path whose last
bits may differ from the scalar one).

Reference: Salimans, Ho, Chen, Sidor, Sutskever (2017), "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning", section 2.1 (shared noise table / seeds instead of perturbations).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
        dtype, device: of the result; always drawn on the CPU in float32, then converted.

    Returns:
        Tensor of shape ``(stop - start, num_dims)``.
    """
    out = torch.empty(max(stop - start, 0), num_dims, dtype=torch.float32)
    gen = torch.Generator()
    for r in range(start, stop):
        gen.manual_seed(row_seed(gen_seed, r))
        torch.randn(num_dims, generator=gen, dtype=torch.float32, out=out[r - start])
    return out.to(device=device, dtype=dtype)


@dataclass(frozen=True)
class PopulationSpec:
    """Everything but the mean and scale needed to rebuild a generation ``mean + scale * eps_i``.

    With ``antithetic`` the members come in mirrored pairs, ``eps_{2k} = z_k`` and ``eps_{2k+1} = -z_k``
    where ``z_k`` is row ``k`` of :func:`gaussian_rows`; otherwise ``eps_i = z_i``. With a ``line`` (two-point
    step-size adaptation, see :mod:`gradfree.strategies.sep_cma`) the first two members are the mirrored pair
    ``eps_0 = line``, ``eps_1 = -line`` and the others ``eps_i = z_i`` as before (rows 0 and 1 are unused).

    Attributes:
        gen_seed: the generation seed.
        popsize: members in the generation.
        antithetic: whether members are mirrored pairs.
        line: ``(D,)`` perturbation of member 0 (member 1 gets its negative), or ``None``. It is not a seed: a
            remote worker holds it because its replica of the strategy computes the same spec from the same
            state. Left out of ``==``.
    """

    gen_seed: int
    popsize: int
    antithetic: bool
    line: Tensor | None = field(default=None, compare=False)

    def noise(
        self, start: int, stop: int, num_dims: int, *, dtype: torch.dtype, device: torch.device | str
    ) -> Tensor:
        """The signed perturbations ``eps_i`` of members ``[start, stop)``; shape ``(stop - start, D)``."""
        if self.line is not None:
            eps = gaussian_rows(self.gen_seed, start, stop, num_dims, dtype=dtype, device=device)
            line = self.line.to(device=device, dtype=dtype)
            for i, side in ((0, 1.0), (1, -1.0)):
                if start <= i < stop:
                    eps[i - start] = side * line
            return eps
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
