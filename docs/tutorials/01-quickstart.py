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
# # 1. Quick start: ZO-Adam and MeZO in place of `torch.optim`
#
# A training loop written the way a PyTorch tutorial writes it, then the same loop with two gradient-free
# optimizers: **ZO-Adam** (a Gaussian random-direction gradient estimate fed to Adam; Chen et al. 2019,
# *ZO-AdaMM*) and **MeZO** (in-place SPSA whose perturbation is regenerated from a seed; Malladi et al. 2023,
# *Fine-Tuning Language Models with Just Forward Passes*). What changes: the closure does no `backward()`,
# `.grad` is never touched, every loss evaluation costs budget. What does not: the model, the data, the
# `optimizer.step(closure)` contract, `state_dict()`.
#
# The data are scikit-learn's 8x8 digits (1,797 images, shipped with scikit-learn: nothing to download) and the
# model a 64-32-10 MLP (2,410 parameters).

# %% tags=["parameters"]
SIZE = "full"  # "small" (the test suite: seconds), "full" (about a minute on one core)

# %%
BUDGET = {"small": 105, "full": 40_000}[SIZE]  # loss evaluations per method (forward passes of one batch)
SEEDS = {"small": (0,), "full": (0, 1, 2)}[SIZE]
BATCH = 128

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from gradfree.data.digits import load_digits
from gradfree.models.init import reset_parameters
from gradfree.optim import MeZO, ZOAdam

torch.set_num_threads(1)  # a 2,410-parameter model: one thread is fastest
data = load_digits()  # train / val / test splits, standardised pixels
x_train, y_train = data.train.x, data.train.y
x_val, y_val = data.val.x, data.val.y
print(f"train {tuple(x_train.shape)}, val {tuple(x_val.shape)}, test {tuple(data.test.x.shape)}")


def make_model(seed: int) -> nn.Module:
    """nn.Sequential(Linear(64, 32), ReLU, Linear(32, 10)), PyTorch's default init drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):  # nn.Linear draws a default init from the global RNG: fork it
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    return reset_parameters(model, generator=torch.Generator().manual_seed(seed))  # then re-draw from the seed


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def batches(seed: int):
    """Shuffled mini-batches forever, from a private generator (no global RNG)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(order) - BATCH + 1, BATCH):
            idx = order[i : i + BATCH]
            yield x_train[idx], y_train[idx]


# %% [markdown]
# ## The PyTorch way: Adam with backprop
#
# The loop every PyTorch tutorial has. We count **evaluations** — forward passes of one parameter vector over
# one batch — because that is the unit every method below pays in: a backprop step costs one evaluation (plus a
# backward pass, which we note but do not charge).


