"""Optimizer options, declared once: every registered optimizer has an ``Options`` dataclass.

The dataclass is the single declaration of what an optimizer takes: its fields (with defaults) are what
:func:`gradfree.optim.build_optimizer` and ``gradfree train --opt KEY=VALUE`` accept, its ``__post_init__``
checks the values, and ``gradfree list optimizers --options`` prints it. A misspelt option fails when the
optimizer is built, with the list of valid ones, never at the first step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from gradfree.errors import ConfigError

T = TypeVar("T")


def option_names(options_cls: type[Any]) -> list[str]:
    """The option names of an ``Options`` dataclass, in declaration order."""
    return [f.name for f in dataclasses.fields(options_cls)]


def option_defaults(options_cls: type[Any]) -> dict[str, Any]:
    """Each option's default (``dataclasses.MISSING`` for a required one)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(options_cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = dataclasses.MISSING
    return out


def build_options(options_cls: type[T], owner: str, values: Mapping[str, Any]) -> T:
    """``options_cls(**values)``; an unknown name or a bad value is a :class:`ConfigError` naming ``owner``."""
    known = option_names(options_cls)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{owner} takes no option {', '.join(unknown)}; it takes: {', '.join(known)}")
    try:
        return options_cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {exc}") from None


def check(ok: bool, owner: str, message: str) -> None:
    """Raise :class:`ConfigError` ``"{owner}: {message}"`` unless ``ok`` (the value checks of ``__post_init__``)."""
    if not ok:
        raise ConfigError(f"{owner}: {message}")
