"""What the measurement programs share: interleaved timing, fixed-width tables, the environment line and the
command-line plumbing.

Every ``gradfree perf ...`` program measures rates by letting the measured functions *take turns*
(:func:`take_turns`): one call (or chunk of calls) each per round, until each has enough time and calls, so a
burst of load from elsewhere on a shared machine slows all of them alike instead of whichever happened to be
running, which keeps the ratios between them honest. Each call's wall time and the measuring thread's CPU time
are recorded; a rate is a median over calls. The table and environment helpers keep the printed output in
one format.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

from gradfree.errors import ConfigError, GradfreeError

R = TypeVar("R")


@dataclass
class Timing(Generic[R]):
    """The timed calls of one function: wall and CPU seconds per call, and the last call's result."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    results: list[R] = field(default_factory=list)

    @property
    def last(self) -> R:
        """The last call's result."""
        return self.results[-1]

    def median_rate(self, work: Callable[[R], float] | float, *, cpu: bool = False) -> float:
        """The median over calls of ``work / seconds`` (``work`` a number, or a function of a call's result)."""
        seconds = self.cpu if cpu else self.wall
        units = [work(r) if callable(work) else work for r in self.results]
        return statistics.median(u / max(s, 1e-12) for u, s in zip(units, seconds, strict=True))


def take_turns(fns: Mapping[str, Callable[[], R]], *, min_time: float, min_calls: int,
               warmup: Mapping[str, Callable[[], Any]] | None = None,
               sync: Callable[[], None] = lambda: None) -> dict[str, Timing[R]]:
    """Time ``fns`` taking turns, one call each per round, until each has ``min_time`` seconds and
    ``min_calls`` calls.

    Args:
        fns: the functions to time, by name.
        min_time: seconds of timed calls each, at least.
        min_calls: timed calls each, at least.
        warmup: an untimed call per name before timing (default: one call of the function itself), so that
            first-call costs (allocations, kernel choice, compilation, tracing) are not measured.
        sync: called after every call (e.g. ``torch.cuda.synchronize``) and inside the timing.
    """
    for name, fn in fns.items():
        (warmup or {}).get(name, fn)()
        sync()
    out: dict[str, Timing[R]] = {name: Timing() for name in fns}
    while any(sum(t.wall) < min_time or len(t.wall) < min_calls for t in out.values()):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            result = fn()
            sync()
            out[name].wall.append(time.perf_counter() - wall)
            out[name].cpu.append(time.thread_time() - cpu)
            out[name].results.append(result)
    return out


@dataclass(frozen=True)
class Column:
    """One column of a fixed-width table: its title, width and alignment (``"<"`` or ``">"``), and whether a
    ``|`` separates it from the column before."""

    title: str
    width: int
    align: str = ">"
    bar: bool = False


def render_table(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> str:
    """A header, a rule and one line per row of already formatted cells."""

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, (col, cell) in enumerate(zip(columns, cells, strict=True)):
            if i:
                parts.append(" | " if col.bar else " ")
            parts.append(f"{cell:{col.align}{col.width}}")
        return "".join(parts)

    header = line([c.title for c in columns])
    return "\n".join([header, "-" * len(header), *(line(r) for r in rows)])


def environment(*, device: torch.device | str | None = None, extras: Sequence[str] = ()) -> str:
    """One line: torch and its intra-op threads, ``extras``, python, CPUs, load average, device."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    parts = [f"torch {torch.__version__} ({torch.get_num_threads()} threads)", *extras,
             f"python {sys.version.split()[0]}", f"{os.cpu_count()} CPUs", f"load average {load}"]
    if device is not None:
        dev = torch.device(device)
        where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
        parts.append(f"device {dev} ({where})")
    return ", ".join(parts)


def int_list(text: str) -> list[int]:
    """An argparse type: integers separated by commas or spaces (``"1,8,32"``)."""
    try:
        values = [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def word_list(text: str) -> list[str]:
    """An argparse type: names separated by commas or spaces."""
    return [t for t in text.replace(",", " ").split() if t]


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` unless ``None``; a :class:`ConfigError` below 1."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError("--threads must be >= 1")
    torch.set_num_threads(threads)


def run_program(body: Callable[[], None]) -> int:
    """Run a measurement program's ``body``: 0 when it finishes, 2 with one ``error:`` line for a user
    mistake (:class:`~gradfree.errors.GradfreeError`)."""
    try:
        body()
    except GradfreeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
