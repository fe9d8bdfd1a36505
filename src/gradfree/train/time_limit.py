"""The time-limit rule shared by the in-process trainer and the strategy loop: stop before a step that would
end past the limit, judging a step's length by the longest of the last few."""

from __future__ import annotations

from collections import deque

STEP_TIMES_KEPT = 8
"""Recent step durations the rule looks at (enough for a search whose steps cycle through a few sizes; few
enough that the first step's compilation is soon forgotten)."""


class RecentSteps:
    """Durations of the last :data:`STEP_TIMES_KEPT` steps (or generations)."""

    def __init__(self) -> None:
        self._seconds: deque[float] = deque(maxlen=STEP_TIMES_KEPT)

    def add(self, seconds: float) -> None:
        """Record a step that took ``seconds``."""
        self._seconds.append(seconds)

    def next_ends_past(self, elapsed: float, limit: float | None) -> bool:
        """Whether, ``elapsed`` seconds into a ``limit`` (``None``: no limit), the next step would end past it."""
        return limit is not None and (elapsed >= limit or elapsed + max(self._seconds, default=0.0) > limit)
