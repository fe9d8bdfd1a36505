"""Small pieces the eps-bounded attacks share: score losses, projected steps, batched estimates.

* :func:`score_loss` — the loss a score-based attack minimises, from what a query returns: the negated
  C&W margin (Carlini & Wagner 2017, f_6) or the cross-entropy form of Ilyas et al. 2018 (targeted:
  ``-log p_t``; untargeted: ``log p_y``);
* :func:`project` — onto the ``eps`` ball around the original and the pixel box (Madry et al. 2018, Sec. 2);
* :func:`descent_step` — steepest descent under the norm: ``-lr sign(g)`` for L-inf, ``-lr g / ||g||_2``
  for L2;
* :func:`antithetic_gaussian` / :func:`sphere_forward` — the multi-image twins of
  :mod:`gradfree.estimators`' ``gaussian`` (central differences) and ``sphere`` (forward differences)
  estimators: the same formulas and scalings, with each image's rows laid out so that all images are scored
  in one forward. They take the losses already computed and return the estimates, so they are pure.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfree.attacks.base import Session

ScoreLoss = Literal["margin", "ce"]
SCORE_LOSSES: tuple[str, ...] = ("margin", "ce")


def score_loss(s: Session, outputs: Tensor, owners: Tensor, kind: str = "margin") -> Tensor:
    """``(R,)`` float64 losses to minimise from score rows: ``-margin`` or the cross-entropy form."""
    if kind == "margin":
        return -s.margins(outputs, owners).to(torch.float64)
    logp = (torch.log(outputs.clamp_min(1e-30)) if s.access == "probabilities"
            else F.log_softmax(outputs, dim=1)).to(torch.float64)
    if s.targets is not None:
        return -logp.gather(1, s.targets[owners].reshape(-1, 1)).squeeze(1)
    return logp.gather(1, s.labels[owners].reshape(-1, 1)).squeeze(1)


def _per_row(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape(-1, *[1] * (like.ndim - 1))


def project(x: Tensor, x0: Tensor, eps: float, norm: str) -> Tensor:
    """``x`` moved into the ``eps`` ball around ``x0`` (rows) and then clipped to ``[0, 1]``.

    For L-inf this is the exact projection onto the intersection; for L2 the radial projection followed by
    the clip (which only shrinks the perturbation), as in the reference attacks.
    """
    delta = x - x0
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        size = torch.linalg.vector_norm(delta.flatten(1), dim=1)
        delta = delta * _per_row(torch.clamp(eps / size.clamp_min(1e-12), max=1.0), delta)
    return (x0 + delta).clamp(0, 1)


def descent_step(x: Tensor, g: Tensor, lr: Tensor | float, norm: str) -> Tensor:
    """One steepest-descent step of size ``lr`` (per row or shared) along ``-g`` under ``norm``."""
    lr_rows = _per_row(torch.as_tensor(lr, dtype=x.dtype, device=x.device).expand(x.shape[0]), x)
    if norm == "linf":
        return x - lr_rows * torch.sign(g)
    size = torch.linalg.vector_norm(g.flatten(1), dim=1).clamp_min(1e-12)
    return x - lr_rows * g / _per_row(size, g)


def antithetic_gaussian(plus: Tensor, minus: Tensor, u: Tensor, sigma: float) -> Tensor:
    """NES's estimate from antithetic pairs: ``g = 1 / (2 sigma q) sum_i (f(x + sigma u_i) - f(x - sigma u_i)) u_i``.

    Args:
        plus, minus: ``(n, q)`` losses at ``x +- sigma u_i``. u: ``(n, q, D)`` Gaussian directions.

    Returns:
        ``(n, D)``: per image, the central-difference Gaussian estimate over its ``q`` directions — equal to
        :mod:`gradfree.estimators`' ``gaussian`` with ``difference="central"`` (Ilyas et al. 2018, Alg. 1,
        with ``n = 2q`` samples).
    """
    coef = (plus - minus) / (2 * sigma * plus.shape[1])
    return torch.einsum("nq,nqd->nd", coef.to(u.dtype), u)


def sphere_forward(center: Tensor, perturbed: Tensor, u: Tensor, mu: float) -> Tensor:
    """ZO-signSGD's estimate: ``g = D / (mu q) sum_j (f(x + mu u_j) - f(x)) u_j``, ``u_j`` uniform on the sphere.

    Args:
        center: ``(n,)`` losses at ``x``. perturbed: ``(n, q)`` losses at ``x + mu u_j``. u: ``(n, q, D)``
            unit directions.

    Returns:
        ``(n, D)``, equal to :mod:`gradfree.estimators`' ``sphere`` estimator with forward differences
        (Liu et al. 2019, eq. 3).
    """
    d = u.shape[2]
    coef = (perturbed - center.unsqueeze(1)) * (d / (mu * perturbed.shape[1]))
    return torch.einsum("nq,nqd->nd", coef.to(u.dtype), u)


def gaussian_directions(n: int, q: int, d: int, *, generator: torch.Generator, dtype: torch.dtype,
                        device: torch.device, sphere: bool = False) -> Tensor:
    """``(n, q, d)`` standard Gaussian directions (unit-norm rows with ``sphere=True``)."""
    u = torch.randn(n, q, d, generator=generator, dtype=dtype, device=device)
    if sphere:
        u = u / torch.linalg.vector_norm(u, dim=2, keepdim=True).clamp_min(1e-12)
    return u
