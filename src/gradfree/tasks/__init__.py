"""Tasks: a dataset, its loss and its metrics, registered in :data:`TASKS`."""

from __future__ import annotations

from gradfree.tasks import mdp_mnist  # noqa: F401  (registers "mdp-mnist")
from gradfree.tasks.classification import ClassificationTask
from gradfree.tasks.registry import TASKS, build_task
from gradfree.tasks.regression import RegressionTask

__all__ = ["TASKS", "ClassificationTask", "RegressionTask", "build_task"]
