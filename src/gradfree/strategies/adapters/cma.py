"""pycma's ``CMAEvolutionStrategy`` behind the ask/tell :class:`Strategy` contract (optional: ``gradfree[cma]``).

This is the method's reference implementation, as its author ships it (default weights with active negative
updates; two-point step-size adaptation from dimension 300, pycma's ``TPA_dimension``, and CSA below it), with
its termination criteria switched off because a training run ends on its own budget. ``diagonal=True`` (the default) is
pycma's ``CMA_diagonal``: a diagonal covariance, linear in the dimension; ``diagonal=False`` is full
CMA-ES: ``O(D^2)`` memory and ``O(D^3)`` eigendecompositions, for ``D`` up to a few thousand.

Randomness: pycma draws its samples from the ``randn`` option; we give it a picklable sampler around a
private ``numpy.random.Generator`` seeded from ``seed`` and set ``seed=nan`` so pycma never seeds numpy's
global RNG. pycma's TPA consistency check still draws random indices from the global RNG; the adapter saves
and restores numpy's global state around every ``ask`` and ``tell``, so the global RNG is left as it was.

Checkpoints: ``state_dict()`` holds the pickled ``CMAEvolutionStrategy`` (with its sampler's state and any
asked but not yet told solutions) as a ``uint8`` tensor under ``"wrapped"``, loadable with
``torch.load(weights_only=True)``; a resumed run continues identically. Unpickling runs pycma's code, so a
checkpoint's blob loads only when the user trusts it (``--trust-checkpoint``). Full CMA at ``D = 2410``
pickles to about 95 MB.

Populations are evaluated in the model's dtype (float32), while pycma keeps its float64 solutions: the losses
it is told belong to the float32-rounded points.

Reference: Hansen (2016), "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772; Hansen, Akimoto,
Baudis (2019), pycma, https://github.com/CMA-ES/pycma; Ros & Hansen (2008) for the diagonal variant;
Hansen (2008), "CMA-ES with Two-Point Step-Size Adaptation", arXiv:0805.0231 (TPA).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.strategies.adapters.wrapped import finite_losses, from_blob, numpy_global_rng_kept, to_blob
from gradfree.strategies.base import Strategy


def import_cma() -> Any:
    """``import cma``, or a :class:`ConfigError` naming the extra to install."""
    try:
        import cma
    except ImportError:
        raise ConfigError("the pycma adapter needs pycma: pip install 'gradfree[cma]'") from None
    return cma


class NumpyNormal:
    """pycma's ``randn(*shape)`` option drawing from a private, picklable ``numpy.random.Generator``."""

    def __init__(self, seed: int) -> None:
        import numpy as np

        self.rng = np.random.default_rng(seed)

    def __call__(self, *shape: int) -> Any:
        return self.rng.standard_normal(shape)


class PyCMAStrategy(Strategy):
    """pycma's CMA-ES as an ask/tell strategy over flat vectors.

    Args:
        num_dims, popsize, init_mean, sigma, seed: see :class:`Strategy`; ``sigma`` is pycma's ``sigma0``
            (default 0.1).
        diagonal: ``CMA_diagonal`` (default True: sep-CMA-ES, linear in ``D``); False for full CMA-ES.

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``; ``mean: (D,)`` (pycma's distribution mean).
    """

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
        diagonal: bool = True,
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        cma = import_cma()
        if not isinstance(diagonal, bool):
            raise ConfigError(f"diagonal must be True or False, got {diagonal!r}")
        self._hyper.update(diagonal=diagonal)
        options = {
            "popsize": popsize, "CMA_diagonal": diagonal, "seed": float("nan"), "randn": NumpyNormal(self.seed),
            "verbose": -9, "verb_log": 0, "verb_disp": 0,
            # a training run stops on its own budget, not on pycma's convergence tests
            "tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolflatfitness": 10**9, "tolstagnation": 10**9,
        }  # fmt: skip
        x0 = self._mean.detach().cpu().double().numpy()
        with numpy_global_rng_kept():
            self._es = cma.CMAEvolutionStrategy(x0, float(sigma), options)
        self._pending: list[Any] = []  # asked, not yet told solutions (float64 arrays pycma recognises)

    @property
    def wrapped(self) -> Any:
        """The ``cma.CMAEvolutionStrategy`` itself."""
        return self._es

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with numpy_global_rng_kept():
            return fn(*args)

    def _sample(self, gen_seed: int) -> Tensor:
        # pycma samples from its own seeded sampler; gen_seed is not needed.
        import numpy as np

        if not self._pending:
            self._pending = list(self._call(self._es.ask))
        return torch.as_tensor(np.stack(self._pending)).to(device=self.device, dtype=self.dtype)

    def _update(self, population: Tensor, losses: Tensor) -> None:
        self._call(self._es.tell, self._pending, finite_losses(losses))
        self._pending = []
        self._mean = torch.as_tensor(self._es.mean).to(device=self.device, dtype=self.dtype)

    def state_dict(self) -> dict[str, Any]:
        """The base state plus the pickled ``CMAEvolutionStrategy`` and pending solutions (``"wrapped"``)."""
        return {**super().state_dict(), "wrapped": to_blob((self._es, self._pending))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; sampling continues from the saved generator state."""
        super().load_state_dict(state)
        self._es, self._pending = from_blob(state["wrapped"], what="a pickled pycma CMAEvolutionStrategy")
