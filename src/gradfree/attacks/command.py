"""``gradfree attack``: attack a trained run (or a registered victim) and write what came out.

    gradfree attack --run RUN_DIR --method zoo-adam [--targeted] [--norm l2|linf] [--eps E] [--queries Q]
                    --images N --out DIR

The first ``N`` correctly classified test images of the run's task are attacked (targets, for
``--targeted``, drawn uniformly among the other classes with ``--seed``; a targeted HopSkipJump starts from
test images of the target classes). ``DIR`` receives:

* ``summary.json`` — the command's settings, the attack's resolved options, the metrics
  (:class:`~gradfree.attacks.metrics.AttackSummary`), one row per image, and provenance;
* ``table.md`` — the metrics as a markdown table;
* ``adversarial.pt`` — the original and adversarial images, labels, targets, success mask and queries as
  plain tensors (``torch.load(..., weights_only=True)`` reads it);
* ``adversarial/NNNN.png`` — each adversarial image, ``grid.png`` — originals, adversarial images and
  magnified perturbations with the predicted labels, ``success_curve.png`` — success rate against queries.

:func:`add_parser` and :func:`run` are the command's two halves, for the ``gradfree`` CLI to wire in.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import torch

from gradfree.errors import ConfigError


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _option(text: str) -> tuple[str, Any]:
    import ast

    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. iterations=500), got {text!r}")
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``attack`` sub-command to ``subparsers`` (an ``argparse`` sub-parsers object)."""
    from gradfree.attacks import ATTACKS

    p = subparsers.add_parser(
        "attack", help="attack a trained run with a black-box (or white-box reference) adversarial attack",
        description="Attack the first N correctly classified test images of a trained run; write the "
                    "adversarial images, a table and pictures into --out.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, metavar="RUN_DIR", help="a `gradfree train --out` folder")
    source.add_argument("--victim", metavar="NAME",
                        help="a registered victim instead (trained and cached on first use), e.g. mnist-lenet")
    p.add_argument("--method", required=True, choices=ATTACKS.names(), help="the attack")
    p.add_argument("--targeted", action="store_true", help="aim at a random other class per image")
    p.add_argument("--norm", choices=("l2", "linf"), default=None,
                   help="distortion measure (default: the attack's first, e.g. l2 for zoo, linf for square)")
    p.add_argument("--eps", type=_positive_float, default=None,
                   help="perturbation bound in pixels [0, 1] (required by eps-bounded attacks, e.g. 0.3)")
    p.add_argument("--queries", type=_positive_int, default=None, help="query budget per image")
    p.add_argument("--images", type=_positive_int, required=True, help="how many test images to attack")
    p.add_argument("--offset", type=int, default=0, help="start looking for images at this test position")
    p.add_argument("--access", choices=("logits", "probabilities", "label", "white-box"), default=None,
                   help="what a query returns (default: the attack's own)")
    p.add_argument("--opt", action="append", type=_option, default=[], metavar="KEY=VALUE",
                   help="attack option, repeatable, e.g. --opt iterations=500 --opt binary_steps=5")
    p.add_argument("--seed", type=int, default=0, help="seeds the attack and the targets (and --victim's training)")
    p.add_argument("--levels", type=int, default=None,
                   help="put an N-level input quantisation in front of the model (a non-differentiable victim)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset files")
    p.add_argument("--no-download", action="store_true", help="never download a missing dataset")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the ``attack`` command from parsed arguments; returns the exit status (0)."""
    from gradfree.attacks import ATTACKS, build_attack
    from gradfree.attacks.metrics import markdown_table, success_curve, summarize
    from gradfree.attacks.pictures import adversarial_grid, query_grid, success_curves
    from gradfree.train.files import save_json, save_text, save_torch
    from gradfree.train.provenance import provenance
    from gradfree.victims import first_correct, load_victim, random_targets, target_starts, victim_from_run

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; choose a new --out folder")
    cls = ATTACKS.get(args.method)
    norm = args.norm or cls.norms[0]
    if args.run is not None:
        victim = victim_from_run(args.run, data_dir=args.data_dir, download=not args.no_download,
                                 device=args.device, levels=args.levels)
    else:
        victim = load_victim(args.victim, seed=args.seed, data_dir=args.data_dir, download=not args.no_download,
                             device=args.device, levels=args.levels)
    batch = first_correct(victim, args.images, offset=args.offset)
    targets = random_targets(batch.y, victim.num_classes, seed=args.seed) if args.targeted else None
    starts = None
    if targets is not None and cls.uses_starts:
        starts = target_starts(victim, targets, exclude=batch.index)
    attack = build_attack(args.method, **dict(args.opt))
    dev = next(iter(victim.model.buffers())).device
    result = attack(victim.model, batch.x.to(dev), batch.y.to(dev),
                    targets=None if targets is None else targets.to(dev), norm=norm, eps=args.eps,
                    budget=args.queries, access=args.access, seed=args.seed,
                    starts=None if starts is None else starts.to(dev))
    summary = summarize(result)

    rows = [{"test_index": int(batch.index[i]), "label": int(result.labels[i]),
             "target": None if result.targets is None else int(result.targets[i]),
             "predicted": int(result.predicted[i]), "success": bool(result.success[i]),
             "queries": int(result.queries[i]), "first_success": int(result.first_success[i]),
             "l2": float(result.l2[i]), "linf": float(result.linf[i])} for i in range(result.num_images)]
    settings = {"run": None if args.run is None else str(args.run), "victim": args.victim, "method": args.method,
                "targeted": args.targeted, "norm": norm, "eps": args.eps, "queries": args.queries,
                "images": args.images, "offset": args.offset, "access": result.access, "seed": args.seed,
                "levels": args.levels, "victim_test_accuracy": victim.test_accuracy}
    save_json({"settings": settings, "options": result.options, "summary": summary.row(), "info": result.info,
               "images": rows, "provenance": provenance(dev)}, out / "summary.json")
    save_text(markdown_table([summary]), out / "table.md")
    save_torch({"x": result.x.cpu(), "x_adv": result.x_adv.cpu(), "labels": result.labels.cpu(),
                "targets": None if result.targets is None else result.targets.cpu(),
                "success": result.success, "queries": result.queries, "test_index": batch.index},
               out / "adversarial.pt")
    _save_images(result.x_adv.cpu(), out / "adversarial")
    label = f"{args.method}{' targeted' if args.targeted else ''}"
    adversarial_grid({label: result}, out / "grid.png", images=min(8, result.num_images),
                     class_names=victim.class_names,
                     title=f"{args.method} on {victim.name}: {norm}" + (f", eps {args.eps:g}" if args.eps else ""))
    top = int(result.queries.max()) if result.num_images else 1
    budgets = query_grid(max(args.queries or top, 1))
    success_curves({label: (budgets, success_curve(result, budgets))}, out / "success_curve.png",
                   title=f"{args.method} on {victim.name}: success rate against queries")
    print(f"{args.method}: {100 * summary.success_rate:.1f}% of {summary.images} images fooled; "
          f"L2 {summary.l2_mean:.4g} (median {summary.l2_median:.4g}), L-inf {summary.linf_mean:.4g}; "
          f"queries mean {summary.queries_mean:,.0f}, median {summary.queries_median:,.0f}; "
          f"{summary.time_per_image:.3g} s per image -> {out}")
    return 0


def _save_images(x: torch.Tensor, folder: Path) -> None:
    """Each image as an 8-bit PNG (grey or colour; flat square inputs reshaped)."""
    from PIL import Image

    from gradfree.attacks.pictures import _as_image
    from gradfree.train.files import save_bytes

    for i in range(x.shape[0]):
        arr = (_as_image(x[i]) * 255).round().astype("uint8")
        buffer = io.BytesIO()
        Image.fromarray(arr).save(buffer, format="PNG")
        save_bytes(buffer.getvalue(), folder / f"{i:04d}.png")


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (until the ``gradfree`` CLI wires the command in): ``python -m gradfree.attacks.command``."""
    import sys

    from gradfree.errors import GradfreeError

    parser = argparse.ArgumentParser(prog="gradfree")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except GradfreeError as exc:
        print(f"gradfree: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

