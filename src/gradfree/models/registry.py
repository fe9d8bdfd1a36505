"""Model builders looked up by name; a model spec is ``name:arguments``, e.g. ``mlp:64-32-10:tanh``."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from gradfree.errors import ConfigError
from gradfree.models import cnn, yolo
from gradfree.models.init import reset_parameters
from gradfree.models.mlp import mlp
from gradfree.registry import Registry


class ModelBuilder(Protocol):
    """``builder(args, *, input_shape, num_classes) -> module``: ``args`` are the spec's ':'-separated
    arguments after the name; ``input_shape`` (one input, e.g. ``(1, 28, 28)``) and ``num_classes`` come from
    the task, or are ``None`` when the model is built without one (the builder then assumes its usual data)."""

    def __call__(self, args: list[str], *, input_shape: tuple[int, ...] | None,
                 num_classes: int | None) -> nn.Module: ...


MODELS: Registry[ModelBuilder] = Registry("model")


def _build_mlp(args: list[str], *, input_shape: tuple[int, ...] | None = None,
               num_classes: int | None = None) -> nn.Module:
    del input_shape, num_classes  # the widths say it all; build_model's dry run checks they fit the task
    if not 1 <= len(args) <= 2:
        raise ConfigError("mlp spec is mlp:WIDTHS[:ACTIVATION], e.g. mlp:784-32-10 or mlp:64-32-10:tanh")
    return mlp(args[0], activation=args[1] if len(args) == 2 else "relu")


MODELS.add("mlp", _build_mlp, summary="MLP from widths, e.g. mlp:784-32-10[:relu|tanh|gelu...]")
MODELS.add("conv1", cnn.build_conv1, summary="one conv layer + linear head (RSO study), conv1[:CHANNELS=16]")
MODELS.add("lenet", cnn.build_lenet, summary="LeNet-5 style (61.7k params on 28x28), lenet[:small|:C1-C2-F1-F2]")
MODELS.add("cifar", cnn.build_cifar, summary="compact CIFAR CNN 32-32-pool-64-64-pool-fc, cifar[:WIDTH=1][:bn]")
MODELS.add("yolo", yolo.build_yolo, summary="one-class YOLO-style detector (stride 8), yolo:tiny|small", output="grid")


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
        model = builder(args, input_shape=input_shape, num_classes=num_classes)
    reset_parameters(model, generator=torch.Generator().manual_seed(seed))
    if input_shape is not None and num_classes is not None:
        try:
            # In eval mode, so that the dry run leaves batch-norm statistics as they were.
            with torch.no_grad():
                out = model.eval()(torch.zeros(1, *input_shape))
        except RuntimeError as exc:
            raise ConfigError(f"model {spec!r} does not accept inputs of shape {input_shape}: {exc}") from None
        finally:
            model.train()
        if tuple(out.shape) != (1, num_classes) and MODELS.entry(name).tags.get("output") != "grid":  # detectors
            raise ConfigError(f"model {spec!r} outputs {tuple(out.shape[1:])} per input; the task has "
                              f"{num_classes} classes")
    return model
