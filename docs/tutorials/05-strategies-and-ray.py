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
# # 5. Population strategies, locally and on a Ray cluster
#
# A population strategy keeps a search distribution over the flat parameter vector, **asks** for a
# generation of P members, is **told** their P losses, and moves the distribution. gradfree's strategies
# (`gradfree.strategies`: `open-es` — Salimans et al. 2017; `snes` — Schaul et al. 2011; `pgpe` with ClipUp —
# Sehnke et al. 2010, Toklu et al. 2020; `sep-cma` — Ros & Hansen 2008; `ga` — Such et al. 2017; `cem` —
# Rubinstein 1999) never know where a generation is scored: in this process, in one batched call, or on a
# pool of Ray actors.
#
# This notebook
#
# 1. compares the strategies at an equal evaluation budget with the trainer (one step = one generation);
# 2. runs **the same** OpenAI-ES training in-process and on a local Ray cluster, and checks that it gives the
#    same numbers;
# 3. measures the **bytes sent per generation**: actors rebuild the members from the generation's seed
#    (Salimans et al. 2017, Sec. 2.1), so the traffic does not grow with the number of parameters, unlike
#    shipping the population.
#
# Data: scikit-learn's digits (no download); model: MLP 64-32-10 (2,410 parameters).

# %% tags=["parameters"]
SIZE = "full"  # "small": the test suite; "full": a few minutes on one core
RAY = True  # the Ray sections start a local Ray (2 CPUs); the test suite runs the notebook without them

# %%
BUDGET = {"small": 64, "full": 40_000}[SIZE]
POPSIZE = 32
STRATEGIES = {  # label: (registered optimizer name, options)
    "open-es": ("open-es", {"popsize": POPSIZE, "sigma": 0.05, "lr": 0.02}),
    "snes": ("snes", {"popsize": POPSIZE, "sigma": 0.05}),
    "pgpe": ("pgpe", {"popsize": POPSIZE, "sigma": 0.05}),
    "sep-cma": ("sep-cma", {"popsize": POPSIZE, "sigma": 0.05}),
    "cem": ("cem", {"popsize": POPSIZE, "sigma": 0.05}),
}

# %%
import time

import matplotlib.pyplot as plt
import torch

from gradfree.models import build_model
from gradfree.optim import build_optimizer
from gradfree.tasks import build_task
from gradfree.train import TrainConfig, Trainer

torch.set_num_threads(1)
task = build_task("digits")


