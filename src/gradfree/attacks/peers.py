"""The library users would pick instead: the Adversarial Robustness Toolbox's ``ZooAttack``, same model, same
images, same metrics.

ART (Nicolae et al. 2018, ``adversarial-robustness-toolbox``, the ``gradfree[peers]`` extra) implements ZOO
(Chen et al. 2017) with the ZOO-ADAM solver. :func:`art_zoo` wraps a model in ART's ``PyTorchClassifier``
(pixels in ``[0, 1]``, logits out) and runs ``ZooAttack`` on each image in turn (ART's own ``batch_size=1``
default), counting every row the model is asked to score while it attacks that image — ART's queries, exactly
— and timing it. The adversarial images are verified and measured exactly as ours are, so the
:class:`~gradfree.attacks.base.AttackResult` it returns summarises with :mod:`gradfree.attacks.metrics`.

Two settings are named: :data:`ART_DEFAULTS` (ART's own: ``initial_const=1e-3``, ``max_iter=10``, resize and
importance sampling on) and :data:`ART_BEST` (``initial_const=10``, ``max_iter=100``, ``use_resize=False``:
the settings under which ART's ZOO succeeds on a small MNIST CNN). Compare at the best settings, and report
both.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from gradfree.attacks.base import AttackResult, Goal, distances, margins
from gradfree.errors import ConfigError
from gradfree.objective.input_space import evaluation_mode

ART_DEFAULTS: dict[str, Any] = {}
"""ART's ZooAttack defaults (``initial_const=1e-3``, ``max_iter=10``, ``binary_search_steps=1``,
``use_resize=True``, ``use_importance=True``, ``nb_parallel=128``)."""

ART_BEST: dict[str, Any] = {"initial_const": 10.0, "max_iter": 100, "use_resize": False}
"""The settings under which ART's ZooAttack succeeds on a small MNIST CNN (its defaults give 0% there)."""

ZOO_AT_ART_LABEL = "zoo-adam (ART's settings)"
"""The label of the suites' ZOO-ADAM trials at ART's best settings
(:data:`gradfree.attacks.suites.ZOO_AT_ART_SETTINGS`): a wall-time comparison with ART at equal work."""


class _Counting(nn.Module):
    """Counts the rows the wrapped model scores."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0

    def forward(self, x: Tensor) -> Tensor:
        self.rows += int(x.shape[0])
        return self.model(x)


def art_zoo(model: nn.Module, x: Tensor, labels: Tensor, *, targets: Tensor | None = None,
            settings: dict[str, Any] | None = None, num_classes: int | None = None,
            label: str = "art-zoo") -> AttackResult:
    """ART's ``ZooAttack`` on ``model`` and the images ``x``, one image at a time, as an :class:`AttackResult`.

    Args:
        model: ``(B, *shape) -> (B, C)`` logits on pixels in ``[0, 1]`` (not modified; ART sees it through a
            counting wrapper).
        x: ``(N, *shape)`` images. labels: ``(N,)`` true labels. targets: target labels (targeted attack).
        settings: ``ZooAttack`` keyword arguments (default :data:`ART_BEST`); ``verbose`` is always off.
        num_classes: the model's classes (default: measured from one forward).
        label: the result's ``method``.

    Raises:
        ConfigError: ART is not installed (``pip install gradfree[peers]``).
    """
    try:
        from art.attacks.evasion import ZooAttack
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        raise ConfigError("ART is not installed: pip install 'gradfree[peers]' (adversarial-robustness-toolbox)") \
            from None
    options = dict(ART_BEST if settings is None else settings)
    counting = _Counting(model)
    shape = tuple(x.shape[1:])
    if num_classes is None:
        with torch.no_grad(), evaluation_mode(model):
            num_classes = int(model(x[:1].float()).shape[1])
    classifier = PyTorchClassifier(model=counting, loss=nn.CrossEntropyLoss(), input_shape=shape,
                                   nb_classes=num_classes, clip_values=(0.0, 1.0), device_type="cpu")
    attack = ZooAttack(classifier, targeted=targets is not None, verbose=False, **options)
    adv = torch.empty_like(x, dtype=torch.float32)
    queries = torch.zeros(x.shape[0], dtype=torch.int64)
    start = time.perf_counter()
    with evaluation_mode(model):
        for i in range(x.shape[0]):
            before = counting.rows
            goal_labels = (targets if targets is not None else labels)[i:i + 1].cpu().numpy()
            out = attack.generate(x[i:i + 1].detach().cpu().float().numpy(), y=goal_labels)
            adv[i] = torch.from_numpy(out[0])
            queries[i] = counting.rows - before
    wall = time.perf_counter() - start
    x0 = x.detach().cpu().float()
    with torch.no_grad(), evaluation_mode(model):
        logits = model(adv)
    success = margins(logits, labels.cpu(), None if targets is None else targets.cpu()) > 0
    inside = (adv.flatten(1).amin(dim=1) >= 0) & (adv.flatten(1).amax(dim=1) <= 1)
    success &= inside
    x_adv = torch.where(success.reshape(-1, *[1] * len(shape)), adv, x0)
    delta = (x_adv - x0).to(torch.float64)
    return AttackResult(method=label, goal=Goal(targeted=targets is not None, norm="l2"), access="logits",
                        budget=None, x=x0, x_adv=x_adv, labels=labels.cpu(),
                        targets=None if targets is None else targets.cpu(), success=success,
                        predicted=logits.argmax(dim=1), queries=queries,
                        first_success=torch.where(success, queries, -1), l2=distances(delta, "l2"),
                        linf=distances(delta, "linf"), wall_time=wall, options=options,
                        info={"library": "adversarial-robustness-toolbox", "images_one_at_a_time": True})
