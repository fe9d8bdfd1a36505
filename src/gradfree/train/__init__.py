"""The budgeted trainer: one harness for zeroth-order optimizers and backprop baselines."""

from __future__ import annotations

from gradfree.train.trainer import TrainConfig, Trainer, TrainResult

__all__ = ["TrainConfig", "TrainResult", "Trainer"]
