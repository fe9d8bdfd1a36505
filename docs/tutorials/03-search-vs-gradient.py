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
# # 3. Search vs gradient vs hybrid on a regression problem
#
# The classic comparison: train a small network by **per-parameter grid search** (cyclic coordinate descent
# with an exhaustive line search on a grid; Wright 2015, *Coordinate descent algorithms*, Sec. 2), by
# **backprop Adam**, and by a **hybrid** that searches for the first half of the budget and then lets Adam
# finish (a memetic scheme: a global explorer finds a basin, a local method descends in it).
#
# * Task `synthetic-regression`: Friedman's first function (Friedman 1991, Sec. 4.3), ten inputs of which five
#   matter, noise N(0, 1); 1,000 training rows, targets standardised, so predicting the mean scores an MSE of
#   about 1 and the noise floor is about 0.04.
# * Model `mlp:10-5-4-1:tanh` (84 parameters), full batch.
# * Every method gets the same number of **evaluations** (one forward pass over the 1,000 rows; a backprop
#   step counts one evaluation plus a backward pass). The grid is absolute, 100 values in (-5, 5) per weight.
#
# These are the settings of the benchmark suite `search-vs-gradient` (`gradfree bench search-vs-gradient`),
# whose full-size report is in the benchmark results.

# %% tags=["parameters"]
SIZE = "full"  # "small": the test suite (seconds); "full": 50,000 evaluations x 3 seeds (a few minutes)

# %%
BUDGET = {"small": 400, "full": 50_000}[SIZE]
SEEDS = {"small": (0,), "full": (0, 1, 2)}[SIZE]
GRID = {"weight_range": (-5.0, 5.0), "range_size": 100, "weights_per_step": 21}
if SIZE == "small":
    GRID["weights_per_step"] = 1  # a step of 21 weights (2,101 evaluations) would outlast the small budget
METHODS = {
    "grid search": ("grid", dict(GRID)),
    "adam": ("adam", {"lr": 1e-2}),
    "grid, then adam": ("hybrid", {"first": "grid", "first_options": dict(GRID), "second": "adam",
                                   "second_options": {"lr": 1e-2}, "switch_after": BUDGET // 2}),
}

# %%
import matplotlib.pyplot as plt
import torch

from gradfree.run import RunSpec, train_run

torch.set_num_threads(1)
results = {}
for label, (optimizer, options) in METHODS.items():
    for seed in SEEDS:
        spec = RunSpec(task="synthetic-regression", model="mlp:10-5-4-1:tanh", optimizer=optimizer,
                       options=options, budget=BUDGET, batch_size=None, eval_every=max(1, BUDGET // 25),
                       seed=seed, device="cpu")
        results[label, seed] = result = train_run(spec, progress=False)
        print(f"{label:16s} seed {seed}: test MSE {result.final['test_loss']:.4f}, "
              f"R² {result.final['test_r2']:.3f}, {result.evaluations:,} evaluations, {result.wall_time:.1f} s")

# %% [markdown]
# ## Loss histories
#
# Validation MSE against evaluations, one line per seed. The dashed line marks the hybrid's switch from
# grid search to Adam.

# %%
colors = {"grid search": "tab:orange", "adam": "tab:blue", "grid, then adam": "tab:green"}
fig, ax = plt.subplots(figsize=(8, 4.5))
for (label, seed), result in results.items():
    rows = [r for r in result.history if r.get("kind") == "val"]
    ax.plot([r["evaluations"] for r in rows], [r["val_loss"] for r in rows], color=colors[label], lw=1.2,
            label=label if seed == SEEDS[0] else None)
ax.axvline(BUDGET // 2, color="tab:green", ls="--", lw=0.8)
ax.axhline(0.04, color="grey", ls=":", lw=0.8, label="noise floor (~0.04)")
ax.set(xlabel="evaluations (forward passes over the 1,000 training rows)", ylabel="validation MSE",
       yscale="log", title=f"Friedman #1, MLP 10-5-4-1 (tanh), {len(SEEDS)} seed(s)")
ax.grid(alpha=0.3, which="both")
ax.legend()
plt.show()

# %% [markdown]
# ## Final losses
#
# Test MSE at the end of each run (the weights of the best validation), median over seeds with the min-max
# range as error bars.

# %%
labels = list(METHODS)
finals = {label: sorted(results[label, s].final["test_loss"] for s in SEEDS) for label in labels}
median = [finals[label][len(SEEDS) // 2] for label in labels]
errors = [[m - finals[label][0] for m, label in zip(median, labels, strict=True)],
          [finals[label][-1] - m for m, label in zip(median, labels, strict=True)]]
fig, ax = plt.subplots(figsize=(6, 4))
ax.bar(labels, median, yerr=errors, color=[colors[label] for label in labels], capsize=4)
ax.axhline(0.04, color="grey", ls=":", lw=0.8)
ax.set(ylabel="test MSE (standardised targets)", title=f"final loss at {BUDGET:,} evaluations")
ax.grid(axis="y", alpha=0.3)
plt.show()
for label, m in zip(labels, median, strict=True):
    print(f"{label:16s} median test MSE {m:.4f}  [{finals[label][0]:.4f}, {finals[label][-1]:.4f}]")
