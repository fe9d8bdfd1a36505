"""Small generated car-detection folders: JPEG frames with bright rectangles as "cars", a Kaggle-style CSV."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

Box = tuple[float, float, float, float]


def frame_boxes(frame: int, *, width: int, height: int) -> list[Box]:
    """The boxes of frame ``frame``: zero to two rectangles that move with the frame number (deterministic)."""
    rng = np.random.default_rng(frame)
    count = int(rng.integers(0, 3))
    boxes = []
    for _ in range(count):
        w, h = float(rng.integers(width // 6, width // 3)), float(rng.integers(height // 6, height // 3))
        x, y = float(rng.integers(0, int(width - w))), float(rng.integers(0, int(height - h)))
        boxes.append((x, y, x + w, y + h))
    return boxes


def write_frame(path: Path, boxes: Sequence[Box], *, width: int, height: int, seed: int) -> None:
    """A JPEG of dim noise with a bright, textured rectangle in each box."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(20, 70, (height, width, 3)).astype(np.uint8)
    for x1, y1, x2, y2 in boxes:
        pixels[int(y1) : int(y2), int(x1) : int(x2)] = (220, 60, 40)
        pixels[int(y1) : int(y1) + 2, int(x1) : int(x2)] = 255
    Image.fromarray(pixels).save(path, quality=92)


def make_car_folder(root: Path, *, frames: Sequence[int] = tuple(range(0, 2000, 20)), width: int = 96,
                    height: int = 54, video: int = 4, manifest: bool = True, missing: Sequence[int] = ()) -> Path:
    """A folder in the Kaggle layout: ``training_images/vid_<video>_<frame>.jpg``, the box CSV (CRLF, no final
    newline), and ``MANIFEST.sha256``. Frames in ``missing`` are named in the CSV (with a box) but not written.

    Returns:
        the folder (``root / "car-detection"``).
    """
    folder = root / "car-detection"
    images = folder / "training_images"
    images.mkdir(parents=True)
    lines = ["image,xmin,ymin,xmax,ymax"]
    for frame in frames:
        name = f"vid_{video}_{frame}.jpg"
        boxes = frame_boxes(frame, width=width, height=height)
        write_frame(images / name, boxes, width=width, height=height, seed=frame + 1)
        lines += [f"{name},{b[0]:.6f},{b[1]:.6f},{b[2]:.6f},{b[3]:.6f}" for b in boxes]
    for frame in missing:
        lines.append(f"vid_{video}_{frame}.jpg,1.0,1.0,20.0,20.0")
    (folder / "train_solution_bounding_boxes.csv").write_bytes("\r\n".join(lines).encode())
    if manifest:
        write_manifest(folder)
    return folder


def write_manifest(folder: Path) -> None:
    """``MANIFEST.sha256`` over every image of ``folder`` (sha256sum format)."""
    rows = []
    for path in sorted((folder / "training_images").iterdir()):
        rows.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  training_images/{path.name}")
    (folder / "MANIFEST.sha256").write_text("\n".join(rows) + "\n")
