# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. RSO vs SGD on MNIST across batch sizes
#
# RSO (Tripathi & Singh 2020, *RSO: A Gradient Free Sampling Based Approach For Training Deep Neural
# Networks*, arXiv:2005.05955, Sec. 3) trains one weight at a time: for each weight it compares the loss at
# `w`, `w + delta` and `w - delta` on a mini-batch and keeps the best. The paper's study asks how the batch size
# changes what such a search reaches **per update** and **per second**, against SGD, with a network of one
# convolution layer. This notebook repeats that study with gradfree's RSO, the one-convolution CNN `conv1:16`
# (16 filters of 3x3 and a linear head) and MNIST.
#
# Settings are those of the benchmark suite `rso-batch-size` (`gradfree bench rso-batch-size`): every run
# gets the same training wall time (validation not charged); an RSO update tries 4 consecutive weights on one
# batch (2 evaluations per weight, 1 for the batch's loss), an SGD update is one gradient step (lr 0.1).
# RSO runs without annealing (a time budget gives no known number of rounds).
#
# **Data**: MNIST is looked up as the library does (`DATA_DIR`, then `$GRADFREE_DATA`, the cache, else a
# download). At its small size (the test suite) the notebook runs on generated images of MNIST's shape.

# %% tags=["parameters"]
SIZE = "full"  # "small": the test suite; "medium": one seed, 30 s per run; "full": the suite's full size
DATA_DIR = None  # a folder holding mnist/ (None: $GRADFREE_DATA, the cache, or a download)

# %%
SETTINGS = {
    # seconds per run, seeds, training images, validation and test images (None: all 10,000), batch sizes
    "small": (0.2, (0,), 600, 200, (64, 5000)),
    "medium": (30.0, (0,), 20_000, None, (64, 256, 1024, 5000)),
    "full": (60.0, (0, 1, 2), 20_000, None, (64, 256, 1024, 5000)),
}
TIME_LIMIT, SEEDS, TRAIN_IMAGES, EVAL_IMAGES, BATCHES = SETTINGS[SIZE]
WEIGHTS_PER_UPDATE = 4
METHODS = {"rso": ("rso", {"rounds": None, "weights_per_step": WEIGHTS_PER_UPDATE}),
           "sgd": ("sgd", {"lr": 0.1})}
# Rows per second each method gets through with conv1:16 on one CPU thread (the suite's estimates), to
# validate about 8 times per run whatever the batch size:
ROWS_PER_S = {"rso": 1.5e4, "sgd": 1.5e3}
VALIDATIONS = 8

# %% [markdown]
# Each run is built the way `gradfree.run.train_run` builds it — model weights from `seed`, the optimizer's
# generator from `seed + 1`, the batch order from `seed + 2` — so these are the suite's runs, but the data are
# loaded once per seed rather than once per run.

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import torch

from gradfree.models import build_model
from gradfree.optim import build_optimizer, needs_gradient
from gradfree.tasks import build_task
from gradfree.train import TrainConfig, Trainer

torch.set_num_threads(1)
results = {}
for seed in SEEDS:
    task = build_task("mnist", data_dir=DATA_DIR, seed=seed, download=DATA_DIR is None, train_subset=TRAIN_IMAGES)
    if EVAL_IMAGES is not None:  # validate and test on fewer images (the small size only)
        keep = torch.arange(EVAL_IMAGES)
        task.data = replace(task.data, val=task.data.val.subset(keep), test=task.data.test.subset(keep))
    for batch in BATCHES:
        for label, (optimizer, options) in METHODS.items():
            evaluations_per_s = ROWS_PER_S[label] / batch
            eval_every = max(1, round(TIME_LIMIT * evaluations_per_s / VALIDATIONS))
            model = build_model("conv1:16", seed=seed, input_shape=task.data.input_shape, num_classes=10)
            seeded = {} if needs_gradient(optimizer) else {"seed": seed + 1}  # backprop draws nothing
            opt = build_optimizer(optimizer, model.parameters(), **seeded, **options)
            config = TrainConfig(time_limit=TIME_LIMIT, batch_size=min(batch, len(task.data.train)),
                                 eval_every=eval_every, seed=seed + 2, progress=False)
            results[batch, label, seed] = result = Trainer(task, model, opt, config).fit()
            print(f"batch {batch:5d} {label}: seed {seed}, {result.steps:6d} updates, "
                  f"{result.evaluations:7d} evaluations in {result.wall_time:5.1f} s, "
                  f"test accuracy {100 * result.final['test_accuracy']:.2f}%")

