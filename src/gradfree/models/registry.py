"""Model builders looked up by name; a model spec is ``name:arguments``, e.g. ``mlp:64-32-10:tanh``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from gradfree.errors import ConfigError
from gradfree.models.init import reset_parameters
from gradfree.models.mlp import mlp
from gradfree.registry import Registry

ModelBuilder = Callable[[list[str]], nn.Module]
"""Takes the spec's ':'-separated arguments after the name."""

MODELS: Registry[ModelBuilder] = Registry("model")


def _build_mlp(args: list[str]) -> nn.Module:
    if not 1 <= len(args) <= 2:
        raise ConfigError("mlp spec is mlp:WIDTHS[:ACTIVATION], e.g. mlp:784-32-10 or mlp:64-32-10:tanh")
    return mlp(args[0], activation=args[1] if len(args) == 2 else "relu")


MODELS.add("mlp", _build_mlp, summary="MLP from widths, e.g. mlp:784-32-10[:relu|tanh|gelu...]")


def build_model(spec: str, *, seed: int, input_shape: tuple[int, ...] | None = None,
                num_classes: int | None = None) -> nn.Module:
    """Build the model ``spec`` with weights drawn from ``seed`` and check it fits the data.

    Args:
        spec: ``name:args`` (see :data:`MODELS`).
        seed: seeds the initialisation (the global RNG is not touched).
        input_shape, num_classes: when given, a dry run checks the model maps one input to ``num_classes``.
    """
    name, *args = spec.split(":")
    builder = MODELS.get(name)
    # Layers draw their default init from the global RNG; fork it so building a model leaves it as it was,
    # then re-draw every weight from the run's own generator.
    with torch.random.fork_rng(devices=[]):
        model = builder(args)
    reset_parameters(model, generator=torch.Generator().manual_seed(seed))
    if input_shape is not None and num_classes is not None:
        try:
            with torch.no_grad():
                out = model(torch.zeros(1, *input_shape))
        except RuntimeError as exc:
            raise ConfigError(f"model {spec!r} does not accept inputs of shape {input_shape}: {exc}") from None
        if tuple(out.shape) != (1, num_classes):
            raise ConfigError(f"model {spec!r} outputs {tuple(out.shape[1:])} per input; the task has "
                              f"{num_classes} classes")
    return model
