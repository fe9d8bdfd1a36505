"""A tqdm progress bar (loss, evaluations/s, ETA) that stays quiet when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Progress over evaluations.

    Args:
        total: evaluation budget (``None`` when only a time limit is set).
        enabled: ``None`` means "only when stderr is a terminal".
        initial: evaluations already done (a resumed run).
    """

    def __init__(self, total: int | None, *, enabled: bool | None = None, initial: int = 0,
                 desc: str = "train") -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="eval", unit_scale=True, desc=desc,
                             dynamic_ncols=True, leave=False)

    def update(self, evaluations: int, **postfix: float) -> None:
        """Advance to ``evaluations`` done, showing ``postfix`` values."""
        if self._bar is None:
            return
        self._bar.update(evaluations - self._bar.n)
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
