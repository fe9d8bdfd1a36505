"""Pictures of detections and the ``detect`` command on a trained run."""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from car_fixtures import make_car_folder

from gradfree.data.images import letterbox_geometry
from gradfree.detection import command as detect_command
from gradfree.detection.pictures import Panel, canvas_panel, detection_grid, precision_recall_plot
from gradfree.errors import ConfigError
from gradfree.run import RunSpec, train_run
from gradfree.tasks import build_task


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _share_of(colour: tuple[int, int, int], pixels: np.ndarray) -> float:
    return float((np.abs(pixels.astype(int) - np.array(colour)).sum(axis=2) < 40).mean())


def test_a_grid_draws_true_and_predicted_boxes(tmp_path: Path) -> None:
    image = torch.full((3, 60, 100), 0.5)
    panel = Panel(image, torch.tensor([[10.0, 10.0, 50.0, 40.0]]), torch.tensor([[12.0, 11.0, 52.0, 42.0]]),
                  torch.tensor([0.9]), "frame 1")
    empty = Panel(image, torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0), "no car")
    path = detection_grid([panel, empty, panel], tmp_path / "grid.png", columns=2)
    pixels = _png(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 200
    assert _share_of((44, 160, 44), pixels) > 0.001  # green true boxes
    assert _share_of((255, 127, 14), pixels) > 0.001  # orange predictions
    low = Panel(image, None, torch.tensor([[12.0, 11.0, 52.0, 42.0]]), torch.tensor([0.1]))
    assert _share_of((255, 127, 14), _png(detection_grid([low], tmp_path / "low.png"))) < 0.0005  # below 0.25


def test_a_canvas_panel_crops_the_grey_bands_and_moves_the_boxes() -> None:
    frame = letterbox_geometry(676, 380, (192, 320))
    panel = canvas_panel(torch.zeros(3, 192, 320), frame, torch.tensor([[10.0, 16.0, 30.0, 40.0]]),
                         torch.tensor([[0.0, 6.0, 5.0, 9.0]]), torch.tensor([0.5]))
    assert panel.image.shape == (3, 180, 320)
    assert panel.truths is not None and panel.truths.tolist() == [[10.0, 10.0, 30.0, 34.0]]
    assert panel.boxes.tolist() == [[0.0, 0.0, 5.0, 3.0]]


def test_a_precision_recall_plot_is_written(tmp_path: Path) -> None:
    path = precision_recall_plot({"adam (AP 0.80)": ([0.5, 0.5, 1.0], [1.0, 0.5, 0.66])}, tmp_path / "pr.png")
    assert _png(path).shape[0] > 200


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cars")
    folder = make_car_folder(root, frames=tuple(range(0, 400, 20)))
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADFREE_CACHE", str(cache))
        spec = RunSpec(task="car-detection", model="yolo:4-4-4-4-4", optimizer="adam", budget=2, batch_size=4,
                       eval_every=10, seed=0, device="cpu")
        train_run(spec, out_dir=root / "run", data_dir=root, progress=False)
    return root / "run", folder


def _args(run: Path, images: list[Path], out: Path, score: float = 0.0) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    detect_command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["detect", "--run", str(run), *map(str, images), "--out", str(out), "--score",
                              str(score), "--device", "cpu"])


def test_detect_draws_the_same_detections_the_task_evaluates(trained_run: tuple[Path, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run, folder = trained_run
    images = [folder / "training_images" / "vid_4_0.jpg", folder / "training_images" / "vid_4_20.jpg"]
    assert detect_command.run(_args(run, images, tmp_path / "out")) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and "vid_4_0.jpg: 100 detection(s)" in printed[0] and printed[2].startswith("wrote")
    record = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [Path(r["image"]).name for r in record["images"]] == ["vid_4_0.jpg", "vid_4_20.jpg"]
    assert (tmp_path / "out" / "vid_4_0.png").is_file()
    # the task's own evaluation path gives the same boxes for the same file
    monkeypatch.setenv("GRADFREE_CACHE", str(tmp_path / "cache"))
    task = build_task("car-detection", data_dir=folder.parent, download=False)
    detector = detect_command.load_detector(run)
    dets, _, _ = task.detections(detector.model, task.data.train)  # type: ignore[attr-defined]
    ours = np.asarray(record["images"][0]["boxes"]).reshape(-1, 4)
    assert ours.shape[0] == 100  # score 0: every kept detection, at most 100
    np.testing.assert_allclose(ours, dets[0].boxes, atol=0.01)
    assert ours.min() >= 0 and ours[:, 2].max() <= 96 and ours[:, 3].max() <= 54


def test_detect_refuses_what_is_not_a_detector_run(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, folder = trained_run
    image = folder / "training_images" / "vid_4_0.jpg"
    with pytest.raises(ConfigError, match="needs config.json and model.pt"):
        detect_command.run(_args(tmp_path, [image], tmp_path / "out"))
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "config.json").write_text((run / "config.json").read_text())

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("this ran",))

    (forged / "model.pt").write_bytes(pickle.dumps({"weights": Payload()}, protocol=2))
    with pytest.raises(ConfigError, match="refusing .*model.pt"):
        detect_command.load_detector(forged)
    config = json.loads((run / "config.json").read_text())
    config["config"]["model"] = "mlp:784-32-10"
    (forged / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="not a detector"):
        detect_command.load_detector(forged)
    config["config"]["model"] = "yolo:8-8-8-8-8"
    (forged / "config.json").write_text(json.dumps(config))
    (forged / "model.pt").write_bytes((run / "model.pt").read_bytes())
    with pytest.raises(ConfigError, match="does not hold the weights"):
        detect_command.load_detector(forged)
    with pytest.raises(ConfigError, match="--score"):
        detect_command.run(_args(run, [image], tmp_path / "out", score=2.0))
