"""``gradfree explain --run RUN_DIR --method zo-smoothgrad --images N [--queries Q] --out DIR``.

Explains a trained run's predictions on its first ``N`` correctly classified test images with one registered
method (``gradfree.explain.EXPLAINERS``) at ``Q`` queries per image, on pixels in ``[0, 1]``
(:func:`gradfree.victims.victim_from_run`: the network behind its standardisation), with black pixels as the
baseline (what removed pixels become). It writes into ``DIR``:

* ``maps/image_XXX.png`` — each image beside its map (red: for the class, blue: against);
* ``grid.png`` — the first 16 images and their maps in one picture;
* ``scores.csv`` and ``scores.md`` — per image: its test index, label, the explained class, the queries spent,
  the deletion and insertion AUC (:mod:`gradfree.explain.metrics`; insertion from a blurred image), the
  faithfulness correlation and the seconds, then the mean;
* ``maps.pt`` — the maps and test indices (plain tensors; load with ``weights_only=True``);
* ``summary.json`` — the settings, the means and provenance.

The lead wires it into ``gradfree.cli``: ``add_parser(sub)`` among the sub-commands and ``"explain": run``
among the handlers.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

import torch

from gradfree.errors import ConfigError
from gradfree.train.files import save_json, save_text, save_torch


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``explain`` sub-command to ``sub`` (an ``argparse`` sub-parsers object)."""
    from gradfree.cli import parse_option

    p: argparse.ArgumentParser = sub.add_parser(
        "explain", help="explain a trained classifier's predictions from queries (saliency maps)",
        description="Explain the predictions of the classifier a training run saved (RUN_DIR/config.json + "
                    "model.pt) on its first N correctly classified test images, with any registered method "
                    "(see `gradfree.explain.EXPLAINERS`), counting every query. Writes the maps as PNGs and "
                    "the scores (deletion / insertion AUC, faithfulness) as a table.")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a finished classification run folder")
    p.add_argument("--method", default="zo-smoothgrad",
                   help="explanation method, e.g. zo-smoothgrad, fd-saliency, zo-ig, contrastive, occlusion, rise, "
                        "kernel-shap, lime, gradient, smoothgrad, integrated-gradients (default zo-smoothgrad)")
    p.add_argument("--images", type=int, default=8, metavar="N", help="test images to explain (default 8)")
    p.add_argument("--queries", type=int, default=1000, metavar="Q",
                   help="query budget per image, the image's own query included (default 1000)")
    p.add_argument("--access", default="logits", choices=["logits", "probabilities"],
                   help="what a query returns; the explained score is the class's logit or probability")
    p.add_argument("--opt", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                   help="method option, repeatable, e.g. --opt noise=0.2 --opt grouping=slic:100")
    p.add_argument("--seed", type=int, default=0, help="seed of the method's random draws (default 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the maps and the table go")
    p.add_argument("--data-dir", default=None, help="folder holding dataset files (else GRADFREE_DATA, cache)")
    p.add_argument("--no-download", action="store_true", help="never download missing dataset files")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return p


