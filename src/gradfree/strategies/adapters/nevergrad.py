"""Any nevergrad optimizer behind the ask/tell :class:`Strategy` contract (optional: ``gradfree[nevergrad]``).

The wrapped optimizer is built with ``num_workers = popsize``, so a whole generation of ``popsize``
candidates is asked at once, scored in one batched call, and told back; nevergrad minimises, like us.
Parametrization: ``ng.p.Array(init=init_mean)`` with mutation scale ``sigma``; its ``random_state`` is a
``numpy.random.RandomState`` seeded from ``seed``, so nevergrad never falls back to numpy's global RNG. Its
CMA variants run pycma, whose two-point step-size check draws from that global RNG, so every call into
nevergrad runs inside :func:`~gradfree.strategies.adapters.wrapped.numpy_global_rng_kept`: the global state is left as
it was. ``mean`` is nevergrad's recommendation after each generation (the best point told so far by its
pessimistic estimate; for its CMA variants pycma's best evaluated point). With mini-batch losses that is the
luckiest member seen, not a search centre: a noisy choice, which the benchmark reports as it is.

Known issue: nevergrad 1.0's CMA wrapper asks pycma for a new population before telling the last one when
``popsize`` is below its own CMA population (``4 + int(3 ln D)``, larger for ``NGOpt``'s picks), which pycma's
two-point step-size adaptation (dimension >= 300) refuses; the adapter turns that failure into a
:class:`ConfigError` that names the ways out.

Checkpoints: ``state_dict()`` holds the pickled nevergrad optimizer (with its RNG and any asked but not yet
told candidates) as a ``uint8`` tensor under ``"wrapped"``, so the dict loads with
``torch.load(weights_only=True)`` and a resumed run continues identically. Unpickling it runs nevergrad's
code, so it loads only when the user trusts the checkpoint (``--trust-checkpoint``). For full-covariance
methods the blob is large
(CMA at ``D = 2410`` pickles to about 100 MB).

Reference: Rapin & Teytaud (2018), "Nevergrad - A gradient-free optimization platform",
https://github.com/facebookresearch/nevergrad; ``NGOpt`` is its algorithm selector (Meunier et al. 2021,
"Black-Box Optimization Revisited: Improving Algorithm Selection Wizards through Massive Benchmarking",
IEEE TEVC).
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import Tensor

from gradfree.errors import ConfigError
from gradfree.strategies.adapters.wrapped import finite_losses, from_blob, numpy_global_rng_kept, to_blob
from gradfree.strategies.base import Strategy, check


def import_nevergrad() -> Any:
    """``import nevergrad``, or a :class:`ConfigError` naming the extra to install."""
    try:
        import nevergrad
    except ImportError:
        raise ConfigError("the nevergrad adapter needs nevergrad: pip install 'gradfree[nevergrad]'") from None
    return nevergrad


class NevergradStrategy(Strategy):
    """A nevergrad optimizer as an ask/tell strategy over flat vectors.

    Args:
        num_dims, popsize, init_mean, sigma, seed: see :class:`Strategy`; ``sigma`` is the parametrization's
            mutation scale (default 0.1); ``popsize`` is nevergrad's ``num_workers``.
        method: a name in ``nevergrad.optimizers.registry`` (default "NGOpt"; e.g. "CMA", "DiagonalCMA",
            "TwoPointsDE", "OnePlusOne").
        budget: the evaluation budget nevergrad is told (``NGOpt`` picks its algorithm from it); ``None``
            for none.

    Shapes:
        ``ask() -> (P, D)``; ``tell((P,))``; ``mean: (D,)``.
    """

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
        method: str = "NGOpt",
        budget: int | None = None,
    ) -> None:
        super().__init__(num_dims, popsize, init_mean=init_mean, sigma=sigma, seed=seed)
        ng = import_nevergrad()
        import numpy as np

        registry = ng.optimizers.registry
        if method not in registry:
            close = difflib.get_close_matches(method, list(registry), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown nevergrad method {method!r}.{hint} See nevergrad.optimizers.registry.")
        check(budget is None or (isinstance(budget, int) and budget > 0),
              f"budget must be a positive int or None, got {budget!r}")
        self._hyper.update(method=method, budget=budget)
        init = self._mean.detach().cpu().double().numpy()
        parametrization = ng.p.Array(init=init).set_mutation(sigma=float(sigma))
        parametrization.random_state = np.random.RandomState(self.seed % 2**32)
        with numpy_global_rng_kept():
            self._optimizer = registry[method](parametrization=parametrization, budget=budget,
                                               num_workers=popsize)
        selector = getattr(ng.optimization.optimizerlib, "NGOptBase", None)
        if budget is None and selector is not None and isinstance(self._optimizer, selector):
            raise ConfigError(f"nevergrad's {method} picks its algorithm from the budget: pass budget=<evaluations> "
                              "(e.g. --opt budget=20000)")
        self._pending: list[Any] = []  # asked, not yet told candidates (nevergrad Parameters)

    @property
    def wrapped(self) -> Any:
        """The nevergrad optimizer itself."""
        return self._optimizer

    def _sample(self, gen_seed: int) -> Tensor:
        # nevergrad draws from its own seeded RandomState; gen_seed is not needed.
        import numpy as np

        if not self._pending:
            try:
                with numpy_global_rng_kept():
                    self._pending = [self._optimizer.ask() for _ in range(self.popsize)]
            except RuntimeError as exc:
                if "Mean shift samples" not in str(exc):
                    raise
                raise ConfigError(
                    f"nevergrad's {self._hyper['method']} failed inside pycma ('Mean shift samples are expected but "
                    "missing'): nevergrad's CMA wrapper asked pycma for a new population before telling the last "
                    "one, which pycma's two-point step-size adaptation (dimension >= 300) refuses. Use another "
                    "method (e.g. method=TwoPointsDE), a popsize of at least nevergrad's CMA population, or the "
                    "'pycma' / 'sep-cma' optimizers") from None
        values = np.stack([c.value for c in self._pending])
        return torch.as_tensor(values).to(device=self.device, dtype=self.dtype)

    def _update(self, population: Tensor, losses: Tensor) -> None:
        with numpy_global_rng_kept():
            for candidate, loss in zip(self._pending, finite_losses(losses), strict=True):
                self._optimizer.tell(candidate, loss)
            value = self._optimizer.recommend().value
        self._pending = []
        self._mean = torch.as_tensor(value).to(device=self.device, dtype=self.dtype)

    def state_dict(self) -> dict[str, Any]:
        """The base state plus the pickled optimizer and pending candidates (``"wrapped"``, uint8)."""
        return {**super().state_dict(), "wrapped": to_blob((self._optimizer, self._pending))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the optimizer continues with its saved RNG state."""
        super().load_state_dict(state)
        self._optimizer, self._pending = from_blob(state["wrapped"], what="a pickled nevergrad optimizer")
