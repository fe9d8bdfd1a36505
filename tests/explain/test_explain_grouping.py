"""Groupings: grid shapes fit the budget, labels cover every element, SLIC segments are connected."""

from __future__ import annotations

import pytest
import torch
from scipy import ndimage

from gradfree.errors import ConfigError
from gradfree.explain.grouping import Grouping, grid_shape, parse_grouping, segment, slic


@pytest.mark.parametrize(("h", "w", "cells"), [(28, 28, 499), (32, 32, 100), (28, 28, 10), (5, 9, 7), (1, 64, 8)])
def test_grid_shapes_fit_the_budget_and_are_nearly_as_many(h: int, w: int, cells: int) -> None:
    rows, cols = grid_shape(h, w, cells)
    assert 1 <= rows <= h and 1 <= cols <= w and rows * cols <= cells
    most = max(r * min(w, cells // r) for r in range(1, h + 1) if cells // r)
    assert rows * cols >= 0.9 * most


def test_segments_label_every_element_and_count_their_groups() -> None:
    x = torch.rand(2, 3, 10, 10)
    for spec, count in (("grid:16", 16), ("patches:3", 16), ("pixels", 100), ("coordinates", 300)):
        seg = segment(x, spec)
        assert seg.labels.shape == x.shape and seg.counts.tolist() == [count, count]
        for i in range(2):
            assert torch.equal(torch.unique(seg.labels[i]), torch.arange(count))
            assert seg.one_hot(i).sum(dim=0).eq(1).all()  # a partition
    grid = segment(x, "grid:16").labels[0, 0]
    assert torch.equal(segment(x, "grid:16").labels[0, 2], grid)  # channels share their pixel's group
    assert segment(torch.rand(1, 12), "grid:4").labels[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_slic_gives_connected_segments_no_more_than_asked_that_follow_edges() -> None:
    image = torch.zeros(3, 16, 16)
    image[:, :, 8:] = 1.0  # two flat halves
    labels = slic(image, segments=8, compactness=0.05)
    k = int(labels.max()) + 1
    assert 2 <= k <= 8 and torch.equal(torch.unique(labels), torch.arange(k))
    for value in range(k):
        _, parts = ndimage.label((labels == value).numpy())
        assert parts == 1  # every segment is one 4-connected piece
    # No segment straddles the edge between the halves.
    for value in range(k):
        cols = torch.nonzero(labels == value)[:, 1]
        assert bool((cols < 8).all()) or bool((cols >= 8).all())
    noisy = slic(torch.rand(1, 20, 20, generator=torch.Generator().manual_seed(0)), segments=25)
    assert int(noisy.max()) + 1 <= 25


def test_groupings_refuse_what_the_budget_or_the_input_cannot_take() -> None:
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ConfigError, match="budget pays for 10"):
        segment(x, "pixels", max_groups=10)
    with pytest.raises(ConfigError, match="needs images"):
        segment(torch.rand(1, 12), "slic:4")
    with pytest.raises(ConfigError, match="grouping must be one of"):
        parse_grouping("voronoi")
    with pytest.raises(ConfigError, match="needs a side"):
        parse_grouping("patches")
    assert parse_grouping("slic:40") == Grouping("slic", 40) and str(Grouping("grid")) == "grid"
