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
# # 6. Black-box adversarial attacks
#
# The zeroth-order estimators that train networks also attack them. A black-box attacker sees only what a
# query returns — the logits, the probabilities, or only the label — and every query is counted against a
# per-image budget. This notebook attacks a trained classifier with the score-based attacks
#
# * **NES** (Ilyas et al., *Black-box Adversarial Attacks with Limited Queries and Information*, ICML 2018),
# * **ZO-signSGD** (Liu et al., *signSGD via Zeroth-Order Oracle*, ICLR 2019),
# * **Square** (Andriushchenko et al., *Square Attack*, ECCV 2020),
# * **ZOO-ADAM** (Chen et al., *ZOO*, AISec 2017), the zeroth-order Carlini-Wagner attack,
#
# the label-only **HopSkipJump** (Chen, Jordan & Wainwright, IEEE S&P 2020), and the white-box references
# they are judged against: **PGD** (Madry et al., ICLR 2018) and **C&W-L2** (Carlini & Wagner, IEEE S&P 2017).
#
# Every attack has one call shape, `build_attack(name, **options)(model, x, labels, targets=None, norm=...,
# eps=..., budget=..., access=..., seed=...)`, on pixels in `[0, 1]`, and returns a verified `AttackResult`
# (the adversarial images, the success mask checked by one forward outside the budget, the exact queries
# each image spent, distortions). The victim comes from `gradfree.victims`: a network trained once per seed
# through the library's own training path and cached.

# %% tags=["parameters"]
SIZE = "full"  # "small": the test suite (the digits victim, seconds); "full": the MNIST LeNet (minutes)
DATA_DIR = None  # a folder holding mnist/ (None: $GRADFREE_DATA, the cache, or a download)

# %%
PLAN = {
    #        victim,        images, queries per image, HopSkipJump's, ZOO images, ZOO settings
    "small": ("digits-mlp", 4, 200, 200, 1, {"binary_steps": 1, "iterations": 20}),
    "full": ("mnist-lenet", 20, 2_000, 2_000, 2, {"tanh": False, "initial_const": 1.0, "binary_steps": 5,
                                                  "iterations": 300, "lr": 0.03}),
}
VICTIM, IMAGES, BUDGET, HSJ_BUDGET, ZOO_IMAGES, ZOO = PLAN[SIZE]
EPS_LINF = 0.3  # MNIST's customary L-inf bound (the suites' attacks-mnist)

# %%
import tempfile
from pathlib import Path

import torch
from IPython.display import Image, Markdown, display

from gradfree.attacks import build_attack
from gradfree.attacks.metrics import markdown_table, success_curve, summarize
from gradfree.attacks.pictures import adversarial_grid, query_grid, success_curves
from gradfree.victims import first_correct, load_victim

torch.set_num_threads(1)
victim = load_victim(VICTIM, seed=0, data_dir=DATA_DIR, download=DATA_DIR is None)  # trains it once if needed
batch = first_correct(victim, IMAGES)  # the first test images the victim gets right
print(f"victim {victim.name}: test accuracy {100 * victim.test_accuracy:.2f}%, inputs {victim.input_shape}; "
      f"attacking {len(batch)} images")
pictures = Path(tempfile.mkdtemp(prefix="attacks-"))

# %% [markdown]
# ## Eps-bounded attacks at L-inf 0.3
#
# Untargeted: an image is broken when some query within the L-inf ball of radius 0.3 around it (and in the
# pixel box) gets another label. Each score-based attack sees the logits; HopSkipJump sees only labels; PGD
# has the gradient (it charges one "query" per forward-and-backward pass, on the same counter).

# %%
bounded = {}
for name in ("nes", "zo-signsgd", "square"):
    bounded[name] = build_attack(name)(victim.model, batch.x, batch.y, norm="linf", eps=EPS_LINF, budget=BUDGET,
                                       access="logits", seed=0)
