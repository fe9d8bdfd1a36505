"""Black-box explanations of a classifier's predictions, registered in :data:`EXPLAINERS`.

Zeroth-order methods (the gradient of the class score estimated from queries): ``fd-saliency``,
``zo-smoothgrad``, ``zo-ig``, ``contrastive``; black-box baselines on the same query counter: ``occlusion``,
``rise``, ``kernel-shap``, ``lime``; white-box references by autograd: ``gradient``, ``smoothgrad``,
``integrated-gradients``. Every method has the call shape of :class:`~gradfree.explain.base.Explainer`;
:mod:`gradfree.explain.metrics` scores the maps (deletion and insertion AUC, faithfulness correlation, the
model-randomisation sanity check).
"""

from __future__ import annotations

from gradfree.explain import (  # noqa: F401  (each module registers its method)
    contrastive,
    fd_saliency,
    gradient,
    integrated_gradients,
    kernel_shap,
    lime,
    occlusion,
    rise,
    smoothgrad,
    zo_integrated_gradients,
    zo_smoothgrad,
)
from gradfree.explain.base import EXPLAINERS, Explainer, Explanation, channel_minimum, pixel_maps

__all__ = ["EXPLAINERS", "Explainer", "Explanation", "channel_minimum", "explain", "pixel_maps"]


def explain(method: str, model: object, x: object, **kwargs: object) -> Explanation:
    """Run the registered method ``method`` (see :class:`~gradfree.explain.base.Explainer` for the arguments)."""
    return EXPLAINERS.get(method)(model, x, **kwargs)  # type: ignore[arg-type]