def trainer_for(name: str, options: dict, *, seed: int = 0) -> Trainer:
    model = build_model("mlp:64-32-10", seed=seed, input_shape=task.data.input_shape, num_classes=10)
    optimizer = build_optimizer(name, model.parameters(), seed=seed + 1, **options)
    config = TrainConfig(budget=BUDGET, batch_size=128, eval_every=max(BUDGET // 20, POPSIZE), seed=seed + 2,
                         progress=False)
    return Trainer(task, model, optimizer, config)


results = {}
for label, (name, options) in STRATEGIES.items():
    results[label] = result = trainer_for(name, options).fit()
    print(f"{label:8s} test accuracy {100 * result.final['test_accuracy']:6.2f}%  ({result.evaluations:,} "
          f"evaluations = {result.steps} generations of {POPSIZE}, {result.wall_time:.1f} s)")

# %%
fig, ax = plt.subplots(figsize=(8, 4.5))
for label, result in results.items():
    rows = [r for r in result.history if r.get("kind") == "val"]
    ax.plot([r["evaluations"] for r in rows], [r["val_loss"] for r in rows], label=label)
ax.set(xlabel="evaluations (members scored on a batch of 128)", ylabel="validation loss (cross-entropy)",
       title=f"digits, MLP 64-32-10, population {POPSIZE}, seed 0")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# ## The same run on Ray
#
# `RayEvaluator(trainer.problem())` ships the model, the loss and the training set to each actor once;
# `optimizer.use_evaluator(evaluator)` changes only where a generation is scored. Batches are a pure function
# of the step number (which is all an actor is told), and validation, early stopping and checkpoints stay the
# trainer's, so the run on Ray ends at the same weights as the run in this process. On a real cluster pass
# `address="auto"` (on a node of it) or `"ray://HEAD:10001"`; see the Ray cluster guide.

# %%
if RAY:
    from gradfree.distributed import RayEvaluator, connect

    connect("local", num_cpus=2)  # a local Ray with 2 CPUs; every evaluator below joins it
    name, options = STRATEGIES["open-es"]
    local = trainer_for(name, options)
    started = time.perf_counter()
    local_result = local.fit()
    local_seconds = time.perf_counter() - started

    remote = trainer_for(name, options)
    with RayEvaluator(remote.problem(), num_actors=2) as evaluator:
        remote.optimizer.use_evaluator(evaluator)
        started = time.perf_counter()
        ray_result = remote.fit()
        ray_seconds = time.perf_counter() - started
        traffic = list(evaluator.stats.generations)
        setup_bytes = evaluator.stats.setup_bytes
    same = all(torch.equal(a, b) for a, b in zip(local.model.state_dict().values(),
                                                 remote.model.state_dict().values(), strict=True))
    print(f"in-process: test accuracy {100 * local_result.final['test_accuracy']:.2f}%, {local_seconds:.1f} s")
    print(f"Ray, 2 actors: test accuracy {100 * ray_result.final['test_accuracy']:.2f}%, {ray_seconds:.1f} s")
    print("same final weights:", same)
    steady = traffic[1:]
    print(f"problem shipped once: {setup_bytes:,} bytes; first generation (strategy replicas): "
          f"{traffic[0].sent_bytes + traffic[0].sync_bytes:,} bytes; then per generation: "
          f"{sum(t.sent_bytes for t in steady) / len(steady):,.0f} bytes sent, "
          f"{sum(t.received_bytes for t in steady) / len(steady):,.0f} received")

# %% [markdown]
# On two CPU cores a 2,410-parameter model is too small for actors to pay off: every generation costs
# messages, while in-process the whole population is one batched forward pass. Ray is for populations whose
# members are expensive (large models, large batches, many machines).
#
# ## Bytes per generation against the number of parameters
#
# Five generations of OpenAI-ES (members rebuilt from seeds) and of the GA (its members are not
# `mean + scale * noise`, so their rows are shipped) for MLPs from 2,410 to 330,000 parameters.

# %%
if RAY:
    import torch.nn.functional as F

    from gradfree.distributed import Problem, evolve
    from gradfree.strategies import STRATEGIES as REGISTRY

    widths = {"small": ["64-32-10"], "full": ["64-32-10", "64-256-10", "64-1024-256-10"]}
    rows = []
    for spec in widths[SIZE]:
        model = build_model(f"mlp:{spec}", seed=0)
        problem = Problem.of(model, F.cross_entropy, task.data.train.x, task.data.train.y, batch_size=128,
                             batch_seed=0)
        for strategy_name in ("open-es", "ga"):
            strategy = REGISTRY.get(strategy_name)(problem.num_dims, POPSIZE, init_mean=problem.flat.get(),
                                                   sigma=0.05, seed=0)
            with RayEvaluator(problem, num_actors=2) as evaluator:
                evolve(strategy, evaluator, generations=5)
                steady = evaluator.stats.generations[1:]
                sent = sum(t.sent_bytes for t in steady) / len(steady)
            rows.append((spec, problem.num_dims, strategy_name, sent))
            print(f"mlp:{spec:20s} {problem.num_dims:>10,d} parameters  {strategy_name:8s} "
                  f"{sent:>14,.0f} bytes sent per generation")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy_name, marker in (("open-es", "o"), ("ga", "s")):
        pts = [(d, s) for _, d, n, s in rows if n == strategy_name]
        ax.plot([d for d, _ in pts], [s for _, s in pts], marker=marker, label=f"{strategy_name} (Ray)")
    dims = sorted({d for _, d, _, _ in rows})
    ax.plot(dims, [POPSIZE * d * 4 for d in dims], "k:", label="the population as float32 rows (P x D x 4)")
    ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="bytes sent per generation",
           title=f"population {POPSIZE}, 2 actors, steady state")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    plt.show()

    import ray

    ray.shutdown()
