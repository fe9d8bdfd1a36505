"""Tasks: a dataset, its loss and its metrics, registered in :data:`TASKS`."""

from __future__ import annotations

from gradfree.tasks.classification import ClassificationTask
from gradfree.tasks.registry import TASKS, build_task

__all__ = ["TASKS", "ClassificationTask", "build_task"]
