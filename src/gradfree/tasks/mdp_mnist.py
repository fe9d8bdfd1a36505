"""The "mdp-mnist" task: MNIST with 5,000 training images, the small-data setting of derivative-free claims.

Splits, all drawn from ``seed`` (stratified, see :func:`gradfree.data.mnist.load_mnist`): validation is
10,000 images of the official training set, the training split 5,000 *other* images of it, and the test split
the official 10,000 test images. The default model is the MLP 784-32-10 (25,450 parameters). This is the
setting in which a derivative-free method (MDP, sgo-lab) reports 93.4% test accuracy (best of four runs,
92.1-93.5%) against 91.7-92.6% for Adam; the benchmark suite "mdp-mnist" compares ours with it.

"mdp-mnist-uncentred" has the same splits with the pixels divided by MNIST's standard deviation but not
centred, so that the blank background is exactly 0 rather than -0.42. A first layer's bias absorbs the shift,
so the two tasks pose the same problem for a network with biases (up to its initialisation); what changes is
the cost of a single-weight change for the incremental engine (:mod:`gradfree.engines.incremental.mlp`): with
a zero background, a first-layer weight moves only the rows where its pixel is not blank (about 19%), with a
nonzero one it moves every row.
"""

from __future__ import annotations

from pathlib import Path

from gradfree.errors import ConfigError
from gradfree.tasks.classification import ClassificationTask
from gradfree.tasks.registry import TASKS

TRAIN_IMAGES = 5000
VAL_IMAGES = 10000


def _mdp_mnist(*, data_dir: str | Path | None = None, seed: int = 0, download: bool = True,
               train_subset: int | None = None, centre: bool = True) -> ClassificationTask:
    from gradfree.data.mnist import load_mnist

    if train_subset is not None and train_subset != TRAIN_IMAGES:
        raise ConfigError(f"mdp-mnist is defined with {TRAIN_IMAGES} training images; for another size use the "
                          f"task mnist with --train-subset {train_subset}")
    # Image-shaped like the "mnist" task: MLP specs start with nn.Flatten, so MLPs and CNNs both fit.
    data = load_mnist(data_dir=data_dir, download=download, val_size=VAL_IMAGES, train_subset=TRAIN_IMAGES,
                      seed=seed, flatten=False, centre=centre)
    return ClassificationTask(data, default_model="mlp:784-32-10")


def _mdp_mnist_uncentred(*, data_dir: str | Path | None = None, seed: int = 0, download: bool = True,
                         train_subset: int | None = None) -> ClassificationTask:
    return _mdp_mnist(data_dir=data_dir, seed=seed, download=download, train_subset=train_subset, centre=False)


TASKS.add("mdp-mnist", _mdp_mnist, summary="MNIST, 5k stratified train / 10k other train images as val / "
          "official 10k test (seeded); the MDP comparison setting")
TASKS.add("mdp-mnist-uncentred", _mdp_mnist_uncentred,
          summary="mdp-mnist with pixels divided by the std but not centred (blank background exactly 0)")
