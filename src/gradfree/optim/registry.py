"""The optimizer registry: zeroth-order methods and the gradient baselines, looked up by name.

Each entry's item is a factory ``(params, **options) -> torch.optim.Optimizer``; its ``kind`` tag says
whether the trainer must run backprop ("gradient") or only forward passes ("zeroth-order").
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import torch

from gradfree.errors import ConfigError
from gradfree.registry import Registry

OptimizerFactory = Callable[..., torch.optim.Optimizer]

OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")

GRADIENT = "gradient"
ZEROTH_ORDER = "zeroth-order"

# Packages whose modules register optimizers; imported on first lookup so `import gradfree` stays light.
METHOD_PACKAGES = ("gradfree.optim", "gradfree.search", "gradfree.strategies.optimizer")


def load_methods() -> Registry[OptimizerFactory]:
    """Import every package that registers optimizers, and return the complete registry."""
    for package in METHOD_PACKAGES:
        importlib.import_module(package)
    return OPTIMIZERS


def needs_gradient(name: str) -> bool:
    """Whether the optimizer ``name`` consumes ``.grad`` (so the trainer must call ``backward``)."""
    return load_methods().entry(name).tags.get("kind") == GRADIENT


def build_optimizer(name: str, params: Any, **options: Any) -> torch.optim.Optimizer:
    """Build the registered optimizer ``name``; unknown options give a clear :class:`ConfigError`."""
    factory = load_methods().get(name)
    accepted, takes_any = _options(factory)
    unknown = [k for k in options if k not in accepted and not takes_any]
    if unknown:
        known = ", ".join(accepted)
        raise ConfigError(f"optimizer {name!r} takes no option {', '.join(unknown)}; it takes: {known}")
    try:
        return factory(params, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer {name!r}: {exc}") from None


def _options(factory: OptimizerFactory) -> tuple[list[str], bool]:
    """The keyword options ``factory`` takes, and whether it takes any keyword at all.

    A class whose ``__init__`` forwards ``**kwargs`` to its base (``ZOSGD(..., **estimation)``) takes the
    base's options too, so they are collected up the class hierarchy until an ``__init__`` without ``**``.
    A base's required parameters (``defaults``, ``update_rule``) are filled in by the subclass, not the user.
    """
    inits = ([vars(c)["__init__"] for c in factory.__mro__ if "__init__" in vars(c)]
             if isinstance(factory, type) else [factory])
    names: list[str] = []
    for depth, init in enumerate(inits):
        parameters = inspect.signature(init).parameters.values()
        names += [p.name for p in parameters if p.name not in ("self", "params", *names)
                  and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
                  and (depth == 0 or p.default is not inspect.Parameter.empty)]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return names, False
    return names, True