bounded["hopskipjump"] = build_attack("hopskipjump")(victim.model, batch.x, batch.y, norm="linf", eps=EPS_LINF,
                                                     budget=HSJ_BUDGET, access="label", seed=0)
bounded["pgd (white-box)"] = build_attack("pgd")(victim.model, batch.x, batch.y, norm="linf", eps=EPS_LINF,
                                                 seed=0)
display(Markdown(markdown_table([summarize(r) for r in bounded.values()])))

# %% [markdown]
# **Success against queries.** For each query budget Q, the share of images whose first success came within
# Q queries (failures never count): how many queries an attacker needs.

# %%
budgets = query_grid(max(BUDGET, HSJ_BUDGET))
curves = {name: (budgets, success_curve(result, budgets)) for name, result in bounded.items()
          if name != "pgd (white-box)"}
display(Image(filename=str(success_curves(curves, pictures / "curves.png",
                                          title=f"{victim.name}, untargeted, L-inf {EPS_LINF}"))))

# %% [markdown]
# **The pictures.** One row per image: the original with its label, then each attack's adversarial image with
# the label the victim now gives it, and its perturbation magnified (mid-grey is no change).

# %%
grid = adversarial_grid({k: bounded[k] for k in ("square", "nes", "hopskipjump", "pgd (white-box)")},
                        pictures / "grid.png", images=min(4, IMAGES), class_names=victim.class_names,
                        title=f"{victim.name}: untargeted L-inf {EPS_LINF}")
display(Image(filename=str(grid)))

# %% [markdown]
# ## Targeted attacks
#
# The same attacks asked to reach a seeded random other class per image. HopSkipJump starts a targeted
# attack from an image of the target class (`target_starts`) and walks towards the original.

# %%
from gradfree.victims import random_targets, target_starts

targets = random_targets(batch.y, victim.num_classes, seed=0)
targeted = {name: build_attack(name)(victim.model, batch.x, batch.y, targets=targets, norm="linf", eps=EPS_LINF,
                                     budget=BUDGET, access="logits", seed=0) for name in ("nes", "square")}
targeted["hopskipjump"] = build_attack("hopskipjump")(
    victim.model, batch.x, batch.y, targets=targets, norm="linf", eps=EPS_LINF, budget=HSJ_BUDGET,
    access="label", seed=0, starts=target_starts(victim, targets, exclude=batch.index))
display(Markdown(markdown_table([summarize(r) for r in targeted.values()])))

# %% [markdown]
# ## Minimal L2 distortion: ZOO against white-box C&W
#
# ZOO minimises `||x - x0||^2 + c * margin` like C&W, but estimates each coordinate's derivative from two
# queries (`2k + 1` queries per iteration for `k = 128` coordinates) instead of backprop; a binary search
# over `c` shrinks the distortion. A good ZOO run comes close to C&W's distortion, at hundreds of thousands of
# queries per image.

# %%
few = first_correct(victim, ZOO_IMAGES)
zoo = build_attack("zoo-adam", **ZOO)(victim.model, few.x, few.y, norm="l2", access="logits", seed=0)
cw_options = {"binary_steps": 5, "iterations": 300} if SIZE == "full" else {"binary_steps": 1, "iterations": 20}
cw = build_attack("cw-l2", **cw_options)(victim.model, few.x, few.y, norm="l2", seed=0)
for i in range(ZOO_IMAGES):
    print(f"image {i}: ZOO-ADAM L2 {float(zoo.l2[i]):.3f} ({int(zoo.queries[i]):,} queries, "
          f"success {bool(zoo.success[i])}) | C&W-L2 L2 {float(cw.l2[i]):.3f} (success {bool(cw.success[i])})")
display(Image(filename=str(adversarial_grid({"zoo-adam": zoo, "cw-l2 (white-box)": cw}, pictures / "zoo.png",
                                            images=ZOO_IMAGES, class_names=victim.class_names,
                                            title="minimal L2: ZOO-ADAM vs C&W"))))