# %% [markdown]
# ## Accuracy per update and per second
#
# Each run's validation accuracy (every point is one validation) against the number of updates and against
# training time, one panel per batch size. Thin lines are seeds.

# %%
colors = {"rso": "tab:red", "sgd": "tab:blue"}
fig, axes = plt.subplots(2, len(BATCHES), figsize=(4 * len(BATCHES), 7), sharey=True)
for col, batch in enumerate(BATCHES):
    for label in METHODS:
        for seed in SEEDS:
            rows = [r for r in results[batch, label, seed].history if r.get("kind") == "val"]
            acc = [100 * r["val_accuracy"] for r in rows]
            first = seed == SEEDS[0]
            axes[0, col].plot([r["steps"] for r in rows], acc, color=colors[label], lw=1,
                              label=label if first else None)
            axes[1, col].plot([r["time"] for r in rows], acc, color=colors[label], lw=1,
                              label=label if first else None)
    axes[0, col].set(title=f"batch {batch}", xlabel="updates", xscale="symlog")
    axes[1, col].set(xlabel="training time (s)")
for row, name in enumerate(("per update", "per second")):
    axes[row, 0].set_ylabel(f"validation accuracy (%), {name}")
    axes[row, 0].legend()
for ax in axes.flat:
    ax.grid(alpha=0.3)
fig.suptitle(f"MNIST, conv1:16, {TIME_LIMIT:g} s per run, {TRAIN_IMAGES:,} training images")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Final test accuracy by batch size
#
# Median over seeds (bars: min to max). The question of the study: RSO's accepted single-weight changes
# must improve the loss of the batch they were tried on, so small batches let it fit batches rather than the
# data, while each update at a large batch costs more time.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
width = 0.38
for offset, label in ((-width / 2, "rso"), (width / 2, "sgd")):
    accs = [sorted(100 * results[b, label, s].final["test_accuracy"] for s in SEEDS) for b in BATCHES]
    med = [a[len(a) // 2] for a in accs]
    err = [[m - a[0] for m, a in zip(med, accs, strict=True)], [a[-1] - m for m, a in zip(med, accs, strict=True)]]
    ax.bar([i + offset for i in range(len(BATCHES))], med, width, yerr=err, color=colors[label], label=label)
ax.set(xticks=range(len(BATCHES)), xticklabels=[str(b) for b in BATCHES], xlabel="batch size",
       ylabel="test accuracy (%)", title=f"after {TIME_LIMIT:g} s of training (median of {len(SEEDS)} seed(s))")
ax.legend()
ax.grid(axis="y", alpha=0.3)
plt.show()

print(f"{'batch':>6s} {'method':>6s} {'updates':>8s} {'updates/s':>10s} {'test acc':>9s}")
for batch in BATCHES:
    for label in METHODS:
        runs = [results[batch, label, s] for s in SEEDS]
        steps = sorted(r.steps for r in runs)[len(runs) // 2]
        rate = sorted(r.steps / r.wall_time for r in runs)[len(runs) // 2]
        acc = sorted(100 * r.final["test_accuracy"] for r in runs)[len(runs) // 2]
        print(f"{batch:6d} {label:>6s} {steps:8d} {rate:10.1f} {acc:8.2f}%")
