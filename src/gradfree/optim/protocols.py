"""What the trainer asks of an optimizer, named as protocols (checked with ``isinstance``, not ``getattr``).

* :class:`LossOnly` — an optimizer that works from losses alone while ``zeroth_order`` is true (read every
  step: a hybrid switches between a gradient-free and a backprop phase). The trainer then hands ``step`` a
  :class:`~gradfree.objective.parameters.ParameterObjective` closure and runs no backward pass; otherwise it
  runs one backprop step.
* :class:`Converging` — an optimizer that can tell the run it is done (grid search: a sweep gained less than
  its tolerance); the trainer then ends the run, "converged".
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class LossOnly(Protocol):
    """Works from loss values only (no ``.grad``) while :attr:`zeroth_order` is true."""

    @property
    def zeroth_order(self) -> bool:
        """Whether the next step needs only losses."""
        ...


@runtime_checkable
class Converging(Protocol):
    """Reports when further steps are pointless."""

    @property
    def converged(self) -> bool:
        """Whether the method has converged."""
        ...


def works_from_losses(optimizer: object) -> bool:
    """Whether ``optimizer``'s next step needs only losses (a :class:`LossOnly` optimizer in a loss-only phase)."""
    return isinstance(optimizer, LossOnly) and bool(optimizer.zeroth_order)


def has_converged(optimizer: object) -> bool:
    """Whether ``optimizer`` is :class:`Converging` and says it has converged."""
    return isinstance(optimizer, Converging) and bool(optimizer.converged)
