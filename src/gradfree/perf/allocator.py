"""``gradfree perf allocator``: forward passes and training steps with glibc's default ``malloc`` thresholds
against :func:`gradfree.allocator.keep_freed_memory` (which every ``gradfree`` command sets at start).

Each setting runs in a fresh process (``python -m gradfree.perf.allocator --child system|kept``), since the
thresholds are the process's; the two take turns over ``--rounds`` rounds so that load from elsewhere falls
on both. A child builds the model, warms up, then times inference forwards (``no_grad``) and training steps
(forward, cross-entropy, backward, an SGD update) on one random batch for ``--seconds`` each, and reports the
median milliseconds per call and the minor page faults per call (``getrusage``), with the process's user and
system CPU seconds. The printed ratio is the default's time over the kept setting's: above 1, keeping freed
memory is faster.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from gradfree.allocator import keep_freed_memory
from gradfree.errors import ConfigError
from gradfree.perf.common import Column, environment, int_list, render_table, run_program, set_threads

MODES = ("system", "kept")


def _timed(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Median milliseconds per call and minor page faults per call of ``fn`` over at least ``seconds``."""
    fn()
    walls: list[float] = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    while sum(walls) < seconds or len(walls) < 3:
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return statistics.median(walls) * 1e3, faults / len(walls)


def measure(mode: str, *, model: str, shape: list[int], batch: int, seconds: float, seed: int) -> dict[str, Any]:
    """One child's measurement (see the module docstring)."""
    from gradfree.models.registry import build_model

    kept = keep_freed_memory() if mode == "kept" else False
    net = build_model(model, seed=seed, input_shape=tuple(shape), num_classes=10)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *shape, generator=generator)
    y = torch.randint(0, 10, (batch,), generator=generator)

    def forward() -> None:
        with torch.no_grad():
            net(x)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        with torch.no_grad():
            for p in net.parameters():
                p.add_(p.grad, alpha=-1e-3)  # type: ignore[arg-type]

    forward_ms, forward_faults = _timed(forward, seconds)
    step_ms, step_faults = _timed(step, seconds)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"mode": mode, "kept": kept, "forward_ms": forward_ms, "forward_faults": forward_faults,
            "step_ms": step_ms, "step_faults": step_faults, "user_s": usage.ru_utime, "system_s": usage.ru_stime}


def run_allocator(*, model: str, shape: list[int], batch: int, seconds: float, rounds: int, seed: int,
                  threads: int | None) -> list[dict[str, Any]]:
    """Run the children, the two settings taking turns; one result per child."""
    results = []
    for _ in range(rounds):
        for mode in MODES:
            cmd = [sys.executable, "-m", "gradfree.perf.allocator", "--child", mode, "--model", model,
                   "--shape", ",".join(map(str, shape)), "--batch", str(batch), "--seconds", str(seconds),
                   "--seed", str(seed)] + (["--threads", str(threads)] if threads else [])
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ConfigError(f"the {mode} child failed: {done.stderr.strip().splitlines()[-1:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def format_results(results: list[dict[str, Any]]) -> str:
    """The median per setting and the ratio line."""
    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results if r["mode"] == mode)

    columns = [Column("malloc", 30, "<"), Column("forward ms", 10), Column("faults", 8),
               Column("step ms", 10, bar=True), Column("faults", 8), Column("system CPU share", 16, bar=True)]
    labels = {"system": "glibc defaults", "kept": "keep_freed_memory()"}
    rows = []
    for mode in MODES:
        share = statistics.median(r["system_s"] / max(r["user_s"] + r["system_s"], 1e-9)
                                  for r in results if r["mode"] == mode)
        rows.append([labels[mode], f"{med(mode, 'forward_ms'):.1f}", f"{med(mode, 'forward_faults'):.0f}",
                     f"{med(mode, 'step_ms'):.1f}", f"{med(mode, 'step_faults'):.0f}", f"{share:.0%}"])
    ratio = (f"glibc defaults / keep_freed_memory(), time per call (medians over {len(results) // 2} rounds): "
             f"forward {med('system', 'forward_ms') / med('kept', 'forward_ms'):.2f}x, "
             f"training step {med('system', 'step_ms') / med('kept', 'step_ms'):.2f}x")
    if not all(r["kept"] for r in results if r["mode"] == "kept"):
        ratio += " (keep_freed_memory() did not apply here: not glibc, or MALLOC_* / GRADFREE_MALLOC set)"
    return render_table(columns, rows) + "\n" + ratio


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradfree perf allocator", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cifar:0.5", help="a model spec (default cifar:0.5, the CIFAR-10 suites')")
    p.add_argument("--shape", default="3,32,32", help="input shape of one example (default 3,32,32)")
    p.add_argument("--batch", type=int, default=256, help="batch size (default 256, the cifar10 long size's)")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of timed calls per measurement (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the two settings taking turns (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads in each child (default 1)")
    p.add_argument("--child", choices=MODES, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the comparison (or, with ``--child``, one measurement printed as a JSON line); exit status."""
    args = build_parser().parse_args(argv)
    return run_program(lambda: _main(args))


def _main(args: argparse.Namespace) -> None:
    try:
        shape = int_list(args.shape)
    except argparse.ArgumentTypeError as err:
        raise ConfigError(f"--shape: {err} (e.g. 3,32,32)") from None
    if args.batch < 1 or args.seconds <= 0 or args.rounds < 1:
        raise ConfigError("--batch and --rounds must be >= 1 and --seconds > 0")
    set_threads(args.threads)
    if args.child is not None:
        print(json.dumps(measure(args.child, model=args.model, shape=shape, batch=args.batch,
                                 seconds=args.seconds, seed=args.seed)))
        return
    results = run_allocator(model=args.model, shape=shape, batch=args.batch, seconds=args.seconds,
                            rounds=args.rounds, seed=args.seed, threads=args.threads)
    print(f"{args.model} on a batch of {args.batch} x {'x'.join(map(str, shape))}, each setting in fresh processes")
    print(format_results(results))
    print(environment())


if __name__ == "__main__":
    sys.exit(main())
