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
# # 8. The car detector
#
# A small single-stage, anchor-free YOLO-style detector (`yolo:tiny`, 211k parameters: plain 3x3
# convolutions, a one-step feature pyramid, a stride-8 head predicting objectness and box deltas per cell;
# Redmon et al., CVPR 2016; Ge et al., *YOLOX*, 2021) on the Kaggle car-detection set (one class, frames of
# one video, split by frame ranges with gaps so neighbouring frames do not leak between splits). The task
# `car-detection` evaluates COCO-style mAP (checked against pycocotools in the test suite) and monitors
# mAP@0.5.
#
# Three routes, each from the library's public API:
#
# 1. **backprop from scratch**: Adam with box-aware augmentation (flips, zooms, shifts, colour jitter);
# 2. **the hybrid head route**: the trained backbone frozen, its features computed once, the head
#    re-initialised and trained alone by **ZO-Adam** — gradient-free, and exact: the head on cached features
#    is the model on the images;
# 3. **gradient-free fine-tuning on a non-differentiable objective**: sep-CMA-ES (Ros & Hansen 2008) trains
#    the Adam detector's head further on `1 - F1` at IoU 0.5, which has no gradient at all.
#
# **Data**: the car set is looked up as the library does (`DATA_DIR`, `$GRADFREE_DATA`, the cache; it has no
# download mirror). At the small size the test suite runs on a generated folder in the same layout.

# %% tags=["parameters"]
SIZE = "full"  # "small": the test suite (seconds); "full": yolo:tiny, a few minutes of training per route
DATA_DIR = None  # a folder holding car-detection/ (None: $GRADFREE_DATA or the cache)

# %%
PLAN = {  # model, seconds of Adam, seconds of each head route, validations per run, training images (None: all)
    "small": ("yolo:4-4-4-4-4", 1.0, 0.5, 2, 16),
    "full": ("yolo:tiny", 240.0, 80.0, 8, None),
}
MODEL, ADAM_SECONDS, HEAD_SECONDS, VALIDATIONS, TRAIN_IMAGES = PLAN[SIZE]

# %%
import copy
import tempfile
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

from gradfree.models import build_model
from gradfree.optim import build_optimizer
from gradfree.tasks import build_task
from gradfree.tasks.detection_features import feature_task, reinitialise_head
from gradfree.train import TrainConfig, Trainer

torch.set_num_threads(1)
task = build_task("car-detection", data_dir=DATA_DIR, download=False, train_subset=TRAIN_IMAGES)
data = task.data
print(f"splits: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test images, "
      f"letterboxed to {tuple(data.input_shape)}; cars in the training split: "
      f"{sum(int(data.train.y[i].shape[0]) for i in range(len(data.train)))}")
pictures = Path(tempfile.mkdtemp(prefix="detector-"))

# %% [markdown]
# ## 1. Backprop from scratch
#
# Adam (lr 2e-3, batches of 16, the `car-detection` suite's setting) for a fixed training time; validation
# every few seconds (not charged), the best-mAP weights kept.

# %%
model = build_model(MODEL, seed=0, input_shape=data.input_shape, num_classes=1)
print(f"{MODEL}: {sum(p.numel() for p in model.parameters()):,} parameters, head "
      f"{sum(p.numel() for p in model.head.parameters()):,}")
adam = build_optimizer("adam", model.parameters(), lr=2e-3)
config = TrainConfig(time_limit=ADAM_SECONDS, batch_size=16, augment="standard", seed=2, progress=False,
                     eval_every=max(1, round(ADAM_SECONDS * 3.0 / VALIDATIONS)))  # about 3 steps a second
adam_result = Trainer(task, model, adam, config).fit()
print(f"Adam: {adam_result.steps} steps in {adam_result.wall_time:.0f} s; val mAP@0.5 "
      f"{adam_result.final['val_map50']:.3f}, test mAP@0.5 {adam_result.final['test_map50']:.3f}, "
      f"test mAP@[.5:.95] {adam_result.final['test_map']:.3f}")

# %% [markdown]
# ## 2. The hybrid head route: a new head trained by ZO-Adam on cached features
#
# `feature_task` runs the frozen backbone once over every split; the head (a 1x1 convolution) then sees only
# its features. The head is re-drawn from a seed, so what it reaches is the gradient-free method's work.

