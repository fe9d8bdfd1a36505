"""Ragged targets: per-row tensors of any length, gathered by an index tensor like a tensor's rows."""

from __future__ import annotations

import pytest
import torch

from gradfree.data.ragged import Ragged
from gradfree.data.splits import Split
from gradfree.errors import ConfigError


def test_rows_gather_and_index_like_a_list_of_tensors() -> None:
    rows = [torch.rand(k, 4) for k in (2, 0, 3, 1)]
    ragged = Ragged.from_rows(rows, item_shape=(4,))
    assert len(ragged) == 4 and ragged.counts.tolist() == [2, 0, 3, 1]
    assert all(torch.equal(a, b) for a, b in zip(ragged.rows(), rows, strict=True))
    picked = ragged[torch.tensor([3, 1, 0, 2])]
    assert [r.shape[0] for r in picked.rows()] == [1, 0, 2, 3]
    assert torch.equal(picked[0], rows[3]) and torch.equal(picked[3], rows[2]) and torch.equal(ragged[-1], rows[3])
    assert torch.equal(ragged[1:3].values, rows[2]) and ragged.owners().tolist() == [0, 0, 2, 2, 2, 3]
    split = Split(torch.zeros(4, 1, 2, 2), ragged)
    assert len(split) == 4 and len(split.subset(torch.tensor([0, 2])).y) == 2
    with pytest.raises(ValueError, match="rows"):
        Split(torch.zeros(3, 1), ragged)
    with pytest.raises(ConfigError, match="offsets"):
        Ragged(torch.zeros(3, 4), torch.tensor([0, 2, 1, 3]))
    with pytest.raises(IndexError):
        ragged[4]
