"""The ask/tell contract shared by all population strategies, and the bookkeeping they share.

A strategy proposes a population of flat parameter vectors (``ask``), is told their losses (``tell``, lower is
better) and updates its search distribution. It never knows where the population is evaluated: a local loop, a
batched forward pass or remote workers that rebuild members from a :class:`PopulationSpec`.

The base class does everything that is not the algorithm: argument checks, the generation seed, ask/tell
order, NaN handling (non-finite losses rank last and are counted in ``rejected``), best-so-far, counters,
``state_dict``/``load_state_dict`` and pickling. An algorithm file implements ``_sample`` and ``_update`` and
lists its state tensors in ``_state_attrs``.

Randomness: each strategy owns one CPU ``torch.Generator`` seeded with ``seed``; it is used only to draw one
63-bit generation seed per generation, from which every random number of that generation is derived (see
:mod:`gradfree.strategies.noise`). The global RNG is never touched.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradfree.errors import ConfigError, GradfreeError
from gradfree.registry import Registry
from gradfree.strategies.noise import PopulationSpec, gaussian_rows


class AskTellError(GradfreeError, RuntimeError):
    """``tell`` was called without a pending ``ask``."""


class Strategy(ABC):
    """Base class of ask/tell strategies over flat vectors, minimising a loss.

    Args:
        num_dims: length ``D`` of a parameter vector.
        popsize: members per generation ``P`` (at least 2).
        init_mean: starting search centre ``(D,)``; its device and dtype are the strategy's. Default zeros,
            float32, CPU.
        sigma: initial sampling scale (step size / standard deviation); its exact meaning is the algorithm's.
        seed: seed of the strategy's own generator.

    Attributes (read-only):
        mean: the current search centre ``(D,)``, the vector to deploy.
        best_x, best_loss: best member over all evaluated generations (``mean`` and ``inf`` before any tell).
        generation: completed ``tell`` calls; evaluations: members told; rejected: non-finite losses told.
    """

    _state_attrs: ClassVar[tuple[str, ...]] = ()  # tensor attributes holding the algorithm's state

    def __init__(
        self,
        num_dims: int,
        popsize: int,
        *,
        init_mean: Tensor | None = None,
        sigma: float = 0.1,
        seed: int = 0,
    ) -> None:
        if not isinstance(num_dims, int) or num_dims < 1:
            raise ConfigError(f"num_dims must be a positive int, got {num_dims!r}")
        if not isinstance(popsize, int) or popsize < 2:
            raise ConfigError(f"popsize must be an int >= 2, got {popsize!r}")
        if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"sigma must be a finite float > 0, got {sigma!r}")
        if init_mean is None:
            init_mean = torch.zeros(num_dims)
        if init_mean.shape != (num_dims,) or not init_mean.is_floating_point():
            raise ConfigError(
                f"init_mean must be a floating tensor of shape ({num_dims},), got "
                f"{init_mean.dtype} {tuple(init_mean.shape)}"
            )
        self.num_dims, self.popsize, self.seed = num_dims, popsize, int(seed)
        self.device, self.dtype = init_mean.device, init_mean.dtype
        self._mean = init_mean.detach().clone()
        self._hyper: dict[str, Any] = {"sigma": float(sigma)}
        self._gen = torch.Generator().manual_seed(self.seed)
        self.generation = self.evaluations = self.rejected = 0
        self.best_loss = math.inf
        self.best_x = self._mean.clone()
        self.pending_seed: int | None = None
        self._population: Tensor | None = None
        self._cache: dict[str, Tensor] = {}  # per-generation scratch (e.g. noise), rebuilt from the seed

    # ---- what an algorithm implements ---------------------------------------------------------------
    @abstractmethod
    def _sample(self, gen_seed: int) -> Tensor:
        """The population ``(P, D)`` of generation ``gen_seed``; may fill ``self._cache``. Deterministic."""

    @abstractmethod
    def _update(self, population: Tensor, losses: Tensor) -> None:
        """Update the distribution; ``losses`` ``(P,)`` float64 CPU, non-finite ones replaced by ``+inf``."""

    @property
    def scale(self) -> float | Tensor | None:
        """Sampling scale when members are ``mean + scale * eps_i`` (float or ``(D,)``), else ``None``."""
        return None

    _antithetic = False

    # ---- the ask/tell contract ----------------------------------------------------------------------
    @property
    def mean(self) -> Tensor:
        """The current search centre ``(D,)``: the vector to deploy."""
        return self._mean

    def ask(self) -> Tensor:
        """The population to evaluate, shape ``(P, D)``; asking again before ``tell`` returns the same one.

        Do not modify the returned tensor in place: ``tell`` uses it.
        """
        seed = self._draw_seed() if self.pending_seed is None else self.pending_seed
        if self._population is None:
            self._cache = {}
            self._population = self._sample(seed)
        return self._population

    def _draw_seed(self) -> int:
        """Start a generation: draw its 63-bit seed from the own generator; the population is built lazily."""
        self.pending_seed = int(torch.randint(0, 2**63 - 1, (1,), generator=self._gen).item())
        self._population, self._cache = None, {}
        return self.pending_seed

    def tell(self, losses: Tensor | Sequence[float]) -> None:
        """Report the losses ``(P,)`` of the last asked population and update the search distribution.

        NaN/inf losses rank worst and are counted in ``rejected``.
        """
        if self.pending_seed is None:
            raise AskTellError(
                "tell() needs a population from ask() first; call ask(), evaluate, then tell()"
            )
        values = torch.as_tensor(losses).detach().to("cpu", torch.float64).reshape(-1)
        if values.shape[0] != self.popsize:
            raise ConfigError(f"tell() expects {self.popsize} losses (one per member), got {values.shape[0]}")
        population = self.ask()  # rebuilds the population after load_state_dict with a pending ask
        finite = torch.isfinite(values)
        self.rejected += int((~finite).sum())
        values = torch.where(finite, values, torch.full_like(values, math.inf))
        i = int(torch.argmin(values))
        if values[i] < self.best_loss:
            self.best_loss, self.best_x = float(values[i]), population[i].clone()
        self._update(population, values)
        self.generation += 1
        self.evaluations += self.popsize
        self.pending_seed, self._population, self._cache = None, None, {}

    # ---- seeds and remote members -------------------------------------------------------------------
    def noise(self, gen_seed: int, start: int, stop: int) -> Tensor:
        """Rows ``[start, stop)`` of generation ``gen_seed``'s standard normal block, ``(stop - start, D)``.

        Identical to the same rows of any larger request, so a worker that knows only ``gen_seed`` and its
        index range regenerates exactly the strategy's numbers (see :mod:`gradfree.strategies.noise`).
        """
        return gaussian_rows(gen_seed, start, stop, self.num_dims, dtype=self.dtype, device=self.device)

    def population_spec(self) -> PopulationSpec | None:
        """Seed-only description of the pending population (starting a generation if none is pending).

        Members are ``spec.members(strategy.mean, strategy.scale, start, stop)``, bit-identical to the rows of
        ``ask()``, so remote workers can build and evaluate them while the driver never materialises the
        population until ``tell`` (which needs it for the update and best-so-far). Strategies whose members
        are not of the form ``mean + scale * eps_i`` return ``None``.
        """
        if self.scale is None:
            return None
        seed = self._draw_seed() if self.pending_seed is None else self.pending_seed
        return PopulationSpec(seed, self.popsize, self._antithetic, self._line(seed))

    def _line(self, gen_seed: int) -> Tensor | None:
        """The perturbation of member 0 when members 0 and 1 are a mirrored pair along a chosen line (two-point
        step-size adaptation), else ``None``; a pure function of the state and ``gen_seed``."""
        return None

    def _spec_members(self, gen_seed: int) -> Tensor:
        """``mean + scale * eps``: the sampler of Gaussian strategies; caches ``eps`` as ``_cache['eps']`` (and
        the line, if any, as ``_cache['line']``)."""
        line = self._line(gen_seed)
        spec = PopulationSpec(gen_seed, self.popsize, self._antithetic, line)
        eps = spec.noise(0, self.popsize, self.num_dims, dtype=self.dtype, device=self.device)
        self._cache["eps"] = eps
        if line is not None:
            self._cache["line"] = line
        scale = self.scale
        assert scale is not None
        return self._mean + scale * eps

    # ---- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only: hyper-parameters, generator, counters, best-so-far, pending ask."""
        return {
            "strategy": type(self).__name__,
            "num_dims": self.num_dims,
            "popsize": self.popsize,
            "hyper": dict(self._hyper),
            "generator": self._gen.get_state(),
            "generation": self.generation,
            "evaluations": self.evaluations,
            "rejected": self.rejected,
            "best_loss": self.best_loss,
            "best_x": self.best_x.clone(),
            "pending_seed": self.pending_seed,
            "mean": self._mean.clone(),
            "algo": {name: _copy(getattr(self, name)) for name in self._state_attrs},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into a strategy built with the same arguments; resumes bit for bit."""
        mine = (type(self).__name__, self.num_dims, self.popsize, self._hyper)
        theirs = (state["strategy"], state["num_dims"], state["popsize"], state["hyper"])
        if mine != theirs:
            raise ConfigError(
                f"state_dict is for {theirs}, this strategy is {mine}; build it with those args"
            )
        self._gen.set_state(state["generator"].clone())
        self.generation, self.evaluations = state["generation"], state["evaluations"]
        self.rejected, self.best_loss = state["rejected"], state["best_loss"]
        self.best_x = self._load(state["best_x"])
        self.pending_seed, self._population, self._cache = state["pending_seed"], None, {}
        self._mean = self._load(state["mean"])
        for name in self._state_attrs:
            value = state["algo"][name]
            setattr(self, name, self._load(value) if isinstance(value, Tensor) else value)

    def _load(self, t: Tensor) -> Tensor:
        return t.detach().clone().to(self.device)

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_gen"], d["_population"], d["_cache"] = self._gen.get_state(), None, {}
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        gen = torch.Generator()
        gen.set_state(d["_gen"])
        self.__dict__.update(d, _gen=gen)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self._hyper.items())
        return f"{type(self).__name__}(num_dims={self.num_dims}, popsize={self.popsize}, {hyper})"


def _copy(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, Tensor) else value


def check(ok: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``ok``: the argument check of algorithm files."""
    if not ok:
        raise ConfigError(message)


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
"""Registered strategy classes by name; each is ``cls(num_dims, popsize, *, init_mean, sigma, seed, ...)``."""
