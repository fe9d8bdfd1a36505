"""Victims: the pixel wrapper, the quantisation step, training once and caching, safe loading, run folders,
and the choice of images, targets and starts (on scikit-learn's digits: offline, seconds)."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

import gradfree.run
from gradfree.data.store import cache_dir
from gradfree.errors import ConfigError, DataError
from gradfree.victims import (
    VICTIMS,
    PixelClassifier,
    Quantize,
    first_correct,
    load_victim,
    random_targets,
    target_starts,
    to_pixels,
    victim_folder,
    victim_from_run,
)

REAL_CACHE = cache_dir()
"""The user's cache, read before the tests point GRADFREE_CACHE elsewhere (for the cached MNIST victims)."""


@pytest.fixture(autouse=True, scope="module")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One private cache for the module: the digits victim is trained once and shared by the tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADFREE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def test_quantize_rounds_to_levels_and_passes_no_gradient() -> None:
    q = Quantize(8)
    x = torch.tensor([[0.0, 0.07, 0.08, 0.5, 0.93, 1.0, 1.3, -0.2]], requires_grad=True)
    out = q(x)
    assert torch.allclose(out, torch.tensor([[0, 0, 1, 4, 7, 7, 7, 0]]) / 7)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, torch.zeros_like(grad))
    with pytest.raises(ConfigError):
        Quantize(1)


def test_pixel_classifier_standardises_per_channel_and_per_element() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    mean, std = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.25, 2.0])
    model = PixelClassifier(net, mean, std, input_shape=(3, 2, 2))
    x = torch.rand(4, 3, 2, 2)
    assert torch.allclose(model(x), net((x - mean.reshape(1, 3, 1, 1)) / std.reshape(1, 3, 1, 1)))
    flat = PixelClassifier(nn.Linear(5, 2), torch.arange(5.0), torch.full((5,), 2.0), input_shape=(5,))
    v = torch.rand(3, 5)
    assert torch.allclose(flat(v), flat.net((v - torch.arange(5.0)) / 2))
    with pytest.raises(ConfigError):
        PixelClassifier(net, torch.zeros(2), torch.ones(2), input_shape=(3, 2, 2))


def test_to_pixels_inverts_the_standardisation() -> None:
    pixels = torch.randint(0, 256, (6, 3, 4, 4)) / 255
    mean, std = torch.tensor([0.49, 0.48, 0.45]), torch.tensor([0.25, 0.24, 0.26])
    x = (pixels - mean.reshape(1, 3, 1, 1)) / std.reshape(1, 3, 1, 1)
    assert torch.equal(to_pixels(x, mean, std), pixels)


def test_digits_victim_is_trained_once_then_loaded_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    v = load_victim("digits-mlp", seed=0)
    assert v.folder == victim_folder("digits-mlp", seed=0) and (v.folder / "model.pt").exists()
    assert v.input_shape == (64,) and v.num_classes == 10 and v.test_x.shape == (360, 64)
    assert float(v.test_x.min()) >= 0 and float(v.test_x.max()) <= 1
    assert v.test_accuracy > 0.85
    assert all(not p.requires_grad for p in v.model.parameters()) and not v.model.training

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached victim was trained again")

    monkeypatch.setattr(gradfree.run, "train_run", no_training)
    again = load_victim("digits-mlp", seed=0)
    assert again is v  # the process keeps the last victims loaded
    fresh = load_victim("digits-mlp", seed=0, reuse=False)
    assert fresh is not v and fresh.test_accuracy == v.test_accuracy
    assert torch.equal(fresh.predict(v.test_x), v.predict(v.test_x))
    with pytest.raises(DataError, match="not cached"):
        load_victim("digits-mlp", seed=1, train=False)


def test_a_weights_file_that_runs_code_is_refused(tmp_path: Path) -> None:
    v = load_victim("digits-mlp", seed=0)
    assert v.folder is not None
    copy = victim_folder("digits-mlp", seed=0, cache=tmp_path)
    shutil.copytree(v.folder, copy)
    with open(copy / "model.pt", "wb") as f:
        pickle.dump({"weight": Exploit()}, f, protocol=2)
    with pytest.raises(DataError, match="plain weights"):
        load_victim("digits-mlp", seed=0, cache=tmp_path, train=False)


class Exploit:
    """A pickle that asks to run a command when loaded."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo should-never-run",))


def test_victim_from_a_run_folder_matches_the_run(tmp_path: Path) -> None:
    """A victim's cache folder is a ``gradfree train`` run folder: loading it as a run gives the same model."""
    cached = load_victim("digits-mlp", seed=0)
    assert cached.folder is not None
    v = victim_from_run(cached.folder)
    assert v.seed == 0 and v.task == "digits"
    # The pixel wrapper on the recovered pixels predicts what the network did on the standardised test set.
    recorded = json.loads((cached.folder / "result.json").read_text())["final"]["test_accuracy"]
    assert v.test_accuracy == pytest.approx(recorded, abs=1e-9) == cached.test_accuracy
    with pytest.raises(DataError):
        victim_from_run(tmp_path / "nothing-here")


def test_first_correct_targets_and_starts() -> None:
    v = load_victim("digits-mlp", seed=0)
    batch = first_correct(v, 20)
    assert len(batch) == 20 and torch.equal(v.predict(batch.x), batch.y)
    assert torch.equal(batch.index, torch.sort(batch.index).values)
    wrong = torch.nonzero(v.predict(v.test_x) != v.test_y).flatten()
    assert not torch.isin(batch.index, wrong).any() and int(batch.index[-1]) < 20 + int((wrong < 40).sum())
    targets = random_targets(batch.y, 10, seed=0)
    assert (targets != batch.y).all() and torch.equal(targets, random_targets(batch.y, 10, seed=0))
    starts = target_starts(v, targets, exclude=batch.index)
    assert torch.equal(v.predict(starts), targets)
    with pytest.raises(ConfigError):
        first_correct(v, 10_000)


@pytest.mark.shared_data
def test_cached_mnist_victims(shared_data_dir: Path) -> None:
    """The MNIST victims, where a previous run has cached them (they take minutes to train)."""
    if not (shared_data_dir / "mnist").exists():
        pytest.skip("no MNIST in ../shared/data")
    try:
        lenet = load_victim("mnist-lenet", data_dir=shared_data_dir, download=False, train=False,
                            cache=REAL_CACHE / "victims")
    except DataError:
        pytest.skip("the MNIST victims are not cached")
    assert lenet.test_accuracy > 0.97
    # The quantised victim is the same training run behind the quantisation step.
    assert victim_folder("mnist-quantized") == victim_folder("mnist-lenet")
    assert VICTIMS.get("mnist-quantized").levels == 8
    quantized = PixelClassifier(lenet.model.net, torch.tensor([0.1307]), torch.tensor([0.3081]),
                                input_shape=(1, 28, 28), levels=8)
    x = lenet.test_x[:4].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(quantized(x)[:, 0].sum(), x)
    assert torch.equal(grad, torch.zeros_like(grad))  # no gradient through the quantisation
