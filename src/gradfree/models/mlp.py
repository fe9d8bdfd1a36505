"""Multi-layer perceptrons built from a width spec such as ``784-32-10``."""

from __future__ import annotations

from torch import nn

from gradfree.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def parse_widths(spec: str) -> list[int]:
    """``"784-32-10"`` -> ``[784, 32, 10]``; at least an input and an output width."""
    try:
        widths = [int(w) for w in spec.split("-")]
    except ValueError:
        raise ConfigError(f"bad MLP widths {spec!r}: write layer widths joined by '-', e.g. 784-32-10") from None
    if len(widths) < 2 or any(w <= 0 for w in widths):
        raise ConfigError(f"bad MLP widths {spec!r}: need at least two positive widths, e.g. 784-32-10")
    return widths


def mlp(spec: str, *, activation: str = "relu") -> nn.Sequential:
    """A ``Sequential`` of ``Flatten``, ``Linear`` layers and ``activation`` between them (none after the last).

    Args:
        spec: widths joined by '-', input first, e.g. ``"784-32-10"`` (25,450 parameters).
        activation: one of :data:`ACTIVATIONS`.
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
    widths = parse_widths(spec)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)