# %%
hybrid_model = copy.deepcopy(model)
head = reinitialise_head(hybrid_model, seed=5)
print(f"re-initialised head: test mAP@0.5 {task.evaluate(hybrid_model, data.test)['map50']:.3f}")
features = feature_task(task, hybrid_model.backbone)
zo = build_optimizer("zo-adam", head.parameters(), lr=0.01, num_directions=20, seed=1)
hybrid_result = Trainer(features, head, zo, TrainConfig(time_limit=HEAD_SECONDS, batch_size=32, seed=2,
                                                        eval_every=max(1, round(HEAD_SECONDS * 150 / VALIDATIONS)),
                                                        progress=False)).fit()
hybrid_test = task.evaluate(hybrid_model, data.test)
print(f"ZO-Adam head: {hybrid_result.evaluations:,} evaluations in {hybrid_result.wall_time:.0f} s, no backward "
      f"pass ({hybrid_result.backward}); test mAP@0.5 {hybrid_test['map50']:.3f}")

# %% [markdown]
# ## 3. Fine-tuning the Adam detector's head on 1 - F1
#
# F1 at IoU 0.5 counts matched boxes: piecewise constant in the weights, its gradient is zero almost
# everywhere. A population strategy needs only its values.

# %%
tuned_model = copy.deepcopy(model)
f1_features = feature_task(replace(task, objective="f1"), tuned_model.backbone)
before = task.evaluate(tuned_model, data.val)
cma = build_optimizer("sep-cma", tuned_model.head.parameters(), sigma=0.01, seed=1)
tuned_result = Trainer(f1_features, tuned_model.head, cma,
                       TrainConfig(time_limit=HEAD_SECONDS, batch_size=64, seed=2, restore_best=False,
                                   eval_every=max(1, round(HEAD_SECONDS * 20 / VALIDATIONS)), progress=False)).fit()
after = task.evaluate(tuned_model, data.val)
print(f"sep-CMA-ES on 1 - F1: {tuned_result.evaluations:,} evaluations in {tuned_result.wall_time:.0f} s")
print(f"validation F1 {before['f1']:.3f} -> {after['f1']:.3f}; mAP@0.5 {before['map50']:.3f} -> "
      f"{after['map50']:.3f}; precision {before['precision']:.3f} -> {after['precision']:.3f}, recall "
      f"{before['recall']:.3f} -> {after['recall']:.3f}")

# %% [markdown]
# ## Training curves and precision-recall
#
# Validation mAP@0.5 during each route, and the test precision-recall curves at IoU 0.5 of the three
# detectors.

# %%
from gradfree.detection.pictures import precision_recall_plot
from gradfree.tasks.detection_metrics import average_precision

fig, ax = plt.subplots(figsize=(8, 4))
for label, result, offset in (("Adam from scratch", adam_result, 0.0),
                              ("ZO-Adam head (hybrid)", hybrid_result, adam_result.wall_time),
                              ("sep-CMA-ES on 1 - F1", tuned_result, adam_result.wall_time)):
    rows = [r for r in result.history if r.get("kind") == "val"]
    ax.plot([offset + r["time"] for r in rows], [r["val_map50"] for r in rows], marker=".", label=label)
ax.set(xlabel="training time (s; the head routes start from the Adam detector)", ylabel="validation mAP@0.5",
       title=f"car detection, {MODEL}")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

curves = {}
for label, detector in (("Adam", model), ("hybrid (ZO-Adam head)", hybrid_model), ("Adam + F1 fine-tuning",
                                                                                    tuned_model)):
    dets, truths, _ = task.detections(detector, data.test)
    curves[label] = average_precision(dets, truths).curve(0.5)
display(Image(filename=str(precision_recall_plot(curves, pictures / "pr.png", title="test split, IoU 0.5"))))

# %% [markdown]
# ## Detections on test images
#
# True boxes solid, predictions dashed with their scores (above the task's score threshold), on six test
# images spread over the split, in the images' own pixels.

# %%
from gradfree.detection.pictures import canvas_panel, detection_grid
from gradfree.tasks.detection import decode

test = data.test
rows = sorted({round(i * (len(test) - 1) / 5) for i in range(6)})
index = torch.tensor(rows)
x, y = test.x[index], test.y[index]
model.eval()
with torch.no_grad():
    found = decode(model(x), task.criterion, task.decode_settings)
panels = [canvas_panel(x[i], y.letterbox(i), y[i], boxes, scores, title=f"test image {rows[i]}: "
                       f"{y[i].shape[0]} car(s)") for i, (boxes, scores) in enumerate(found)]
display(Image(filename=str(detection_grid(panels, pictures / "test.png", columns=3,
                                          score_threshold=task.score_threshold, title="Adam detector"))))
