"""ART's ZooAttack through gradfree.attacks.peers: same model and images, verified and measured like ours,
its queries counted exactly (a benchmark peer, so the test skips where ART is not installed)."""

from __future__ import annotations

import pytest
import torch
from attack_models import CountingModel, images, linear_model

from gradfree.attacks.metrics import summarize
from gradfree.attacks.peers import ART_BEST, art_zoo

pytest.importorskip("art")  # importing ART takes seconds: the whole module is marked slow
pytestmark = pytest.mark.slow


def test_art_zoo_on_a_linear_model() -> None:
    model = linear_model().float()
    x = images(3).float()
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    counting = CountingModel(model)
    settings = {**ART_BEST, "max_iter": 20, "nb_parallel": 16}
    result = art_zoo(counting, x, y, settings=settings, num_classes=5)
    assert counting.rows == int(result.queries.sum()) + 3  # + the verification forward
    assert (result.queries > 0).all()
    with torch.no_grad():
        fooled = model(result.x_adv).argmax(dim=1) != y
    assert torch.equal(result.success, fooled)
    assert result.success.any()
    s = summarize(result)
    assert s.method == "art-zoo" and s.images == 3 and s.time_per_image > 0
    assert torch.allclose(result.l2, (result.x_adv - x).flatten(1).double().norm(dim=1))
