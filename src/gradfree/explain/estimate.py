"""Antithetic Gaussian gradient estimates with orthogonal directions, for the zeroth-order explanations.

The estimate ``g = (1/k) sum_i (f(p + mu u_i) - f(p - mu u_i)) / (2 mu) u_i`` is unbiased for the gradient of
the Gaussian smoothing ``f_mu`` whenever every ``u_i`` is marginally ``N(0, I)`` (Nesterov & Spokoiny 2017);
the ``u_i`` need not be independent. Drawn **orthogonal** within blocks of ``min(k, D)`` — a Gaussian matrix
orthogonalised by QR (Haar-distributed frame), each row rescaled to the norm of an independent Gaussian
vector, so the marginals stay ``N(0, I)`` — the estimate's linear part has variance
``((D + 2) / k - 1) |g|^2`` instead of ``(D + 1) |g|^2 / k`` for independent directions: at ``k = D`` only
``2 |g|^2 / D`` is left, from the rows' random norms (every block spans the space, and the directional
derivatives along an orthogonal basis sum back to the gradient). This is
the orthogonal exploration of Choromanski et al. (2018, Sec. 3.1), applied to SmoothGrad's estimator.
``orthogonal=False`` gives independent directions (the estimator of
:func:`gradfree.estimators.directional.directional_estimate`, to which it is then equal in distribution).

References:
    K. Choromanski, M. Rowland, V. Sindhwani, R. E. Turner, A. Weller. "Structured Evolution with Compact
    Architectures for Scalable Policy Optimization." ICML 2018, Sec. 3.1 (orthogonal Gaussian directions).
    Y. Nesterov, V. Spokoiny. "Random gradient-free minimization of convex functions." 2017, Sec. 2.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfree.objective.vector import VectorObjective


def gaussian_directions(count: int, d: int, *, generator: torch.Generator, orthogonal: bool = True,
                        dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """``(count, d)`` directions, each marginally ``N(0, I_d)``; orthogonal within blocks of ``min(count, d)``
    rows when ``orthogonal`` (see the module docstring)."""
    g = torch.randn(count, d, generator=generator, dtype=dtype, device=generator.device)
    if orthogonal and d > 1:
        full = (count // d) * d
        parts = []
        if full:
            parts.append(_orthogonalise(g[:full].reshape(-1, d, d)).reshape(full, d))
        if count > full:
            parts.append(_orthogonalise(g[full:].unsqueeze(0))[0])
        g = torch.cat(parts)
    return g.to(dtype=dtype, device=device)


def _orthogonalise(blocks: Tensor) -> Tensor:
    """Rows of each ``(B, b, d)`` block made orthogonal (a Haar-random frame: QR with the signs of ``R``'s
    diagonal), each keeping its original norm."""
    q, r = torch.linalg.qr(blocks.transpose(1, 2))  # (B, d, b): orthonormal columns spanning each block's rows
    signs = torch.sign(torch.diagonal(r, dim1=1, dim2=2))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return (q * signs.unsqueeze(1)).transpose(1, 2) * blocks.norm(dim=2, keepdim=True)


def antithetic_gradient(objective: VectorObjective, point: Tensor, *, pairs: int, smoothing: float,
                        generator: torch.Generator, orthogonal: bool = True, chunk_size: int = 2048) -> Tensor:
    """``(D,)`` the antithetic estimate over ``pairs`` Gaussian directions at ``point`` ``(D,)``, ``2 * pairs``
    objective rows (in calls of at most ``chunk_size`` rows). A pair with a non-finite score is left out
    (the mean is over the pairs kept; zeros if none is)."""
    d = point.shape[0]
    u = gaussian_directions(pairs, d, generator=generator, orthogonal=orthogonal, dtype=point.dtype,
                            device=point.device)
    grad = torch.zeros_like(point)
    kept = 0
    per_call = max(1, chunk_size // 2)
    for block in u.split(per_call):
        rows = torch.stack([point + smoothing * block, point - smoothing * block], dim=1).reshape(-1, d)
        f = objective(rows).to(point.dtype).reshape(-1, 2)
        ok = torch.isfinite(f).all(dim=1)
        coef = torch.where(ok, (f[:, 0] - f[:, 1]) / (2 * smoothing), torch.zeros_like(f[:, 0]))
        grad += coef @ block
        kept += int(ok.sum())
    return grad / max(kept, 1)
