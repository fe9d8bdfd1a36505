"""Small convolutional networks for 28x28 grey and 32x32 colour images, built from spec strings.

Every network is a plain ``nn.Sequential`` of Conv2d / Linear / ReLU / MaxPool2d / Flatten (and BatchNorm2d
only when asked for), so population evaluation runs them through ``torch.func.functional_call`` + ``vmap``;
BatchNorm in training mode updates its statistics in place and sends population evaluation to the loop.
Input channels, image size and the number of classes come from the task (see
:func:`gradfree.models.build_model`); without a task each builder assumes its usual data.

Specs and parameter counts (10 classes; checked by tests/models/test_model_specs.py):

================  =====================================================  ========  ========
spec              layers                                                 1x28x28   3x32x32
================  =====================================================  ========  ========
``conv1:16``      conv 16@3x3, relu, pool 2, fc                          27,210    36,458
``lenet``         conv 6@5x5, relu, pool, conv 16@5x5, relu, pool,       61,706    62,006
                  fc 120, relu, fc 84, relu, fc
``lenet:small``   the same with widths 4, 12, 80, 56                     30,502    30,702
``cifar:1``       (conv 32@3x3, relu) x2, pool, (conv 64@3x3, relu) x2,  96,362    106,538
                  pool, fc
``cifar:0.25``    the same with 8, 8, 16, 16 channels                    12,002    14,546
``cifar:1:bn``    ``cifar:1`` with BatchNorm2d after each convolution    96,554    106,730
================  =====================================================  ========  ========
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from gradfree.errors import ConfigError

MNIST_SHAPE = (1, 28, 28)
CIFAR_SHAPE = (3, 32, 32)

LENET_WIDTHS = (6, 16, 120, 84)
"""LeNet-5's conv channels and hidden fully connected widths (LeCun et al. 1998)."""

LENET_SMALL_WIDTHS = (4, 12, 80, 56)
"""About two thirds of every LeNet-5 width: ~30k parameters on 28x28 inputs."""


def _pooled(size: int, *, kernel: int, padding: int, what: str) -> int:
    """Side of a square map after a stride-1 convolution and a 2x2 max pool; errors if it vanishes."""
    after = (size + 2 * padding - kernel + 1) // 2
    if after < 1:
        raise ConfigError(f"{what}: an input {size} pixels wide is too small for this network")
    return after


