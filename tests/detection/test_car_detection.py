"""The car-detection loader on generated folders (every bad-input case), and the real set's split counts."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from car_fixtures import frame_boxes, make_car_folder, write_manifest

from gradfree.data.box_targets import BoxTargets
from gradfree.data.car_detection import (
    collect_frames,
    load_car_detection,
    parse_boxes_csv,
    split_by_frames,
)
from gradfree.data.images import decode_image, letterbox, letterbox_geometry
from gradfree.errors import DataError

CANVAS = (32, 48)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADFREE_DATA", raising=False)


def _load(root: Path, **options: object) -> object:
    return load_car_detection(data_dir=root, canvas=CANVAS, gap=40, download=False, **options)  # type: ignore[arg-type]


def test_loads_letterboxed_images_and_boxes_in_canvas_pixels(tmp_path: Path) -> None:
    make_car_folder(tmp_path)
    data = _load(tmp_path)
    assert data.name == "car-detection" and data.num_classes == 1  # type: ignore[attr-defined]
    train = data.train  # type: ignore[attr-defined]
    assert train.x.shape[1:] == (3, 32, 48) and train.x.dtype == torch.float32
    assert float(train.x.min()) >= 0.0 and float(train.x.max()) <= 1.0
    assert isinstance(train.y, BoxTargets) and len(train.y) == len(train)
    # 96x54 onto 48x32: scale 0.5, the image 48x27, padded 2 above and 3 below
    frame = train.y.letterbox(0)
    assert (frame.scale_x, frame.scale_y, frame.pad_x, frame.pad_y) == (0.5, 0.5, 0.0, 2.0)
    # every image's boxes map back to the CSV's to float precision
    sizes = [len(data.train), len(data.val), len(data.test)]  # type: ignore[attr-defined]
    assert sum(sizes) + 4 == 100 and min(sizes) > 0  # two gaps of 40 frames at a 20-frame step drop 4 images
    first_frame = 0
    expected = torch.tensor(frame_boxes(first_frame, width=96, height=54)).reshape(-1, 4)
    assert torch.allclose(train.y.original(0).float(), expected, atol=1e-4)


def test_the_split_is_by_frame_ranges_with_gaps() -> None:
    from gradfree.data.car_detection import FrameRecord

    records = [FrameRecord(f"vid_1_{f}.jpg", 1, f, ((0, 0, 1, 1),) if f % 40 == 0 else (), ()) for f in
               range(0, 2000, 20)]
    plan = split_by_frames(records, gap=60)
    frames = {k: [records[i].frame for i in getattr(plan, k)] for k in ("train", "val", "test", "dropped")}
    assert max(frames["train"]) < min(frames["val"]) and max(frames["val"]) < min(frames["test"])
    cut_val, cut_test = min(frames["val"]), min(frames["test"])
    assert frames["dropped"] == [f for f in range(0, 2000, 20) if cut_val - 60 <= f < cut_val or
                                 cut_test - 60 <= f < cut_test]
    labelled = [f for f in range(0, 2000, 40)]
    assert cut_val == labelled[round(0.70 * 50)] and cut_test == labelled[round(0.85 * 50)]
    assert any(not records[i].boxes for i in plan.val)  # negatives go by the same ranges


def test_a_second_load_reads_the_cache_and_decodes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_car_folder(tmp_path)
    first = _load(tmp_path)
    cached = list((tmp_path / "cache" / "car-detection").glob("decoded-*.pt"))
    assert len(cached) == 1 and not list(cached[0].parent.glob(".*.tmp"))

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr("gradfree.data.car_detection.decode_image", no_decoding)
    second = _load(tmp_path)
    assert torch.equal(first.train.x, second.train.x)  # type: ignore[attr-defined]
    assert torch.equal(first.test.y.values, second.test.y.values)  # type: ignore[attr-defined]


def test_a_changed_image_gets_a_new_cache_file(tmp_path: Path) -> None:
    folder = make_car_folder(tmp_path, manifest=False)
    _load(tmp_path)
    (folder / "training_images" / "vid_4_0.jpg").write_bytes((folder / "training_images" / "vid_4_20.jpg").read_bytes())
    _load(tmp_path)
    assert len(list((tmp_path / "cache" / "car-detection").glob("decoded-*.pt"))) == 2


def test_a_corrupt_cache_file_is_replaced(tmp_path: Path) -> None:
    make_car_folder(tmp_path)
    _load(tmp_path)
    (cached,) = (tmp_path / "cache" / "car-detection").glob("decoded-*.pt")
    cached.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable cache"):
        data = _load(tmp_path)
    assert len(data.train) > 0  # type: ignore[attr-defined]


def test_a_missing_image_is_skipped_with_one_warning_or_refused_when_strict(tmp_path: Path) -> None:
    make_car_folder(tmp_path, missing=[9980])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _load(tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "vid_4_9980.jpg" in messages[0] and "1 image(s)" in messages[0]
    with pytest.raises(DataError, match="vid_4_9980.jpg"):
        _load(tmp_path, strict=True)


@pytest.mark.parametrize(("row", "match"), [
    ("vid_4_0.jpg,1,2,3", "line 3: expected 5 fields"),
    ("vid_4_0.jpg,1,2,abc,4", "line 3: the coordinates"),
    ("vid_4_0.jpg,5,2,5,9", "line 3: box of vid_4_0.jpg has xmax <= xmin"),
    ("vid_4_0.jpg,1,9,5,3", "line 3: .* ymax <= ymin"),
    ("vid_4_0.jpg,1,2,nan,4", "line 3: a coordinate of vid_4_0.jpg is not finite"),
    ("frame_zero.jpg,1,2,3,4", "frame_zero.jpg.*vid_<video>_<frame>"),
])
def test_a_malformed_csv_row_is_one_line_naming_file_and_row(tmp_path: Path, row: str, match: str) -> None:
    folder = make_car_folder(tmp_path, frames=(0, 20, 40))
    csv_path = folder / "train_solution_bounding_boxes.csv"
    csv_path.write_bytes("\r\n".join(["image,xmin,ymin,xmax,ymax", "vid_4_20.jpg,1,1,5,5", row]).encode())
    with pytest.raises(DataError, match=match) as info:
        _load(tmp_path)
    assert "\n" not in str(info.value) and "train_solution_bounding_boxes.csv" in str(info.value)


def test_a_bad_header_is_refused(tmp_path: Path) -> None:
    folder = make_car_folder(tmp_path, frames=(0, 20))
    (folder / "train_solution_bounding_boxes.csv").write_text("name,a,b,c,d\nvid_4_0.jpg,1,1,5,5")
    with pytest.raises(DataError, match="line 1: expected the header"):
        parse_boxes_csv(folder / "train_solution_bounding_boxes.csv")


def test_a_box_outside_its_image_names_file_and_row(tmp_path: Path) -> None:
    folder = make_car_folder(tmp_path, frames=(0, 20, 40, 60))
    csv_path = folder / "train_solution_bounding_boxes.csv"
    csv_path.write_bytes(csv_path.read_bytes() + b"\r\nvid_4_20.jpg,50,10,97.5,30")
    with pytest.raises(DataError, match=r"line \d+: box \(50.0, 10.0, 97.5, 30.0\) lies outside vid_4_20.jpg, "
                                        r"which is 96x54"):
        _load(tmp_path)


def test_a_corrupt_jpeg_is_named(tmp_path: Path) -> None:
    folder = make_car_folder(tmp_path, frames=(0, 20, 40, 60), manifest=False)
    path = folder / "training_images" / "vid_4_40.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="vid_4_40.jpg is corrupt"):
        _load(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        decode_image(folder / "nothing.jpg")


def test_manifest_mismatches_are_named(tmp_path: Path) -> None:
    folder = make_car_folder(tmp_path, frames=(0, 20, 40, 60))
    image = folder / "training_images" / "vid_4_20.jpg"
    original = image.read_bytes()
    image.write_bytes(original[:-1] + b"\x00")
    with pytest.raises(DataError, match="vid_4_20.jpg failed its checksum"):
        collect_frames(folder)
    image.write_bytes(original)
    (folder / "training_images" / "vid_4_80.jpg").write_bytes(original)
    with pytest.raises(DataError, match="vid_4_80.jpg is not listed"):
        collect_frames(folder)
    write_manifest(folder)
    (folder / "training_images" / "vid_4_80.jpg").unlink()
    with pytest.raises(DataError, match="lists training_images/vid_4_80.jpg, which is absent"):
        collect_frames(folder)


def test_an_absent_folder_says_where_to_put_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train_solution_bounding_boxes.csv.*--data-dir"):
        load_car_detection(data_dir=tmp_path, download=False)


def test_train_subset_is_a_seeded_draw_from_the_training_range(tmp_path: Path) -> None:
    make_car_folder(tmp_path)
    full = _load(tmp_path)
    a, b = _load(tmp_path, train_subset=10, seed=3), _load(tmp_path, train_subset=10, seed=3)
    assert len(a.train) == 10 and torch.equal(a.train.x, b.train.x)  # type: ignore[attr-defined]
    assert torch.equal(a.val.x, full.val.x)  # type: ignore[attr-defined]


def test_letterbox_maps_boxes_both_ways() -> None:
    image = torch.randint(0, 255, (3, 380, 676), dtype=torch.uint8)
    canvas, frame = letterbox(image, (192, 320))
    assert canvas.shape == (3, 192, 320) and frame == letterbox_geometry(676, 380, (192, 320))
    assert (round(676 * frame.scale_x), round(380 * frame.scale_y), frame.pad_y) == (320, 180, 6.0)
    assert int(canvas[0, 0, 0]) == 114 and int(canvas[0, -1, -1]) == 114  # grey bands above and below
    boxes = torch.tensor([[0.0, 0.0, 676.0, 380.0], [100.5, 150.25, 300.0, 260.0]], dtype=torch.float64)
    assert torch.allclose(frame.to_original(frame.to_canvas(boxes)), boxes)
    assert frame.to_canvas(boxes)[0].tolist() == [0.0, 6.0, 320.0, 186.0]


@pytest.mark.shared_data
def test_the_real_set_splits_into_the_documented_counts(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "car-detection"
    if not (folder / "train_solution_bounding_boxes.csv").is_file():
        pytest.skip("the car-detection set is not in ../shared/data")
    with pytest.warns(UserWarning, match="vid_4_9980.jpg"):
        records, _ = collect_frames(folder)
    assert len(records) == 503 and sum(len(r.boxes) for r in records) == 558
    assert sum(1 for r in records if not r.boxes) == 149
    plan = split_by_frames(records)
    counts = {}
    for name in ("train", "val", "test", "dropped"):
        rows = [records[i] for i in getattr(plan, name)]
        counts[name] = (len(rows), sum(1 for r in rows if not r.boxes), sum(len(r.boxes) for r in rows),
                        rows[0].frame, rows[-1].frame)
    assert counts == {"train": (324, 79, 380, 600, 17200), "val": (81, 33, 62, 17340, 21560),
                      "test": (88, 35, 107, 21680, 30440), "dropped": (10, 2, 9, 17240, 21660)}