def run(args: argparse.Namespace) -> int:
    """Handle ``gradfree explain``; prints the mean scores and where the files went."""
    from gradfree.explain import EXPLAINERS

    if args.images < 1 or args.queries < 1:
        raise ConfigError("--images and --queries must be positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    EXPLAINERS.entry(args.method)  # an unknown name fails before any data is loaded
    result = explain_run(args.run, method=args.method, images=args.images, queries=args.queries,
                         access=args.access, options=dict(args.opt), seed=args.seed, out=args.out,
                         data_dir=args.data_dir, download=not args.no_download, device=args.device)
    means = result["mean"]
    print(f"{args.method} on {result['images']} images of {args.run} at {args.queries} queries: deletion AUC "
          f"{means['deletion_auc']:.4f}, insertion AUC {means['insertion_auc']:.4f}, faithfulness "
          f"{means['faithfulness']:.3f}, {means['seconds']:.3f} s per image")
    print(f"wrote {Path(args.out)}/grid.png, maps/*.png, scores.csv, scores.md, maps.pt, summary.json")
    return 0


def explain_run(run_dir: str | Path, *, method: str, images: int, queries: int, out: str | Path,
                access: str = "logits", options: dict[str, Any] | None = None, seed: int = 0,
                data_dir: str | Path | None = None, download: bool = True, device: str = "auto") -> dict[str, Any]:
    """Explain a run's first ``images`` correctly classified test images and write the files (module
    docstring); returns the summary written to ``summary.json``."""
    from gradfree.explain import EXPLAINERS
    from gradfree.explain.metrics import deletion_insertion, faithfulness_correlation
    from gradfree.explain.pictures import heatmap_grid, map_png
    from gradfree.run import resolve_device
    from gradfree.train.provenance import provenance
    from gradfree.victims import first_correct, victim_from_run

    dev = resolve_device(device)
    victim = victim_from_run(run_dir, data_dir=data_dir, download=download, device=str(dev))
    batch = first_correct(victim, images)
    x = batch.x.to(dev)
    explainer = EXPLAINERS.get(method)
    explanation = explainer(victim.model, x, queries=queries, access=access, baseline=0.0,
                            generator=torch.Generator().manual_seed(seed), **(options or {}))
    targets = explanation.targets.to(dev)
    curves = deletion_insertion(victim.model, x, explanation, targets=targets, baseline=0.0)
    faith = faithfulness_correlation(victim.model, x, explanation, targets=targets, baseline=0.0)
    folder = Path(out)
    n = x.shape[0]
    seconds = explanation.seconds / n
    rows = []
    for i in range(n):
        label = victim.class_names[int(batch.y[i])]
        rows.append({"image": int(batch.index[i]), "label": label,
                     "explained": victim.class_names[int(explanation.targets[i])],
                     "queries": int(explanation.queries[i]), "deletion_auc": float(curves.deletion[i]),
                     "insertion_auc": float(curves.insertion[i]), "faithfulness": float(faith[i]),
                     "seconds": seconds})
        map_png(x[i].cpu(), explanation.maps[i].cpu(), folder / "maps" / f"image_{i:03d}.png",
                caption=f"test #{int(batch.index[i])}: {label}, del {float(curves.deletion[i]):.3f}")
    shown = min(n, 16)
    heatmap_grid(x[:shown].cpu(), {method: explanation.maps[:shown].cpu()}, folder / "grid.png",
                 captions=[f"#{r['image']} {r['label']}" for r in rows[:shown]],
                 title=f"{method}, {queries} queries per image (red: for the class, blue: against)")
    mean = {k: float(torch.tensor([r[k] for r in rows], dtype=torch.float64).nanmean())
            for k in ("queries", "deletion_auc", "insertion_auc", "faithfulness", "seconds")}
    _write_tables(rows, mean, folder)
    save_torch({"maps": explanation.maps.cpu(), "test_index": batch.index.cpu(),
                "targets": explanation.targets.cpu(), "queries": explanation.queries.cpu()}, folder / "maps.pt")
    summary = {"run": str(run_dir), "method": method, "images": n, "queries": queries, "access": access,
               "options": options or {}, "seed": seed, "baseline": "black pixels (0)",
               "test_accuracy": victim.test_accuracy, "mean": mean, "provenance": provenance(dev)}
    save_json(summary, folder / "summary.json")
    return summary


COLUMNS = ("image", "label", "explained", "queries", "deletion_auc", "insertion_auc", "faithfulness", "seconds")


def _write_tables(rows: list[dict[str, Any]], mean: dict[str, float], folder: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    save_text(text.getvalue(), folder / "scores.csv")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in COLUMNS)
                     + " |")
    lines.append("| mean | | | " + " | ".join(f"{mean[k]:.4f}" for k in COLUMNS[3:]) + " |")
    save_text("\n".join(lines) + "\n", folder / "scores.md")
