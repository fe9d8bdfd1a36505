"""``gradfree perf memory``: MeZO's peak memory stays at inference level; stored perturbations do not.

MeZO (Malladi et al. 2023, Alg. 1) regenerates its perturbation ``z`` from a seed, one parameter tensor at a
time, so its extra memory over inference is at most one parameter-sized tensor. ZO-SGD with the Gaussian
estimator builds a flat copy of the parameters and ``(q + 1) x D`` perturbed points (forward differences) plus
the ``q x D`` directions, so its extra memory grows with ``q`` times the parameter size.

Each method is measured in a fresh subprocess (``python -m gradfree.perf.memory --child METHOD``), so
that no allocation of another method or of the parent is counted. The child builds the MLP, runs one
warm-up forward, then

1. resets the peak, runs one inference forward on a batch and reads the peak: the *inference peak*;
2. resets the peak, runs ``steps`` optimizer steps and reads the peak again: the *training peak*.

``extra = training peak - inference peak``. On the CPU the peak is the resident-set high-water mark
``VmHWM`` of ``/proc/self/status``, reset by writing ``5`` to ``/proc/self/clear_refs``; on CUDA it is
``torch.cuda.max_memory_allocated``, reset with ``torch.cuda.reset_peak_memory_stats``. Two traps avoided:

* ``getrusage(RUSAGE_SELF).ru_maxrss`` of an exec'd child starts at the *parent's* peak (Linux carries the
  old address space's high-water mark across ``exec``), so a parent holding torch would hide the child's
  numbers; it is recorded in the child's JSON for reference only, and used where ``/proc`` is absent.
* glibc keeps freed heap memory resident and reuses it, so a peak measured after earlier allocations can
  miss new ones. The child runs with ``MALLOC_MMAP_THRESHOLD_=65536`` (unless the caller set it): every
  block of 64 KiB or more is its own mapping, returned to the system when freed, so the resident set
  follows the live tensors.

The ZO-SGD closure is the plain ``torch.optim`` one (no batched population path), the least memory that
optimizer needs. Use a small batch so activations are negligible against the parameters.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import gradfree
from gradfree.errors import ConfigError, GradfreeError
from gradfree.models.init import reset_parameters
from gradfree.models.mlp import mlp, parse_widths
from gradfree.perf.common import environment, int_list, run_program, set_threads

WIDTHS = "-".join(["1024"] * 12)
"""Eleven 1024 x 1024 layers: 11,545,600 float32 parameters (44 MiB), no tensor above 4 MiB."""
METHODS: tuple[str, ...] = ("inference", "mezo", "zo-sgd")
DIRECTIONS: tuple[int, ...] = (1, 8)
MIB = 2**20


@dataclass(frozen=True)
class MemoryRow:
    """Peak memory of one method, measured in its own process.

    Attributes:
        method: ``"inference"``, ``"mezo"`` or ``"zo-sgd q=<q>"``.
        params: number of parameters.
        param_mib: their size (MiB).
        largest_mib: the largest single parameter tensor (MiB): MeZO's ``z`` is one such tensor at a time.
        inference_mib: peak of one inference forward (MiB; on the CPU the whole process's resident set).
        training_mib: peak during the optimizer steps (MiB).
        extra_mib: ``training_mib - inference_mib``.
        extra_x_params: ``extra_mib / param_mib``.
        source: ``"VmHWM"``, ``"ru_maxrss"`` or ``"cuda"``: where the peaks come from.
        peak_reset: whether the peak was reset before each phase (else both are lifetime peaks).
        seconds: wall time of the steps.
    """

    method: str
    params: int
    param_mib: float
    largest_mib: float
    inference_mib: float
    training_mib: float
    extra_mib: float
    extra_x_params: float
    source: str
    peak_reset: bool
    seconds: float


# ---------------------------------------------------------------------------------------------- child side


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmHWM``, ``VmRSS``), or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the resident-set high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Peak:
    """Reads and resets the peak memory of this process on one device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            self.source, self.can_reset = "cuda", True
        else:
            self.source = "VmHWM" if _status_kib("VmHWM") is not None else "ru_maxrss"
            self.can_reset = self.source == "VmHWM" and _reset_peak_rss()

    def reset(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.can_reset:
            _reset_peak_rss()

    def read_mib(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / MIB
        if self.source == "VmHWM":
            return (_status_kib("VmHWM") or 0) / 1024
        return _ru_maxrss_kib() / 1024


def _ru_maxrss_kib() -> int:
    import resource  # POSIX only

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def measure(method: str, *, widths: str, batch: int, steps: int, directions: int, device: str,
            seed: int) -> dict[str, Any]:
    """Measure one method in this process (the child's work); returns the JSON-able row.

    Args:
        method: ``"inference"`` (forward passes only), ``"mezo"`` or ``"zo-sgd"``.
        widths: MLP widths, e.g. ``"1024-1024-1024"``.
        batch: input rows.
        steps: optimizer steps (for ``"inference"``: that many forward passes).
        directions: ``q`` of ZO-SGD (forward differences, Gaussian estimator).
        device: ``"cpu"`` or ``"cuda"``.
        seed: seeds the private generator of weights, inputs and the optimizers.
    """
    from gradfree.optim.mezo import MeZO
    from gradfree.optim.zo_sgd import ZOSGD

    # torch.optim.Optimizer imports torch._dynamo (~70 MiB) when built: import it in every child, so the
    # inference peaks of all methods hold the same modules.
    with contextlib.suppress(ImportError):
        import torch._dynamo  # noqa: F401
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    model = reset_parameters(mlp(widths), generator=gen).to(dev)
    params = sum(p.numel() for p in model.parameters())
    sizes = parse_widths(widths)
    x = torch.randn(batch, sizes[0], generator=gen).to(dev)
    y = torch.randint(0, sizes[-1], (batch,), generator=gen).to(dev)

    def closure() -> torch.Tensor:
        return F.cross_entropy(model(x), y)

    step: Callable[[], object]
    if method == "inference":
        step = torch.no_grad()(closure)
    elif method == "mezo":
        mezo = MeZO(model.parameters(), lr=1e-4, smoothing=1e-3, seed=seed)
        step = functools.partial(mezo.step, closure)
    elif method == "zo-sgd":
        zo_sgd = ZOSGD(model.parameters(), lr=1e-4, estimator="gaussian", num_directions=directions,
                       smoothing=1e-3, difference="forward", seed=seed)
        step = functools.partial(zo_sgd.step, closure)
    else:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")

    peak = _Peak(dev)
    with torch.no_grad():
        closure()  # warm-up: lazily created kernels and thread pools are not the method's memory
    peak.reset()
    with torch.no_grad():
        closure()
    inference = peak.read_mib()
    peak.reset()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    training = peak.read_mib()
    param_mib = params * next(model.parameters()).element_size() / MIB
    largest_mib = max(p.numel() * p.element_size() for p in model.parameters()) / MIB
    label = f"zo-sgd q={directions}" if method == "zo-sgd" else method
    return {
        "method": label, "params": params, "param_mib": param_mib, "largest_mib": largest_mib,
        "inference_mib": inference,
        "training_mib": training, "extra_mib": training - inference,
        "extra_x_params": (training - inference) / param_mib, "source": peak.source,
        "peak_reset": peak.can_reset, "seconds": seconds,
        "ru_maxrss_kib": _ru_maxrss_kib() if dev.type == "cpu" else None,
        "widths": widths, "batch": batch, "steps": steps, "device": str(dev), "torch": torch.__version__,
    }


# --------------------------------------------------------------------------------------------- parent side


def _child_env() -> dict[str, str]:
    """The environment of a child: this one, gradfree importable, glibc mapping every large block."""
    env = dict(os.environ)
    src = str(Path(gradfree.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    return env


def _run_child(method: str, *, widths: str, batch: int, steps: int, directions: int, device: str,
               seed: int, threads: int | None) -> MemoryRow:
    cmd = [sys.executable, "-m", "gradfree.perf.memory", "--child", method, "--widths", widths,
           "--batch", str(batch), "--steps", str(steps), "--directions", str(directions), "--device", device,
           "--seed", str(seed)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise GradfreeError(f"the {method} measurement failed (exit {done.returncode}): " + " | ".join(tail))
    data = json.loads(lines[-1])
    return MemoryRow(**{k: data[k] for k in MemoryRow.__dataclass_fields__})


def run_memory(
    *,
    widths: str = WIDTHS,
    batch: int = 8,
    steps: int = 2,
    methods: Sequence[str] = METHODS,
    directions: Sequence[int] = DIRECTIONS,
    device: str = "cpu",
    seed: int = 0,
    threads: int | None = None,
) -> list[MemoryRow]:
    """Measure each method in a fresh subprocess; ``"zo-sgd"`` runs once per ``q`` in ``directions``.

    Args:
        widths: MLP widths (the default has 11.5M parameters).
        batch: input rows (small, so activations stay negligible).
        steps: optimizer steps per measurement.
        methods: among ``"inference"``, ``"mezo"``, ``"zo-sgd"``.
        directions: the ``q`` values of ZO-SGD.
        device: ``"cpu"`` or ``"cuda"``.
        seed: seeds weights, inputs and optimizers.
        threads: ``torch.set_num_threads`` in the children (default: torch's).

    Returns:
        one :class:`MemoryRow` per measurement, in the order asked.

    Raises:
        ConfigError: for a bad argument; GradfreeError when a child fails (its last lines are quoted).
    """
    parse_widths(widths)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    if batch < 1 or steps < 1 or not directions or min(directions) < 1:
        raise ConfigError(f"need batch, steps and every q >= 1; got {batch}, {steps}, {list(directions)}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch.cuda.is_available() is False; use --device cpu")
    rows = []
    for method in methods:
        for q in directions if method == "zo-sgd" else (0,):
            rows.append(_run_child(method, widths=widths, batch=batch, steps=steps, directions=q or 1,
                                   device=device, seed=seed, threads=threads))
    return rows


def format_table(rows: Sequence[MemoryRow]) -> str:
    """A fixed-width table of the rows, then the ratio of each ZO-SGD's extra memory to MeZO's."""
    header = (f"{'method':<12} {'params MiB':>10} {'inference peak MiB':>18} {'training peak MiB':>17} "
              f"{'extra MiB':>9} {'extra / params':>14}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.method:<12} {r.param_mib:>10.1f} {r.inference_mib:>18.1f} {r.training_mib:>17.1f} "
                     f"{r.extra_mib:>9.1f} {r.extra_x_params:>13.2f}x")
    mezo = next((r for r in rows if r.method == "mezo"), None)
    for r in rows:
        if mezo is not None and r.method.startswith("zo-sgd"):
            # A MeZO extra of about zero (measurement noise) makes the ratio meaningless: say so.
            ratio = (f"{r.extra_mib / mezo.extra_mib:.1f}x" if mezo.extra_mib > 0.5
                     else f"n/a (mezo extra {mezo.extra_mib:.1f} MiB)")
            lines.append(f"extra memory {r.method} / mezo: {ratio}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``gradfree perf memory`` (``--child`` is the internal per-method mode)."""
    parser = argparse.ArgumentParser(
        prog="gradfree perf memory",
        description="Peak memory of MeZO against ZO-SGD (Gaussian estimator) over inference, one process each.",
    )
    parser.add_argument("--widths", default=WIDTHS, help="MLP widths joined by '-' (default: 12 x 1024, 11.5M params)")
    parser.add_argument("--batch", type=int, default=8, help="input rows (default 8)")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps (default 2)")
    parser.add_argument("--methods", default=",".join(METHODS), help="among inference,mezo,zo-sgd")
    parser.add_argument("--directions", default=",".join(map(str, DIRECTIONS)), help="ZO-SGD q values (default 1,8)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in each measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", metavar="METHOD", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the comparison (or, with ``--child``, one measurement printed as a JSON line); exit status."""
    args = build_parser().parse_args(argv)
    return run_program(lambda: _main(args))


def _main(args: argparse.Namespace) -> None:
    try:
        directions = int_list(args.directions)
    except argparse.ArgumentTypeError as err:
        raise ConfigError(f"--directions: {err} (e.g. 1,8)") from None
    set_threads(args.threads)
    if args.child is not None:
        print(json.dumps(measure(args.child, widths=args.widths, batch=args.batch, steps=args.steps,
                                 directions=directions[0], device=args.device, seed=args.seed)))
        return
    rows = run_memory(widths=args.widths, batch=args.batch, steps=args.steps,
                      methods=args.methods.replace(",", " ").split(), directions=directions,
                      device=args.device, seed=args.seed, threads=args.threads)
    first = rows[0]
    print(f"MLP {args.widths}: {first.params:,} float32 parameters ({first.param_mib:.1f} MiB), batch {args.batch}, "
          f"{args.steps} steps, each method in a fresh process")
    print(format_table(rows))
    if mezo := next((r for r in rows if r.method == "mezo"), None):
        print(f"mezo's extra is about one parameter tensor (z is regenerated tensor by tensor): the largest here "
              f"is {mezo.largest_mib:.1f} MiB")
    how = "reset before each phase" if first.peak_reset else "lifetime peaks (no reset possible)"
    print(f"peak = {first.source} ({how}); extra = training peak - inference peak; ZO-SGD: gaussian, forward "
          f"differences; {environment(device=args.device)}")


if __name__ == "__main__":
    raise SystemExit(main())
