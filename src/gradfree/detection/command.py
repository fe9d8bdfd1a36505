"""``gradfree detect --run RUN_DIR IMAGE... --out DIR``: draw a trained detector's detections on any images.

The run folder is one that ``gradfree train --task car-detection`` (or the ``car-detection`` suite) wrote:
``config.json`` names the model spec (and, when not the default, the canvas), ``model.pt`` holds its weights,
read with ``torch.load(weights_only=True)`` (a file that asks to run code is refused). Each image is decoded,
letterboxed onto the canvas, run through the model in eval mode, decoded and NMS'd as the task evaluates
(:func:`gradfree.tasks.detection.decode`), and mapped back to its own pixels; the command writes
``<name>.png`` per image (detections scoring at least ``--score`` drawn over it) and ``detections.json``
(every image's boxes, in its pixels, with their scores).

The lead wires it into ``gradfree.cli``: ``add_parser(sub)`` among the sub-commands and ``"detect": run`` among
the handlers.
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradfree.data.car_detection import DEFAULT_CANVAS
from gradfree.data.images import decode_image, letterbox
from gradfree.errors import ConfigError
from gradfree.train.files import save_json


@dataclass(frozen=True)
class LoadedDetector:
    """A trained detector and how its inputs are made."""

    model: nn.Module
    spec: str
    canvas: tuple[int, int]


def load_detector(run_dir: str | Path, *, device: torch.device | str = "cpu") -> LoadedDetector:
    """The detector a run folder holds (``config.json`` + ``model.pt``), in eval mode on ``device``.

    Raises:
        ConfigError: the folder lacks either file, is not a detection run, or its weights do not fit the
            model spec or are not plain tensors.
    """
    from gradfree.models import MODELS, build_model

    run = Path(run_dir)
    config_path, weights_path = run / "config.json", run / "model.pt"
    if not config_path.is_file() or not weights_path.is_file():
        raise ConfigError(f"{run} is not a finished run folder: it needs config.json and model.pt (a run still "
                          "training has only checkpoint.pt; wait for it to finish)")
    try:
        config = json.loads(config_path.read_text())["config"]
        spec = str(config["model"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{config_path} does not describe a run ({exc})") from None
    name = spec.split(":")[0]
    if name not in MODELS or MODELS.entry(name).tags.get("output") != "grid":
        raise ConfigError(f"{run} trained {spec!r}, which is not a detector (e.g. yolo:tiny)")
    canvas = tuple(int(v) for v in config.get("canvas") or DEFAULT_CANVAS)
    if len(canvas) != 2:
        raise ConfigError(f"{config_path}: canvas must be [height, width], got {config.get('canvas')}")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ConfigError(f"refusing {weights_path}: it is not a plain tensor file ({exc})") from None
    model = build_model(spec, seed=0, input_shape=(3, *canvas), num_classes=1)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{weights_path} does not hold the weights of {spec!r}: {str(exc).splitlines()[0]}") from None
    return LoadedDetector(model.to(device).eval(), spec, (canvas[0], canvas[1]))


def detect_images(detector: LoadedDetector, images: Sequence[str | Path], out_dir: str | Path, *,
                  score_threshold: float = 0.25, device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Detect, draw and record the detections of every image in ``images`` (see the module docstring).

    Returns:
        Per image: ``{"image", "picture", "boxes" [[x1, y1, x2, y2], ...], "scores"}`` in its own pixels (every
        detection of at least ``score_threshold``).
    """
    from gradfree.detection.pictures import Panel, detection_grid
    from gradfree.tasks.detection import decode
    from gradfree.tasks.detection_loss import DetectionLoss

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    criterion = DetectionLoss(detector.canvas)
    records: list[dict[str, Any]] = []
    used: set[str] = set()
    for path in (Path(p) for p in images):
        pixels = decode_image(path)
        canvas, frame = letterbox(pixels, detector.canvas)
        with torch.no_grad():
            output = detector.model(canvas.float().div(255.0)[None].to(device))
        ((boxes, scores),) = decode(output, criterion)
        keep = scores >= score_threshold
        boxes = frame.to_original(boxes[keep].cpu().double())
        scores = scores[keep].cpu()
        stem = path.stem
        while stem in used:
            stem += "_"
        used.add(stem)
        picture = detection_grid([Panel(pixels, None, boxes, scores, f"{path.name}: {len(scores)} detection(s)")],
                                 out / f"{stem}.png", columns=1, score_threshold=score_threshold)
        records.append({"image": str(path), "picture": str(picture), "boxes": [[round(v, 2) for v in b]
                                                                               for b in boxes.tolist()],
                        "scores": [round(s, 4) for s in scores.tolist()]})
    save_json({"run_model": detector.spec, "canvas": list(detector.canvas), "score_threshold": score_threshold,
               "images": records}, out / "detections.json")
    return records


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``detect`` sub-command to ``sub`` (an ``argparse`` sub-parsers object)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "detect", help="draw a trained detector's boxes on images",
        description="Run the detector a training run saved (RUN_DIR/config.json + model.pt) on any images and "
                    "write one picture per image and detections.json to --out.")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a finished car-detection run folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG...)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the pictures and detections.json go")
    p.add_argument("--score", type=float, default=0.25, help="lowest score drawn and listed (default 0.25)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    return p


def run(args: argparse.Namespace) -> int:
    """Handle ``gradfree detect``; prints one line per image."""
    from gradfree.run import resolve_device

    if not 0.0 <= args.score <= 1.0:
        raise ConfigError(f"--score must lie in [0, 1], got {args.score}")
    device = resolve_device(args.device)
    detector = load_detector(args.run, device=device)
    for record in detect_images(detector, args.images, args.out, score_threshold=args.score, device=device):
        print(f"{record['image']}: {len(record['scores'])} detection(s) -> {record['picture']}")
    print(f"wrote {Path(args.out) / 'detections.json'}")
    return 0
