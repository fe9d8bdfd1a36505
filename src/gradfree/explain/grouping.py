"""Groups of input features that a method perturbs together: coordinates, pixels, grid cells, patches, SLIC.

A 3x32x32 image has 3,072 coordinates; a finite-difference gradient over all of them costs 6,144 queries, and
KernelSHAP or LIME over them would need far more samples than coordinates. Methods instead perturb *groups*
(interpretable features, in LIME's words) and attribute each group's effect to its elements. A grouping is a
label per input element:

* ``coordinates`` — every element alone (``D`` groups): the exact coordinate gradient;
* ``pixels`` — every pixel with all its channels (``H * W`` groups);
* ``grid`` or ``grid:K`` — about ``K`` rectangular cells (``rows x cols`` with cell edges spread evenly, so
  any ``K`` fits a budget, not only squares of a divisor); without ``K`` the method picks the most its budget
  pays for;
* ``patches:P`` — square ``P x P`` patches (the last row and column may be narrower);
* ``slic`` or ``slic:K`` — about ``K`` SLIC superpixels (Achanta et al. 2012): k-means on colour and position
  from a grid of seeds, each pixel searching only the centres within twice the seed interval, then every
  segment's disconnected fragments merged into a neighbour. Colours are the input's channels scaled to
  ``[0, 1]`` per image (the paper works in CIELAB).

Spatial groupings need images ``(C, H, W)``; every group covers all channels of its pixels. For flat inputs
``(D,)``, ``grid:K`` and ``patches:P`` are contiguous runs of features.

Reference: R. Achanta, A. Shaji, K. Smith, A. Lucchi, P. Fua, S. Süsstrunk. "SLIC Superpixels Compared to
State-of-the-Art Superpixel Methods." IEEE TPAMI 34(11), 2012, Sec. 3 (Algorithm 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gradfree.errors import ConfigError

GROUPINGS: tuple[str, ...] = ("coordinates", "pixels", "grid", "patches", "slic")


@dataclass(frozen=True)
class Grouping:
    """A grouping kind and its size: ``grid`` and ``slic`` take a target count, ``patches`` a side."""

    kind: str
    size: int | None = None

    def __str__(self) -> str:
        return self.kind if self.size is None else f"{self.kind}:{self.size}"


@dataclass(frozen=True)
class Segments:
    """The groups of a batch.

    Attributes:
        labels: ``(N, *input_shape)`` int64, the group of every element, ``0 .. counts[i] - 1`` for input
            ``i`` (each label used).
        counts: ``(N,)`` int64, groups per input.
    """

    labels: Tensor
    counts: Tensor

    def one_hot(self, i: int) -> Tensor:
        """``(counts[i], D)`` float, row ``g`` the indicator of group ``g`` of input ``i`` (flattened)."""
        flat = self.labels[i].reshape(-1)
        g = int(self.counts[i])
        out = torch.zeros(g, flat.numel(), dtype=torch.float32, device=flat.device)
        out[flat, torch.arange(flat.numel(), device=flat.device)] = 1.0
        return out

    def sizes(self, i: int) -> Tensor:
        """``(counts[i],)`` elements in each group of input ``i``."""
        return torch.bincount(self.labels[i].reshape(-1), minlength=int(self.counts[i]))


def parse_grouping(spec: str | Grouping) -> Grouping:
    """A :class:`Grouping` from ``"kind"`` or ``"kind:N"`` (see the module docstring)."""
    if isinstance(spec, Grouping):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"grouping must be a string such as 'grid:64', got {spec!r}")
    kind, _, size = spec.partition(":")
    if kind not in GROUPINGS:
        raise ConfigError(f"grouping must be one of {', '.join(GROUPINGS)} (with ':N' for grid, patches, "
                          f"slic), got {spec!r}")
    if not size:
        if kind == "patches":
            raise ConfigError("patches needs a side, e.g. patches:4")
        return Grouping(kind)
    if kind in ("coordinates", "pixels") or not size.isdigit() or int(size) < 1:
        raise ConfigError(f"bad grouping {spec!r}: grid:K, patches:P and slic:K take a positive integer")
    return Grouping(kind, int(size))


def segment(x: Tensor, grouping: str | Grouping, *, max_groups: int | None = None,
            compactness: float = 0.1, iterations: int = 10) -> Segments:
    """Group the elements of every input of ``x`` ``(N, *shape)``.

    Args:
        grouping: see the module docstring.
        max_groups: the most groups a method can pay for; a ``grid`` or ``slic`` without a size gets this
            many, a grouping that needs more is a :class:`ConfigError` that says so.
        compactness, iterations: SLIC's ``m`` (weight of distance in space against distance in colour, for
            colours in ``[0, 1]``) and its number of k-means passes.
    """
    g = parse_grouping(grouping)
    n, shape = x.shape[0], tuple(x.shape[1:])
    spatial = len(shape) == 3
    if g.kind == "coordinates":
        labels = torch.arange(x[0].numel(), device=x.device).reshape(shape).expand(n, *shape).clone()
        return _checked(Segments(labels, torch.full((n,), x[0].numel(), dtype=torch.int64)), g, max_groups)
    if not spatial and g.kind in ("pixels", "slic"):
        raise ConfigError(f"grouping {g.kind!r} needs images (C, H, W); inputs here have shape {shape}")
    if g.kind == "slic":
        k = g.size if g.size is not None else _need(max_groups, g)
        per = [slic(img, segments=k, compactness=compactness, iterations=iterations) for img in x]
        labels = torch.stack(per).unsqueeze(1).expand(n, *shape).clone()
        return _checked(Segments(labels, labels.reshape(n, -1).amax(dim=1).cpu() + 1), g, max_groups)
    h, w = (shape[1], shape[2]) if spatial else (1, shape[0])
    if g.kind == "pixels":
        rows, cols = h, w
    elif g.kind == "patches":
        assert g.size is not None
        rows, cols = math.ceil(h / g.size) if spatial else 1, math.ceil(w / g.size)
    else:
        rows, cols = grid_shape(h, w, g.size if g.size is not None else _need(max_groups, g))
    cell = _cells(h, rows, x.device, side=g.size if g.kind == "patches" else None).reshape(-1, 1) * cols + \
        _cells(w, cols, x.device, side=g.size if g.kind == "patches" else None).reshape(1, -1)
    labels = (cell.reshape(1, h, w).expand(shape[0], h, w) if spatial else cell.reshape(shape))
    labels = labels.unsqueeze(0).expand(n, *shape).clone()
    return _checked(Segments(labels, torch.full((n,), rows * cols, dtype=torch.int64)), g, max_groups)


def grid_shape(h: int, w: int, cells: int) -> tuple[int, int]:
    """``(rows, cols)`` with ``rows * cols <= cells``, capped at ``(h, w)``: the most square cells among the
    grids with at least 90% of the most cells that fit."""
    cells = max(1, min(cells, h * w))
    options = [(rows, min(w, cells // rows)) for rows in range(1, h + 1) if cells // rows >= 1]
    most = max(r * c for r, c in options)
    fit = [(abs(math.log((h / r) / (w / c))), -r * c, r, c) for r, c in options if r * c >= 0.9 * most]
    _, _, rows, cols = min(fit)
    return rows, cols


def _cells(length: int, parts: int, device: torch.device, *, side: int | None) -> Tensor:
    """``(length,)`` the part of each position: ``parts`` runs with evenly spread edges (or of ``side``)."""
    pos = torch.arange(length, device=device)
    if side is not None:
        return pos // side
    return (pos * parts) // length


def _need(max_groups: int | None, g: Grouping) -> int:
    if max_groups is None:
        raise ConfigError(f"grouping {g.kind!r} without a size needs a budget to size it; give {g.kind}:N")
    return max_groups


def _checked(seg: Segments, g: Grouping, max_groups: int | None) -> Segments:
    if max_groups is not None and int(seg.counts.max()) > max_groups:
        raise ConfigError(f"grouping {g} makes {int(seg.counts.max())} groups but the query budget pays for "
                          f"{max_groups}; raise the queries or choose a coarser grouping (e.g. grid:{max_groups})")
    return seg


def slic(image: Tensor, *, segments: int, compactness: float = 0.1, iterations: int = 10) -> Tensor:
    """SLIC superpixels of one image ``(C, H, W)``: ``(H, W)`` int64 labels ``0 .. K' - 1`` with ``K' <=
    segments`` (Achanta et al. 2012, Algorithm 1; connectivity enforced afterwards).

    Distances are ``sqrt(d_colour^2 + (d_space / S)^2 m^2)`` with ``S`` the seed interval and ``m`` the
    compactness, colours scaled to ``[0, 1]`` per image. Each pixel compares itself with the centres seeded
    within two grid cells of it and no farther than ``2 S`` (the paper's ``2S x 2S`` search window).
    """
    c, h, w = image.shape
    device = image.device
    flat = image.reshape(c, -1).T.to(torch.float32)
    span = flat.max() - flat.min()
    colour = (flat - flat.min()) / (span if span > 0 else 1.0)
    rows, cols = grid_shape(h, w, max(1, min(segments, h * w)))
    step = math.sqrt(h * w / (rows * cols))
    yy, xx = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    pix_pos = torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=1).to(torch.float32)
    cell_r, cell_c = (yy.reshape(-1) * rows) // h, (xx.reshape(-1) * cols) // w
    seed = cell_r * cols + cell_c
    # Candidate centres of each pixel: the seeds of the 5 x 5 block of grid cells around its own.
    offsets = torch.arange(-2, 3, device=device)
    cand_r = (cell_r[:, None, None] + offsets[None, :, None]).expand(-1, 5, 5)
    cand_c = (cell_c[:, None, None] + offsets[None, None, :]).expand(-1, 5, 5)
    valid = ((cand_r >= 0) & (cand_r < rows) & (cand_c >= 0) & (cand_c < cols)).reshape(-1, 25)
    cand = (cand_r.clamp(0, rows - 1) * cols + cand_c.clamp(0, cols - 1)).reshape(-1, 25)
    k = rows * cols
    ones = torch.ones(h * w, device=device)
    counts = torch.zeros(k, device=device).index_add_(0, seed, ones).clamp(min=1)
    centre_pos = torch.zeros(k, 2, device=device).index_add_(0, seed, pix_pos) / counts[:, None]
    centre_col = torch.zeros(k, c, device=device).index_add_(0, seed, colour) / counts[:, None]
    labels = seed
    for _ in range(iterations):
        d_space = (pix_pos[:, None, :] - centre_pos[cand]).square().sum(-1)
        d_col = (colour[:, None, :] - centre_col[cand]).square().sum(-1)
        far = (pix_pos[:, None, :] - centre_pos[cand]).abs().amax(dim=-1) > 2 * step
        dist = (d_col + d_space / step**2 * compactness**2).masked_fill(far | ~valid, float("inf"))
        labels = cand.gather(1, dist.argmin(dim=1, keepdim=True)).squeeze(1)
        size = torch.zeros(k, device=device).index_add_(0, labels, ones)
        used = size > 0
        size = size.clamp(min=1)[:, None]
        centre_pos = torch.where(used[:, None], torch.zeros_like(centre_pos).index_add_(0, labels, pix_pos) / size,
                                 centre_pos)
        centre_col = torch.where(used[:, None], torch.zeros_like(centre_col).index_add_(0, labels, colour) / size,
                                 centre_col)
    return _connected(labels.reshape(h, w), min_size=max(1, int(step * step) // 4))


def _connected(labels: Tensor, *, min_size: int) -> Tensor:
    """Enforce connectivity: split every label into 4-connected fragments, keep each label's largest fragment
    when it has ``min_size`` pixels, merge every other fragment into the kept neighbour it shares the longest
    border with, and number the result ``0 ..``."""
    import numpy as np
    from scipy import ndimage

    lab = labels.cpu().numpy()
    frag = np.zeros(lab.shape, dtype=np.int64)
    keep: list[bool] = []
    for value in np.unique(lab):
        parts, num = ndimage.label(lab == value)
        sizes = np.bincount(parts.ravel())[1:]
        where = parts > 0
        frag[where] = parts[where] - 1 + len(keep)
        biggest = int(np.argmax(sizes))
        keep.extend(j == biggest and sizes[j] >= min_size for j in range(num))
    f = len(keep)
    final = np.where(np.array(keep), np.arange(f), -1)
    if not (final >= 0).any():
        final[np.bincount(frag.ravel()).argmax()] = 0
    # Neighbouring fragment pairs (both directions) from horizontal and vertical neighbours.
    a = np.concatenate([frag[:, :-1].ravel(), frag[:-1, :].ravel()])
    b = np.concatenate([frag[:, 1:].ravel(), frag[1:, :].ravel()])
    a, b = np.concatenate([a, b[a != b]]), np.concatenate([b, a[a != b]])
    a, b = a[a != b], b[a != b]
    while (final < 0).any():
        open_pair = (final[a] < 0) & (final[b] >= 0)
        if not open_pair.any():
            break
        key = a[open_pair] * f + final[b[open_pair]]
        uniq, border = np.unique(key, return_counts=True)
        order = np.lexsort((-border, uniq // f))
        first = np.ones(order.size, dtype=bool)
        first[1:] = (uniq[order] // f)[1:] != (uniq[order] // f)[:-1]
        chosen = uniq[order][first]
        final[chosen // f] = chosen % f
    _, dense = np.unique(final[frag], return_inverse=True)
    return torch.from_numpy(dense.reshape(lab.shape).astype(np.int64)).to(labels.device)
