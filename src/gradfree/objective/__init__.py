"""What is minimised: one home for objectives over parameters and over inputs.

* :mod:`~gradfree.objective.vector` — the shape every estimator and strategy speaks: ``(P, D) -> (P,)``.
* :mod:`~gradfree.objective.counter` — the run's :class:`EvaluationCounter`.
* parameter space: :mod:`~gradfree.objective.population` (a population of flat parameter vectors on one
  batch, batched), :mod:`~gradfree.objective.coordinates` (single-weight changes and the greedy pass),
  :mod:`~gradfree.objective.closure` (what a closure can do, named by protocols, and plain-closure
  fallbacks), :mod:`~gradfree.objective.parameters` (the trainer's closure over one batch) and
  :mod:`~gradfree.objective.problem` (a model, its loss and the training batches, shipped to workers);
* input space: :mod:`~gradfree.objective.input_space` (a black-box model with an access level, an exact
  query counter and a query budget).
"""

from __future__ import annotations

from gradfree.objective.counter import EvaluationCounter
from gradfree.objective.input_space import BlackBox, InputObjective, QueryBudgetExceeded
from gradfree.objective.vector import VectorObjective

__all__ = ["BlackBox", "EvaluationCounter", "InputObjective", "QueryBudgetExceeded", "VectorObjective"]
