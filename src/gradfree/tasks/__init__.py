"""Tasks: a dataset, its loss and its metrics (the :class:`Task` protocol), registered in :data:`TASKS`."""

from __future__ import annotations

import gradfree.tasks.detection  # noqa: F401  (registers "car-detection", -f1, -ap50)
from gradfree.tasks import mdp_mnist  # noqa: F401  (registers "mdp-mnist")
from gradfree.tasks.classification import ClassificationTask
from gradfree.tasks.protocol import Metric, Task
from gradfree.tasks.registry import TASKS, build_task
from gradfree.tasks.regression import RegressionTask

__all__ = ["TASKS", "ClassificationTask", "Metric", "RegressionTask", "Task", "build_task"]
