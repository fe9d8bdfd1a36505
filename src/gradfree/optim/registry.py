"""The optimizer registry: zeroth-order methods and the gradient baselines, looked up by name.

Each entry's item is an :class:`OptimizerFactory`: called as ``(params, **options) -> torch.optim.Optimizer``,
with its options declared once in an ``Options`` dataclass (:mod:`gradfree.optim.options`). Its ``kind`` tag
says whether the trainer must run backprop ("gradient") or only forward passes ("zeroth-order").
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import torch

from gradfree.errors import ConfigError
from gradfree.optim.options import option_names
from gradfree.registry import Registry


class OptimizerFactory(Protocol):
    """A registered optimizer: an ``Options`` dataclass and ``factory(params, **options)``."""

    Options: type[Any]

    def __call__(self, params: Any, **options: Any) -> torch.optim.Optimizer: ...


OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")

GRADIENT = "gradient"
ZEROTH_ORDER = "zeroth-order"

# Packages whose modules register optimizers; imported on first lookup so `import gradfree` stays light.
METHOD_PACKAGES = ("gradfree.optim", "gradfree.search", "gradfree.strategies.methods")


def load_methods() -> Registry[OptimizerFactory]:
    """Import every package that registers optimizers, and return the complete registry."""
    for package in METHOD_PACKAGES:
        importlib.import_module(package)
    return OPTIMIZERS


def needs_gradient(name: str) -> bool:
    """Whether the optimizer ``name`` consumes ``.grad`` (so the trainer must call ``backward``)."""
    return load_methods().entry(name).tags.get("kind") == GRADIENT


def optimizer_options(name: str) -> type[Any]:
    """The ``Options`` dataclass of the registered optimizer ``name`` (every option it takes, declared once)."""
    return load_methods().get(name).Options


def build_optimizer(name: str, params: Any, **options: Any) -> torch.optim.Optimizer:
    """Build the registered optimizer ``name``; an unknown option or a bad value is a clear :class:`ConfigError`."""
    factory = load_methods().get(name)
    known = option_names(factory.Options)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"optimizer {name!r} takes no option {', '.join(unknown)}; it takes: {', '.join(known)}")
    try:
        return factory(params, **options)
    except ConfigError as exc:
        if name in str(exc):
            raise
        raise ConfigError(f"optimizer {name!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer {name!r}: {exc}") from None