def _image_shape(input_shape: Sequence[int] | None, default: tuple[int, int, int], what: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` of square images; ``default`` when the task gives none."""
    if input_shape is None:
        return default
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"{what} needs square images of shape (C, H, H), e.g. (1, 28, 28) or (3, 32, 32); "
                          f"the task gives inputs of shape {shape} (a flattened task? use an mlp spec)")
    return shape[0], shape[1], shape[2]


def conv1(channels: int = 16, *, input_shape: Sequence[int] | None = None, num_classes: int = 10) -> nn.Sequential:
    """One convolution layer and a linear classifier: the shallowest CNN, for search methods.

    ``Conv2d(C_in, channels, 3) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(channels * S * S, num_classes)``
    with ``S = (H - 2) // 2`` (13 for 28x28).

    The RSO study (R. Tripathi, B. Singh, "RSO: A Gradient Free Sampling Based Approach For Training Deep
    Neural Networks", arXiv:2005.05955, 2020) compares RSO with SGD on networks of 3x3, 16-channel
    convolutions; its released code (github.com/rohun-tripathi/RSO-gradient-free, ``train.py``) builds only
    the 6- and 9-layer ones: convolutions without bias, batch norm, 2x2 average pooling, global average
    pooling and a bias-free linear layer. This is the one-convolution member of that family, with 16 channels
    by default, and two departures: no batch norm, so that population evaluation stays batched (vmap); and
    ReLU, a 2x2 max pool and a linear layer over the whole pooled map instead of global pooling, which after
    a single convolution would leave the classifier 16 averages of linear features and little to learn.
    Biases are kept (PyTorch's default), as in every other model here.
    """
    c, size, _ = _image_shape(input_shape, MNIST_SHAPE, "conv1")
    if channels < 1:
        raise ConfigError(f"conv1 needs at least one channel, got {channels}")
    side = _pooled(size, kernel=3, padding=0, what="conv1")
    return nn.Sequential(
        nn.Conv2d(c, channels, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(channels * side * side, num_classes),
    )


def lenet(widths: Sequence[int] = LENET_WIDTHS, *, input_shape: Sequence[int] | None = None,
          num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 style: two 5x5 convolutions with max pooling, then three fully connected layers.

    ``conv c1@5x5 -> relu -> pool -> conv c2@5x5 -> relu -> pool -> fc f1 -> relu -> fc f2 -> relu -> fc``.
    LeNet-5 was designed for 32x32 inputs; smaller images are zero-padded in the first convolution so its
    output stays 28x28 (padding 2 for MNIST), giving the original 16x5x5 = 400 features before the first
    fully connected layer. ReLU and max pooling replace the original's scaled tanh and trainable subsampling.

    Args:
        widths: ``(c1, c2, f1, f2)``; LeNet-5 is ``(6, 16, 120, 84)`` (61,706 parameters on 28x28).

    Reference: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document
    recognition", Proc. IEEE 86(11), 1998.
    """
    c, size, _ = _image_shape(input_shape, MNIST_SHAPE, "lenet")
    c1, c2, f1, f2 = widths
    padding = max(0, (32 - size + 1) // 2)
    side = _pooled(_pooled(size, kernel=5, padding=padding, what="lenet"), kernel=5, padding=0, what="lenet")
    return nn.Sequential(
        nn.Conv2d(c, c1, 5, padding=padding), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * side * side, f1), nn.ReLU(),
        nn.Linear(f1, f2), nn.ReLU(),
        nn.Linear(f2, num_classes),
    )


def cifar_cnn(width: float = 1.0, *, batch_norm: bool = False, input_shape: Sequence[int] | None = None,
              num_classes: int = 10) -> nn.Sequential:
    """A compact VGG-style CIFAR-10 network: two blocks of two 3x3 convolutions, each block max-pooled.

    ``(conv a -> relu) x2 -> pool -> (conv b -> relu) x2 -> pool -> flatten -> fc`` with ``a = round(32 w)``
    and ``b = round(64 w)`` channels (padding 1, so 32x32 inputs give b x 8 x 8 features). The layout is that
    of the Keras CIFAR-10 example network, without its dropout and its 512-wide hidden layer, so that the
    whole network (106,538 parameters at width 1 on 32x32 inputs) stays within reach of zeroth-order methods.

    Args:
        width: channel multiplier ``w`` > 0.
        batch_norm: a BatchNorm2d after every convolution (whose bias is then dropped). Batch norm in
            training mode makes population evaluation fall back to its loop.
    """
    c, size, _ = _image_shape(input_shape, CIFAR_SHAPE, "cifar")
    if not width > 0:
        raise ConfigError(f"cifar width multiplier must be positive, got {width}")
    a, b = max(1, round(32 * width)), max(1, round(64 * width))
    side = _pooled(_pooled(size, kernel=3, padding=1, what="cifar"), kernel=3, padding=1, what="cifar")

    def conv(c_in: int, c_out: int) -> list[nn.Module]:
        if batch_norm:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]

    return nn.Sequential(
        *conv(c, a), *conv(a, a), nn.MaxPool2d(2),
        *conv(a, b), *conv(b, b), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(b * side * side, num_classes),
    )


# ------------------------------------------------------------------ spec-string builders (see models.registry)


def build_conv1(args: list[str], *, input_shape: Sequence[int] | None = None,
                num_classes: int | None = None) -> nn.Module:
    """``conv1[:C]`` -> :func:`conv1` with ``C`` channels (default 16)."""
    if len(args) > 1:
        raise ConfigError("conv1 spec is conv1[:CHANNELS], e.g. conv1:16")
    channels = _positive_int(args[0], "conv1 channels") if args else 16
    return conv1(channels, input_shape=input_shape, num_classes=num_classes or 10)


def build_lenet(args: list[str], *, input_shape: Sequence[int] | None = None,
                num_classes: int | None = None) -> nn.Module:
    """``lenet``, ``lenet:small`` or ``lenet:C1-C2-F1-F2`` -> :func:`lenet`."""
    usage = "lenet spec is lenet, lenet:small or lenet:C1-C2-F1-F2 (e.g. lenet:6-16-120-84)"
    if len(args) > 1:
        raise ConfigError(usage)
    if not args:
        widths: tuple[int, ...] = LENET_WIDTHS
    elif args[0] == "small":
        widths = LENET_SMALL_WIDTHS
    else:
        parts = args[0].split("-")
        if len(parts) != 4:
            raise ConfigError(f"bad lenet widths {args[0]!r}: {usage}")
        widths = tuple(_positive_int(p, "lenet width") for p in parts)
    return lenet(widths, input_shape=input_shape, num_classes=num_classes or 10)


def build_cifar(args: list[str], *, input_shape: Sequence[int] | None = None,
                num_classes: int | None = None) -> nn.Module:
    """``cifar[:W][:bn]`` -> :func:`cifar_cnn` with width multiplier ``W`` (default 1)."""
    usage = "cifar spec is cifar[:WIDTH][:bn], e.g. cifar:1, cifar:0.5 or cifar:1:bn"
    if len(args) > 2 or (len(args) == 2 and args[1] != "bn"):
        raise ConfigError(usage)
    batch_norm = bool(args) and args[-1] == "bn"
    rest = args[:-1] if batch_norm else args
    width = 1.0
    if rest:
        try:
            width = float(rest[0])
        except ValueError:
            raise ConfigError(f"bad cifar width {rest[0]!r}: {usage}") from None
    return cifar_cnn(width, batch_norm=batch_norm, input_shape=input_shape, num_classes=num_classes or 10)


def _positive_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{what} must be a positive integer, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {text!r}")
    return value
