"""The Kaggle "Car Object Detection" set (sshikamaru/car-object-detection): one class, frames of a road video.

Layout (Kaggle's): ``train_solution_bounding_boxes.csv`` (header ``image,xmin,ymin,xmax,ymax``, pixel floats)
and ``training_images/vid_<video>_<frame>.jpg`` (676x380 RGB), optionally ``MANIFEST.sha256`` (``sha256sum``
format, paths relative to the folder). Images with no row in the CSV are negatives (no car): they are kept,
since they test false positives.

Loading:

* the CSV is parsed strictly: a malformed row, a non-finite number, ``xmax <= xmin`` or ``ymax <= ymin``, or a
  box outside its image is a :class:`~gradfree.errors.DataError` naming the file and the row (line number);
* an image named in the CSV but absent is skipped with one warning naming it and the count (the copy in
  ``shared/data`` lacks ``vid_4_9980.jpg``); ``strict=True`` makes it an error;
* every image is checked against the manifest when there is one (a mismatch, or a listed file that is
  absent, is an error naming the file), decoded with Pillow (a corrupt file is an error naming it) and
  letterboxed onto a ``canvas`` (default 192x320, height x width), boxes scaled with it;
* the decoded canvases are cached under :func:`~gradfree.data.store.cache_dir` in a file keyed by the SHA-256
  of the CSV and of every image (and the canvas size), written atomically and read back with
  ``torch.load(weights_only=True)``; a second load decodes nothing.

**The split is by frame ranges, never at random**: consecutive frames are near-duplicates, so a random split
would put copies of the test images in training. Images are ordered by (video, frame); the labelled images
are cut at 70% and 85% of their number, and every image (labelled or negative) before the first cut is
training, between the cuts validation, after the second test, except those within ``gap`` frames (100 by
default; the frames here are 20 apart) before a cut, which are dropped so no near-duplicate straddles a cut.
On the ``shared/data`` copy (354 labelled images, 558 boxes, 149 negatives, frames 600..30440 of video 4) the
default split holds (checked by ``tests/detection/test_car_detection.py``):

=====  =================  ======  =========  ======
split  frames             images  negatives  boxes
=====  =================  ======  =========  ======
train  600 .. 17200       324     79         380
val    17340 .. 21560     81      33         62
test   21680 .. 30440     88      35         107
=====  =================  ======  =========  ======

10 images (9 boxes) fall in the two gaps; the labelled images split 245 / 48 / 53. Pixels are scaled to [0, 1]
(no standardisation: the detector normalises with batch norm).
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gradfree.data.box_targets import BoxTargets
from gradfree.data.images import decode_image, letterbox
from gradfree.data.splits import DataSplits, Split
from gradfree.data.store import DatasetFiles, RemoteFile, cache_dir, locate, sha256_of
from gradfree.errors import ConfigError, DataError
from gradfree.train.files import save_torch

CSV_NAME = "train_solution_bounding_boxes.csv"
IMAGE_FOLDER = "training_images"
MANIFEST_NAME = "MANIFEST.sha256"
HEADER = ("image", "xmin", "ymin", "xmax", "ymax")
DEFAULT_CANVAS = (192, 320)
"""Letterbox canvas ``(height, width)``: 676x380 frames become 320x180 with 6-pixel grey bands."""

CACHE_VERSION = 1
"""Bumped when the decoded format changes, so older cache files are not read."""

CAR_DETECTION_FILES = DatasetFiles(
    folder="car-detection",
    files=(RemoteFile(CSV_NAME, "f22c60ee0b4b72ec35cf29f7c557bbcfc422884ced4473f0faceb50594607bbe", 34_798),),
    mirrors=(),
)
"""The box CSV (SHA-256 of the Kaggle file) that marks a car-detection folder; no mirror serves the set."""

_NAME = re.compile(r"^vid_(\d+)_(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)


@dataclass(frozen=True)
class FrameRecord:
    """One image of the set and its boxes in original pixels.

    Attributes:
        name: file name in ``training_images/``.
        video, frame: parsed from ``vid_<video>_<frame>``.
        boxes: ``[(xmin, ymin, xmax, ymax), ...]`` with the CSV line of each.
    """

    name: str
    video: int
    frame: int
    boxes: tuple[tuple[float, float, float, float], ...]
    lines: tuple[int, ...]


def frame_of(name: str) -> tuple[int, int]:
    """``(video, frame)`` from a name ``vid_<video>_<frame>.jpg``."""
    match = _NAME.match(name)
    if match is None:
        raise DataError(f"image name {name!r} is not of the form vid_<video>_<frame>.jpg, so it cannot be "
                        "placed in the frame-range split")
    return int(match.group(1)), int(match.group(2))


def parse_boxes_csv(path: Path) -> dict[str, list[tuple[tuple[float, float, float, float], int]]]:
    """The CSV's boxes by image name, with the line number of each row.

    Raises:
        DataError: a bad header, a row without five fields, a number that does not parse or is not finite,
            or a box with ``xmax <= xmin`` or ``ymax <= ymin``, naming the file and the line.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or tuple(c.strip().lower() for c in rows[0]) != HEADER:
        got = ",".join(rows[0]) if rows else "an empty file"
        raise DataError(f"{path}, line 1: expected the header {','.join(HEADER)}, got {got!r}")
    boxes: dict[str, list[tuple[tuple[float, float, float, float], int]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue  # a blank line (a final newline, or none: both occur)
        if len(row) != 5:
            raise DataError(f"{path}, line {line}: expected 5 fields (image,xmin,ymin,xmax,ymax), got "
                            f"{len(row)}: {','.join(row)!r}")
        name = row[0].strip()
        if not _NAME.match(name):
            raise DataError(f"{path}, line {line}: image name {name!r} is not of the form vid_<video>_<frame>.jpg "
                            "(the split orders images by frame)")
        try:
            x1, y1, x2, y2 = (float(v) for v in row[1:])
        except ValueError:
            raise DataError(f"{path}, line {line}: the coordinates {row[1:]} are not all numbers") from None
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise DataError(f"{path}, line {line}: a coordinate of {name} is not finite: {row[1:]}")
        if x2 <= x1 or y2 <= y1:
            raise DataError(f"{path}, line {line}: box of {name} has xmax <= xmin or ymax <= ymin "
                            f"({x1}, {y1}, {x2}, {y2})")
        boxes.setdefault(name, []).append(((x1, y1, x2, y2), line))
    return boxes


def read_manifest(path: Path) -> dict[str, str]:
    """``{path relative to the folder: sha256}`` from a ``sha256sum``-format file."""
    entries: dict[str, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            raise DataError(f"{path}, line {line_no}: not a 'SHA256  PATH' line: {line!r}")
        entries[parts[1].strip().lstrip("*")] = parts[0].lower()
    return entries


def collect_frames(folder: Path, *, strict: bool = False) -> tuple[list[FrameRecord], dict[str, str]]:
    """Every image of ``folder`` with its CSV boxes, sorted by (video, frame), and each image's SHA-256.

    Checks the manifest when present. A CSV image that is absent is skipped with one warning (an error with
    ``strict``).
    """
    csv_path, images = folder / CSV_NAME, folder / IMAGE_FOLDER
    if not images.is_dir():
        raise DataError(f"{folder} has {CSV_NAME} but no {IMAGE_FOLDER}/ folder of images")
    boxes = parse_boxes_csv(csv_path)
    on_disk = sorted(p.name for p in images.iterdir() if p.is_file() and _NAME.match(p.name))
    present = set(on_disk)
    missing = sorted(n for n in boxes if n not in present)
    if missing:
        listed = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        message = (f"{csv_path} names {len(missing)} image(s) absent from {images}: {listed}")
        if strict:
            raise DataError(message + " (strict loading; restore them or load without strict to skip them)")
        warnings.warn(message + f"; skipping {'it' if len(missing) == 1 else 'them'} "
                      f"({sum(len(boxes[n]) for n in missing)} box(es))", stacklevel=3)
    hashes = {name: sha256_of(images / name) for name in on_disk}
    manifest_path = folder / MANIFEST_NAME
    if manifest_path.is_file():
        _check_manifest(manifest_path, read_manifest(manifest_path), hashes, folder)
    records = []
    for name in on_disk:
        video, frame = frame_of(name)
        rows = boxes.get(name, [])
        records.append(FrameRecord(name, video, frame, tuple(b for b, _ in rows), tuple(line for _, line in rows)))
    records.sort(key=lambda r: (r.video, r.frame, r.name))
    return records, hashes


def _check_manifest(path: Path, manifest: dict[str, str], hashes: dict[str, str], folder: Path) -> None:
    for relative in sorted(manifest):
        name = Path(relative).name
        if Path(relative).parent.name == IMAGE_FOLDER and name not in hashes:
            raise DataError(f"{path} lists {relative}, which is absent from {folder}: restore it or rebuild "
                            "the manifest")
    listed = {Path(r).name: h for r, h in manifest.items() if Path(r).parent.name == IMAGE_FOLDER}
    for name, got in sorted(hashes.items()):
        if name not in listed:
            raise DataError(f"{folder / IMAGE_FOLDER / name} is not listed in {path}: a file was added; "
                            "remove it or rebuild the manifest")
        if listed[name] != got:
            raise DataError(f"{folder / IMAGE_FOLDER / name} failed its checksum in {path} (expected SHA-256 "
                            f"{listed[name]}, got {got}): replace it with a good copy")


@dataclass(frozen=True)
class FrameSplit:
    """Which records (indices into the sorted list) form each split; ``dropped`` fell in a gap."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    dropped: tuple[int, ...]


def split_by_frames(records: Sequence[FrameRecord], *, fractions: tuple[float, float] = (0.70, 0.85),
                    gap: int = 100) -> FrameSplit:
    """Train / validation / test by frame ranges (see the module docstring).

    Args:
        records: sorted by (video, frame).
        fractions: where the two cuts fall, as fractions of the labelled images.
        gap: frames before each cut whose images are dropped.
    """
    lo, hi = fractions
    if not 0 < lo < hi < 1:
        raise ConfigError(f"split fractions must satisfy 0 < first < second < 1, got {fractions}")
    if gap < 0:
        raise ConfigError(f"the gap must be >= 0 frames, got {gap}")
    labelled = [i for i, r in enumerate(records) if r.boxes]
    if len(labelled) < 3:
        raise DataError(f"the frame-range split needs at least 3 labelled images, found {len(labelled)}")
    cuts = [records[labelled[min(len(labelled) - 1, max(1, round(f * len(labelled))))]] for f in fractions]
    keys = [(c.video, c.frame) for c in cuts]
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": [], "dropped": []}
    for i, r in enumerate(records):
        key = (r.video, r.frame)
        if any(r.video == c.video and c.frame - gap <= r.frame < c.frame for c in cuts):
            parts["dropped"].append(i)
        elif key < keys[0]:
            parts["train"].append(i)
        elif key < keys[1]:
            parts["val"].append(i)
        else:
            parts["test"].append(i)
    return FrameSplit(*(tuple(parts[k]) for k in ("train", "val", "test", "dropped")))


def fingerprint(csv_path: Path, hashes: dict[str, str]) -> str:
    """SHA-256 over the CSV and every image's SHA-256: names the data a cache file or a trained model came from."""
    digest = hashlib.sha256(sha256_of(csv_path).encode())
    for name in sorted(hashes):
        digest.update(f"{name} {hashes[name]}\n".encode())
    return digest.hexdigest()


def dataset_fingerprint(*, data_dir: str | Path | None = None, download: bool = True) -> str:
    """The :func:`fingerprint` of the car-detection folder found as :func:`load_car_detection` finds it."""
    folder = locate(CAR_DETECTION_FILES, data_dir=data_dir, download=download)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loader itself warns about missing images
        _, hashes = collect_frames(folder)
    return fingerprint(folder / CSV_NAME, hashes)


def _cache_path(csv_path: Path, hashes: dict[str, str], canvas: tuple[int, int]) -> Path:
    key = hashlib.sha256(f"v{CACHE_VERSION} {canvas[0]}x{canvas[1]} {fingerprint(csv_path, hashes)}".encode())
    return cache_dir() / "car-detection" / f"decoded-{canvas[0]}x{canvas[1]}-{key.hexdigest()[:20]}.pt"


def _decode_all(folder: Path, records: Sequence[FrameRecord], canvas: tuple[int, int]) -> dict[str, Tensor]:
    """Letterboxed canvases (uint8), boxes in canvas pixels and letterboxes of every record."""
    images = torch.empty(len(records), 3, *canvas, dtype=torch.uint8)
    rows, frames = [], []
    for i, r in enumerate(records):
        path = folder / IMAGE_FOLDER / r.name
        pixels = decode_image(path)
        h, w = int(pixels.shape[1]), int(pixels.shape[2])
        for (x1, y1, x2, y2), line in zip(r.boxes, r.lines, strict=True):
            if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
                raise DataError(f"{folder / CSV_NAME}, line {line}: box ({x1}, {y1}, {x2}, {y2}) lies outside "
                                f"{r.name}, which is {w}x{h}")
        images[i], geometry = letterbox(pixels, canvas)
        rows.append(geometry.to_canvas(torch.tensor(r.boxes, dtype=torch.float64).reshape(-1, 4)).float())
        frames.append(geometry)
    targets = BoxTargets.pack(rows, frames)
    return {"images": images, "boxes": targets.values, "offsets": targets.offsets, "frames": targets.frames}


def _load_cached(path: Path, count: int) -> dict[str, Tensor] | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if int(data["images"].shape[0]) != count:
            raise ValueError("wrong number of images")
        return {k: data[k] for k in ("images", "boxes", "offsets", "frames")}
    except Exception as exc:  # unreadable or foreign: decode again and replace it
        warnings.warn(f"ignoring the unreadable cache file {path} ({exc}); decoding the images again",
                      stacklevel=3)
        return None


def load_decoded(folder: Path, records: Sequence[FrameRecord], hashes: dict[str, str], *,
                 canvas: tuple[int, int] = DEFAULT_CANVAS, cache: bool = True) -> dict[str, Tensor]:
    """The decoded canvases and boxes of ``records``, from the cache when it holds them (else decoded and
    cached atomically)."""
    path = _cache_path(folder / CSV_NAME, hashes, canvas)
    if cache and (hit := _load_cached(path, len(records))) is not None:
        return hit
    decoded = _decode_all(folder, records, canvas)
    if cache:
        try:
            save_torch(decoded, path)
        except OSError as exc:  # a read-only cache only costs the next run a decode
            warnings.warn(f"could not write the decoded-image cache {path} ({exc})", stacklevel=3)
    return decoded


def load_car_detection(*, data_dir: str | Path | None = None, download: bool = True,
                       canvas: tuple[int, int] = DEFAULT_CANVAS, gap: int = 100,
                       fractions: tuple[float, float] = (0.70, 0.85), train_subset: int | None = None,
                       seed: int = 0, strict: bool = False, cache: bool = True) -> DataSplits:
    """The car-detection set as frame-range train / validation / test splits.

    Args:
        data_dir: a folder holding ``train_solution_bounding_boxes.csv`` and ``training_images/``, directly or
            in ``car-detection/`` (see :func:`gradfree.data.store.locate` for the other places searched).
        download: accepted for the registry's signature; no mirror serves this set (the message says where
            to put the files).
        canvas: letterbox size ``(height, width)``.
        gap: frames dropped before each cut.
        fractions: the cuts, as fractions of the labelled images.
        train_subset: if given, that many training images, a seeded draw from the training range.
        seed: seeds ``train_subset``'s draw.
        strict: an image named in the CSV but absent is an error instead of a warning.
        cache: read and write the decoded-image cache.

    Returns:
        Splits named ``"car-detection"`` (one class): inputs float32 ``(N, 3, H, W)`` in [0, 1], targets
        :class:`~gradfree.data.box_targets.BoxTargets` in canvas pixels with each image's letterbox.
    """
    folder = locate(CAR_DETECTION_FILES, data_dir=data_dir, download=download)
    records, hashes = collect_frames(folder, strict=strict)
    plan = split_by_frames(records, fractions=fractions, gap=gap)
    decoded = load_decoded(folder, records, hashes, canvas=canvas, cache=cache)
    targets = BoxTargets(decoded["boxes"], decoded["offsets"], decoded["frames"])
    train_rows = torch.tensor(plan.train, dtype=torch.int64)
    if train_subset is not None:
        if not 0 < train_subset <= len(plan.train):
            raise ConfigError(f"train_subset must be in 1..{len(plan.train)}, got {train_subset}")
        pick = torch.randperm(len(plan.train), generator=torch.Generator().manual_seed(seed))[:train_subset]
        train_rows = torch.sort(train_rows[pick]).values

    def split(rows: Tensor) -> Split:
        return Split(decoded["images"][rows].float().div_(255.0), targets[rows])

    return DataSplits("car-detection", split(train_rows), split(torch.tensor(plan.val, dtype=torch.int64)),
                      split(torch.tensor(plan.test, dtype=torch.int64)), num_classes=1)