# %%
def train_adam(seed: int, budget: int) -> list[tuple[int, float, float]]:
    model = make_model(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    evaluations, history, start = 0, [], time.perf_counter()
    for x, y in batches(seed):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        evaluations += 1
        if evaluations % max(budget // 40, 1) == 0 or evaluations >= budget:
            history.append((evaluations, time.perf_counter() - start, accuracy(model, x_val, y_val)))
        if evaluations >= budget:
            return history
    raise AssertionError("unreachable")


adam_history = {seed: train_adam(seed, BUDGET) for seed in SEEDS}
print("Adam, validation accuracy at the end:", [f"{h[-1][2]:.3f}" for h in adam_history.values()])

# %% [markdown]
# ## The gradient-free way: the same loop, with a closure and no `backward()`
#
# Three lines change. The optimizer is `ZOAdam` or `MeZO`; the closure returns the loss and does not call
# `backward()`; `step(closure)` calls it as often as the method needs — ZO-Adam `num_directions + 1` times
# per step (forward differences along 20 Gaussian directions), MeZO twice per direction (`+` and `-`). The
# step runs the closure under `torch.no_grad()`, so nothing is recorded for autograd and `.grad` stays `None`.
# Counting the closure's calls counts the budget exactly.


# %%
def train_zeroth_order(make_optimizer, seed: int, budget: int):
    model = make_model(seed)
    opt = make_optimizer(model.parameters(), seed)
    evaluations, history, start = 0, [], time.perf_counter()
    next_log = 0
    for x, y in batches(seed):

        def closure():
            nonlocal evaluations
            evaluations += 1
            return F.cross_entropy(model(x), y)  # no backward(): the optimizer only needs the value

        opt.step(closure)
        if evaluations >= next_log or evaluations >= budget:
            history.append((evaluations, time.perf_counter() - start, accuracy(model, x_val, y_val)))
            next_log += max(budget // 40, 1)
        if evaluations >= budget:
            return model, opt, history
    raise AssertionError("unreachable")


def zo_adam(params, seed):
    return ZOAdam(params, lr=1e-2, num_directions=20, smoothing=1e-3, seed=seed)


def mezo(params, seed):
    return MeZO(params, lr=1e-3, smoothing=1e-3, num_directions=1, seed=seed)


runs = {name: {seed: train_zeroth_order(make, seed, BUDGET) for seed in SEEDS}
        for name, make in (("ZO-Adam", zo_adam), ("MeZO", mezo))}
for name, by_seed in runs.items():
    print(f"{name}: validation accuracy at the end:", [f"{h[-1][2]:.3f}" for _, _, h in by_seed.values()])

# %% [markdown]
# ## What did not change, and what did
#
# * **No `.grad`**: after training, every parameter's `.grad` is still `None` — no backward pass ran.
# * **Budgets are exact**: a ZO-Adam step costs 21 evaluations and a MeZO step 2; a run stops at the first
#   step that reaches the budget, so it overshoots by less than one step.
# * **Seeds, not global state**: the optimizer draws its directions from its own `torch.Generator` (seeded by
#   `seed=`); training twice with the same seed gives bit-identical weights, and the caller's global RNG
#   state is left as it was.
# * **`state_dict()`** holds the generator, so a resumed run continues exactly.

# %%
model, opt, history = runs["ZO-Adam"][SEEDS[0]]
print("every .grad is None:", all(p.grad is None for p in model.parameters()))
print("ZO-Adam evaluations:", history[-1][0], "of a budget of", BUDGET, "| steps:", opt.steps,
      "| evaluations per step:", history[-1][0] / opt.steps)

rng_before = torch.get_rng_state()
again, _, _ = train_zeroth_order(zo_adam, SEEDS[0], BUDGET)
same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
print("same seed, same weights:", same)
print("training left the global RNG as it was:", torch.equal(rng_before, torch.get_rng_state()))

# %% [markdown]
# ## Accuracy per evaluation and per second
#
# Medians over seeds. What to look for: per evaluation, backprop gets a whole gradient step, while ZO-Adam
# spends 21 evaluations on one noisy estimate of it in 2,410 dimensions, and MeZO's single direction per step
# is noisier still, so the zeroth-order curves rise later. On a model this small they catch up within the
# budget (Adam, meanwhile, starts to over-fit the 1,078 training images); on the larger networks of the
# benchmark results they do not (mnist-cnn, LeNet with 61,706 parameters, 15,000 evaluations: Adam 98.99%
# test accuracy, ZO-Adam 81.96%). The second panel is the wall-clock view.

# %%
def median_curve(histories, column):
    rows = list(zip(*histories, strict=False))  # logs at the same points across seeds
    xs = [torch.tensor([h[0] for h in row]).float().median().item() for row in rows]
    ts = [torch.tensor([h[1] for h in row]).float().median().item() for row in rows]
    ys = [torch.tensor([h[column] for h in row]).float().median().item() for row in rows]
    return xs, ts, ys


curves = {"Adam (backprop)": list(adam_history.values()),
          **{name: [h for _, _, h in by_seed.values()] for name, by_seed in runs.items()}}
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, histories in curves.items():
    xs, ts, ys = median_curve(histories, 2)
    axes[0].plot(xs, [100 * y for y in ys], label=name)
    axes[1].plot(ts, [100 * y for y in ys], label=name)
axes[0].set(xlabel="evaluations (forward passes of one batch)", ylabel="validation accuracy (%)",
            title=f"digits, MLP 64-32-10, median of {len(SEEDS)} seed(s)")
axes[1].set(xlabel="training time (s)", ylabel="validation accuracy (%)", title="the same runs against time")
axes[0].legend()
for ax in axes:
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %%
print(f"{'method':18s} {'val accuracy':>14s} {'evaluations':>12s} {'time (s)':>9s}")
for name, histories in curves.items():
    finals = [h[-1] for h in histories]
    acc = sorted(f[2] for f in finals)[len(finals) // 2]
    evals = sorted(f[0] for f in finals)[len(finals) // 2]
    secs = sorted(f[1] for f in finals)[len(finals) // 2]
    print(f"{name:18s} {100 * acc:13.2f}% {evals:12,d} {secs:9.1f}")

# %% [markdown]
# ## The same comparison with the library's trainer
#
# The loop above is what `gradfree.train.Trainer` does for you, faster: its closure scores all 21 points of a
# ZO-Adam step in one batched call, it validates on a schedule, keeps the best weights, checkpoints, and
# resumes. `gradfree.run.train_run` builds everything from names, as `gradfree train` does on the command line.

# %%
from gradfree.run import RunSpec, train_run

result = train_run(RunSpec(task="digits", model="mlp:64-32-10", optimizer="zo-adam",
                           options={"lr": 1e-2, "num_directions": 20}, budget=BUDGET, batch_size=BATCH,
                           eval_every=max(BUDGET // 10, 1), seed=0, device="cpu"), progress=False)
print(f"stopped: {result.stopped}; evaluations {result.evaluations:,} in {result.steps} steps, "
      f"{result.wall_time:.1f} s; test accuracy {100 * result.final['test_accuracy']:.2f}%")
