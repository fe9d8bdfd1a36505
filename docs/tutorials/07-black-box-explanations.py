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
# # 7. Black-box explanations
#
# A saliency map is a gradient of a class score with respect to the input; a zeroth-order estimator gets it
# from queries alone. This notebook explains the predictions of a trained classifier with
#
# * **ZO-SmoothGrad** — antithetic Gaussian queries `x ± sigma u`, whose expectation is exactly SmoothGrad's
#   (Smilkov et al., *SmoothGrad: removing noise by adding noise*, 2017, Sec. 3; Gaussian smoothing as in
#   Nesterov & Spokoiny 2017),
# * **FD saliency** — central differences over groups of pixels,
#
# against the black-box baselines on the same query counter — **occlusion** (Zeiler & Fergus, ECCV 2014,
# Sec. 4.2), **RISE** (Petsiuk et al., BMVC 2018), **KernelSHAP** (Lundberg & Lee, NeurIPS 2017), **LIME**
# (Ribeiro et al., KDD 2016) — and the white-box references by autograd (gradient, SmoothGrad). Every method has
# the call shape `EXPLAINERS.get(name)(model, x, target=None, queries=Q, access="logits", baseline=0.0,
# generator=...)`, with `Q` the query budget **per input**, everything included.
#
# The maps are scored by deletion and insertion (RISE's metric: the target's probability as the most
# important pixels are removed, or added back to a blurred image; low deletion and high insertion AUC are
# better), and the zeroth-order SmoothGrad is checked against its white-box expectation as queries grow.

# %% tags=["parameters"]
SIZE = "full"  # "small": the test suite (the digits victim, seconds); "full": the MNIST LeNet (minutes)
DATA_DIR = None  # a folder holding mnist/ (None: $GRADFREE_DATA, the cache, or a download)

# %%
PLAN = {  # victim, images, query budget per input, budgets of the convergence check
    "small": ("digits-mlp", 2, 100, (20, 100)),
    "full": ("mnist-lenet", 8, 1_000, (100, 300, 1_000, 3_000, 10_000)),
}
VICTIM, IMAGES, QUERIES, CONVERGENCE = PLAN[SIZE]
NOISE = 0.15  # SmoothGrad's noise, a fraction of each input's range (the paper finds 10-20% best)

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

from gradfree.explain import EXPLAINERS
from gradfree.explain.metrics import deletion_insertion
from gradfree.explain.pictures import cosine, heatmap_grid
from gradfree.victims import first_correct, load_victim

torch.set_num_threads(1)
victim = load_victim(VICTIM, seed=0, data_dir=DATA_DIR, download=DATA_DIR is None)  # trained once, cached
batch = first_correct(victim, IMAGES)
x, y = batch.x, batch.y
model = victim.model
if x.ndim == 2:  # a victim on flat inputs (the 8x8 digits): explain them as 1 x 8 x 8 images
    side = int(x.shape[1] ** 0.5)
    x, model = x.reshape(-1, 1, side, side), torch.nn.Sequential(torch.nn.Flatten(), victim.model)
print(f"victim {victim.name}: test accuracy {100 * victim.test_accuracy:.2f}%; explaining {len(y)} images "
      f"(classes {y.tolist()}) with {QUERIES:,} queries each")
pictures = Path(tempfile.mkdtemp(prefix="explain-"))


def explain(name: str, queries: int = QUERIES, **options):
    return EXPLAINERS.get(name)(model, x, target=y, queries=queries, access="logits", baseline=0.0,
                                generator=torch.Generator().manual_seed(0), **options)


# %%
methods = {
    "zo-smoothgrad": explain("zo-smoothgrad", noise=NOISE),
    "fd-saliency": explain("fd-saliency"),
    "occlusion": explain("occlusion"),
    "rise": explain("rise"),
    "kernel-shap": explain("kernel-shap"),
    "lime": explain("lime"),
    "gradient (white-box)": explain("gradient", queries=2),  # one forward for the class, one backward pass
    "smoothgrad (white-box)": explain("smoothgrad", noise=NOISE),
}
for name, e in methods.items():
    print(f"{name:24s} queries per input {int(e.queries.max()):6,d}   {e.seconds:6.2f} s")

# %% [markdown]
# ## The maps
#
# One row per image: the input, then each method's map (red: evidence for the explained class).

# %%
grid = heatmap_grid(x, {name: e.maps for name, e in methods.items()}, pictures / "maps.png",
                    captions=[f"class {int(c)}" for c in y], title=f"{victim.name}, {QUERIES:,} queries per input")
display(Image(filename=str(grid)))

# %% [markdown]
# ## Deletion and insertion
#
# Mean AUC over the images: the target's probability as pixels are deleted in the map's order (lower is
# better), and as they are inserted into a blurred copy (higher is better). A random order is the floor.

# %%
random_maps = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
rows = {**{name: e.maps for name, e in methods.items()}, "random order": random_maps}
print(f"{'method':24s} {'deletion AUC':>13s} {'insertion AUC':>14s}")
for name, maps in rows.items():
    curves = deletion_insertion(model, x, maps, targets=y, baseline=0.0)
    print(f"{name:24s} {float(curves.deletion.mean()):13.3f} {float(curves.insertion.mean()):14.3f}")

# %% [markdown]
# ## ZO-SmoothGrad converges to SmoothGrad
#
# The zeroth-order estimate is unbiased for the gradient of the Gaussian-smoothed score, which is what
# white-box SmoothGrad averages. Their cosine similarity, and the plain gradient's for comparison, against the
# query budget (the white-box SmoothGrad reference here uses 10,000 samples at the full size).

# %%
reference = explain("smoothgrad", queries=max(CONVERGENCE), noise=NOISE).maps
to_zo, to_gradient = [], []
for q in CONVERGENCE:
    estimate = explain("zo-smoothgrad", queries=q, noise=NOISE).maps
    to_zo.append(cosine(estimate, reference))
    to_gradient.append(cosine(estimate, methods["gradient (white-box)"].maps))
fig, ax = plt.subplots(figsize=(7, 4))
for label, values in (("to white-box SmoothGrad", to_zo), ("to the plain gradient", to_gradient)):
    ax.plot(CONVERGENCE, [float(v.median()) for v in values], marker="o", label=label)
ax.set(xscale="log", xlabel="queries per input", ylabel="cosine similarity (median over images)",
       title="ZO-SmoothGrad against autograd", ylim=(0, 1))
ax.grid(alpha=0.3, which="both")
ax.legend()
plt.show()
