"""Adversarial attacks on classifiers: black-box (score- and label-based) and white-box references.

Every attack is registered in :data:`ATTACKS` and called the same way::

    result = build_attack("zoo-adam", iterations=500)(model, x, labels, targets=None, norm="l2",
                                                     budget=None, access="logits", seed=0)

on pixels in ``[0, 1]`` (see :mod:`gradfree.victims` for trained networks that take pixels). The result is an
:class:`AttackResult`: the adversarial images, a verified success mask, the exact queries each image spent,
distortions and wall time; :mod:`gradfree.attacks.metrics` summarises it.

==================  =====================  ===========  =================================================
name                access                 norms        reference
==================  =====================  ===========  =================================================
``zoo-adam``        logits, probabilities  l2           Chen et al. 2017 (ZOO), ZOO-ADAM
``zoo-newton``      logits, probabilities  l2           Chen et al. 2017 (ZOO), ZOO-Newton
``nes``             logits, probabilities  linf, l2     Ilyas et al. 2018
``zo-signsgd``      logits, probabilities  linf         Liu et al. 2019
``bandits-td``      logits, probabilities  linf, l2     Ilyas et al. 2019
``square``          logits, probabilities  linf, l2     Andriushchenko et al. 2020
``hopskipjump``     label                  l2, linf     Chen et al. 2020
``pgd``             white-box              linf, l2     Madry et al. 2018
``cw-l2``           white-box              l2           Carlini & Wagner 2017
==================  =====================  ===========  =================================================
"""

from __future__ import annotations

from gradfree.attacks import bandits, cw, hopskipjump, nes, pgd, square, zo_sign, zoo  # noqa: F401  (register)
from gradfree.attacks.base import ATTACKS, WHITE_BOX, Attack, AttackResult, Goal, Session, build_attack

__all__ = ["ATTACKS", "WHITE_BOX", "Attack", "AttackResult", "Goal", "Session", "build_attack"]
