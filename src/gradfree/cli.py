"""The ``gradfree`` command line: a thin shell that parses arguments and calls the library.

A user mistake (bad argument, unknown name, missing data) prints one line and exits with status 2;
only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from gradfree.allocator import keep_freed_memory
from gradfree.errors import GradfreeError


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as a Python literal (number, bool, tuple...) or else a string;
    ``true`` and ``false`` in any case are booleans (as a string, ``false`` would read as true)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. num_directions=20), got {text!r}")
    if raw.lower() in ("true", "false"):
        return key, raw.lower() == "true"
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def _batch_size(text: str) -> int | None:
    if text == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be a positive integer or 'full', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"batch size must be positive, got {value}")
    return value


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line on stderr (and exit status 2), never a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train one model with one optimizer under a budget",
                       description="Train a model on a task with a zeroth-order or gradient optimizer. "
                                   "The budget counts forward passes (one parameter vector over one batch).")
    p.add_argument("--task", default="digits", help="task name (see `gradfree list tasks`); default digits")
    p.add_argument("--model", default=None, help="model spec, e.g. mlp:64-32-10 (default: the task's)")
    p.add_argument("--optimizer", default="zo-adam", help="optimizer name (see `gradfree list optimizers`)")
    p.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: the optimizer's)")
    p.add_argument("--opt", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                   help="optimizer option, repeatable, e.g. --opt num_directions=20 --opt smoothing=1e-3")
    p.add_argument("--budget", type=_positive_int, default=None, help="evaluation budget (e.g. 200000)")
    p.add_argument("--time", type=_positive_float, default=None, dest="time_limit",
                   help="wall-time budget in seconds of training")
    p.add_argument("--batch-size", type=_batch_size, default=128, help="rows per step or 'full' (default 128)")
    p.add_argument("--eval-every", type=_positive_int, default=5000,
                   help="evaluations between validations and checkpoints (default 5000)")
    p.add_argument("--patience", type=_positive_int, default=None,
                   help="stop after this many validations without improvement (default: never)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, optimizer and batch order")
    p.add_argument("--train-subset", type=_positive_int, default=None,
                   help="seeded stratified subset of the training split (MNIST), e.g. 5000")
    p.add_argument("--augment", default=None, metavar="SPEC",
                   help="augment the training batches of image tasks, e.g. shift:1 or shift:4,hflip ("
                        "shift:N moves each image by up to N pixels, hflip mirrors half of them); default none")
    p.add_argument("--out", default=None, help="output folder (metrics.jsonl, checkpoint.pt, result.json)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="with --resume, also load optimizer state stored as a pickle (the nevergrad and pycma "
                        "adapters); unpickling runs code: only for checkpoints you made")
    p.add_argument("--data-dir", default=None, help="folder holding dataset files (else GRADFREE_DATA, cache)")
    p.add_argument("--no-download", action="store_true", help="never download missing dataset files")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N or mps")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: torch's; 1 is fastest for small models on a busy machine)")
    p.add_argument("--ray-address", default=None,
                   help="score a population strategy's generations on Ray: 'local', 'auto' or ray://HOST:10001")
    p.add_argument("--ray-actors", type=_positive_int, default=None, help="Ray actors (default: one per CPU)")


def _train(args: argparse.Namespace) -> int:
    from gradfree.run import RunSpec, check_out_dir, resolve_device, train_run

    if args.resume and args.out is None:
        raise GradfreeError("--resume needs --out, the folder of the run to continue")
    if args.trust_checkpoint and not args.resume:
        raise GradfreeError("--trust-checkpoint applies to --resume only")
    if args.out is not None:
        check_out_dir(Path(args.out), resume=args.resume)
    resolve_device(args.device)  # a bad device name is one line now, not a traceback later
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    options = dict(args.opt)
    if args.lr is not None:
        options["lr"] = args.lr
    spec = RunSpec(task=args.task, model=args.model, optimizer=args.optimizer, options=options,
                   budget=args.budget, time_limit=args.time_limit, batch_size=args.batch_size,
                   eval_every=args.eval_every, patience=args.patience, seed=args.seed,
                   train_subset=args.train_subset, device=args.device, augment=args.augment)
    result = train_run(spec, out_dir=args.out, resume=args.resume, data_dir=args.data_dir,
                       download=not args.no_download, progress=False if args.no_progress else None,
                       ray_address=args.ray_address, ray_actors=args.ray_actors,
                       trust_checkpoint=args.trust_checkpoint)
    final = result.final
    where = " (generations on Ray)" if args.ray_address is not None else ""
    print(f"{spec.optimizer} on {spec.task}{where}: stopped by {result.stopped} after {result.evaluations} evaluations "
          f"({result.backward} backward) in {result.wall_time:.1f} s")
    # The task's own metrics: accuracy for classification, rmse and r2 for regression.
    shown = ["train_loss"] + [k for k in final if k.startswith(("val_", "test_")) and not k.endswith("_loss")]
    text = "  ".join(f"{k.replace('_', ' ').replace('accuracy', 'acc')} {final[k]:.4f}" for k in shown)
    print(f"{text}  rejected {result.rejected}")
    if args.out:
        print(f"wrote {args.out}/result.json, metrics.jsonl, model.pt")
    return 0


def _add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="list registered methods, tasks, models, estimators, strategies")
    p.add_argument("family", nargs="?", default="all",
                   choices=["all", "optimizers", "tasks", "models", "estimators", "strategies", "suites", "kinds",
                            "attacks", "explainers"])


def _list(args: argparse.Namespace) -> int:
    from gradfree.attacks import ATTACKS
    from gradfree.estimators import ESTIMATORS
    from gradfree.experiments.kinds import load_kinds
    from gradfree.experiments.suite import load_suites
    from gradfree.explain import EXPLAINERS
    from gradfree.models import MODELS
    from gradfree.optim.registry import load_methods
    from gradfree.strategies import STRATEGIES
    from gradfree.tasks import TASKS

    families: dict[str, Any] = {"optimizers": load_methods(), "tasks": TASKS, "models": MODELS,
                                "estimators": ESTIMATORS, "strategies": STRATEGIES, "suites": load_suites(),
                                "kinds": load_kinds(), "attacks": ATTACKS, "explainers": EXPLAINERS}
    for family, registry in families.items():
        if args.family not in ("all", family):
            continue
        print(f"{family}:")
        for entry in registry:
            kind = entry.tags.get("kind")
            label = f"{entry.name} [{kind}]" if kind else entry.name
            print(f"  {label:<28} {entry.summary}")
    return 0


def _add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="compare Adam, ZO-Adam and ZO-SGD on the digits set; write a report",
                       description="Train Adam (backprop), ZO-Adam and ZO-SGD on the embedded digits set at an "
                                   "equal evaluation budget over seeds, and write report.md with plots.")
    p.add_argument("--out", default="runs/demo", help="report folder (default runs/demo)")
    p.add_argument("--budget", type=_positive_int, default=None, help="evaluations per run (default: demo's)")
    p.add_argument("--seeds", type=_positive_int, default=None, help="seeds per method (default: demo's)")


def _demo(args: argparse.Namespace) -> int:
    from gradfree.experiments.demo import run_demo

    report = run_demo(out_dir=args.out, budget=args.budget, seeds=args.seeds)
    print(f"wrote {report}")
    return 0


PERF = {
    "population": ("gradfree.perf.population", "evaluations/s, loop vs batched population evaluation"),
    "memory": ("gradfree.perf.memory", "peak memory of MeZO vs an estimator storing perturbations"),
    "incremental": ("gradfree.perf.incremental", "single-weight evaluations/s, full vs incremental"),
    "ray": ("gradfree.perf.ray", "evaluations/s local vs Ray, bytes sent per generation"),
    "strategies": ("gradfree.perf.strategies", "our population strategies vs pycma, nevergrad and EvoTorch"),
    "allocator": ("gradfree.perf.allocator", "forward and training steps, glibc malloc defaults vs freed memory kept"),
}


def _add_perf(sub: Any) -> None:
    lines = "; ".join(f"{name}: {text}" for name, (_, text) in PERF.items())
    p = sub.add_parser("perf", help=f"performance measurements ({', '.join(PERF)})",
                       description=f"Run a performance measurement ({lines}). Arguments after the name go to "
                                   "it, e.g. gradfree perf population --help.")
    p.add_argument("what", choices=list(PERF))
    p.add_argument("rest", nargs=argparse.REMAINDER)


def _perf(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(PERF[args.what][0])
    return int(module.main(args.rest))


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="run a benchmark suite: one row per trial in OUT/results.jsonl, then a report",
                       description="Run every trial of a registered suite (see `gradfree list suites`), append one "
                                   "row per trial to OUT/results.jsonl (crashed trials too), then write "
                                   "OUT/report.md and OUT/report.html.")
    p.add_argument("suite", help="suite name, e.g. mnist-cnn, rso-batch-size, cifar10, fashion-mnist, digits")
    p.add_argument("--size", choices=["quick", "full", "gpu", "long"], default="full",
                   help="quick: minutes on 2 CPU cores; full: about an hour; gpu: larger; long: hours, for the "
                        "suites that have it (cifar10) (default full)")
    p.add_argument("--quick", action="store_const", const="quick", dest="size", help="shortcut for --size quick")
    p.add_argument("--seeds", type=_positive_int, default=None, help="run seeds 0..K-1 for every method")
    p.add_argument("--budget", type=_positive_int, default=None,
                   help="evaluation budget of every trial (replaces the suite's budget and time limit)")
    p.add_argument("--time", type=_positive_float, default=None, dest="time_limit",
                   help="training seconds of every trial (replaces the suite's budget and time limit)")
    p.add_argument("--out", default=None, help="results folder (default runs/bench/SUITE-SIZE)")
    p.add_argument("--resume", action="store_true",
                   help="skip finished trials, continue killed ones from their checkpoint, rerun failed ones")
    p.add_argument("--rerun", action="append", default=[], metavar="PATTERN",
                   help="with --resume: run the finished trials whose key matches PATTERN (fnmatch, e.g. "
                        "'*/zoo-adam/*') again from scratch; repeatable")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="run only the trials whose key matches PATTERN (fnmatch); repeatable. Processes with "
                        "disjoint selections may share one --out (start each with --resume), e.g. one per core")
    p.add_argument("--data-dir", default=None, help="folder holding dataset files (else GRADFREE_DATA, cache)")
    p.add_argument("--no-download", action="store_true", help="never download missing dataset files")
    p.add_argument("--device", default=None, help="auto, cpu or cuda for every trial (default: the suite's)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--no-report", action="store_true", help="do not render the report at the end")


def _bench(args: argparse.Namespace) -> int:
    from gradfree.experiments.runner import Overrides, run_suite

    overrides = Overrides(seeds=args.seeds, budget=args.budget, time_limit=args.time_limit, device=args.device)
    outcome = run_suite(args.suite, size=args.size, out_dir=args.out, overrides=overrides, resume=args.resume,
                        data_dir=args.data_dir, download=not args.no_download, threads=args.threads,
                        report=not args.no_report, rerun=args.rerun, only=args.only)
    print(f"{outcome.ran} trials run ({outcome.failed} failed), {outcome.skipped} done earlier; "
          f"rows in {outcome.out_dir}/results.jsonl")
    return 1 if outcome.failed else 0


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="render report.md and report.html from a benchmark folder's results.jsonl",
                       description="Draw the tables and plots of DIR/results.jsonl into DIR/report.md and a "
                                   "self-contained DIR/report.html (images embedded).")
    p.add_argument("dir", help="the --out folder of a `gradfree bench` run")
    p.add_argument("--title", default=None, help="report title (default: from the suite name)")


def _report(args: argparse.Namespace) -> int:
    from gradfree.reports.report import write_report

    files = write_report(args.dir, title=args.title)
    print(f"wrote {files.markdown} and {files.html}")
    return 0


APPLICATIONS: dict[str, tuple[str, str]] = {
    "detect": ("gradfree.detection.command", "draw a trained detector's boxes on images"),
    "attack": ("gradfree.attacks.command", "attack a trained run with a black-box (or white-box reference) "
                                           "adversarial attack"),
    "explain": ("gradfree.explain.command", "explain a trained classifier's predictions from queries (saliency "
                                            "maps)"),
}
"""The applications' commands: ``name -> (module with add_parser(sub) and run(args), one-line help)``. A module
is imported only when its command runs (they pull in torch and plotting), so ``gradfree --help`` stays quick."""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``gradfree`` command (the application command named in ``argv``, if any,
    with its full arguments; the others listed by name and help)."""
    import importlib

    parser = Parser(prog="gradfree", description="Train PyTorch models without backprop.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_list, _add_demo, _add_perf, _add_bench, _add_report):
        add(sub)
    requested = next((a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")), None)
    for name, (module, help_text) in APPLICATIONS.items():
        if name == requested:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: TextIO | None = None, line: str | None = None) -> None:
    print(f"gradfree: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    keep_freed_memory()  # the command owns its process: reuse freed tensors' pages (gradfree.allocator)
    warnings.showwarning = _one_line_warning  # a setting adjusted or ignored: one line, no source dump
    handlers = {"train": _train, "list": _list, "demo": _demo, "perf": _perf, "bench": _bench,
                "report": _report}
    try:
        if args.command in APPLICATIONS:
            import importlib

            return int(importlib.import_module(APPLICATIONS[args.command][0]).run(args))
        return handlers[args.command](args)
    except GradfreeError as exc:
        print(f"gradfree: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradfree: interrupted (a run with --out can continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
