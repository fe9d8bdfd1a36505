"""Victims: trained classifiers to attack and explain, built once per seed and cached.

A victim is a network trained by :func:`gradfree.run.train_run` (the project's one training path), wrapped
as a :class:`~gradfree.victims.pixels.PixelClassifier` so that it takes pixels in ``[0, 1]``, together with
its test images in pixels and its measured test accuracy. :data:`VICTIMS` names the standard ones:

=====================  ===============================================================  ==========
name                   what                                                             test acc.
=====================  ===============================================================  ==========
``mnist-lenet``        LeNet-5 (61.7k parameters), Adam, 3,000 steps of 128 (90 s)      98.44%
``cifar10-cnn``        the compact CIFAR CNN at half width (``cifar:0.5``), Adam,       71.88%
                       3,000 steps of 128 (29 min on a busy shared core)
``mnist-rso``          the same LeNet trained gradient-free by RSO (Tripathi & Singh    93.82%
                       2020), 400k evaluations of batches of 256 (13 min, busy core)
``mnist-quantized``    ``mnist-lenet``'s network behind 8-level input quantisation:     98.45%
                       not differentiable (its input gradient is zero)
``digits-mlp``         an MLP on scikit-learn's 8x8 digits (offline, seconds: tests)    96.94%
=====================  ===============================================================  ==========

(Accuracies and times measured for seed 0 on this project's shared 2-core machine.)

Training runs once per (spec, seed): the run folder lives under ``cache_dir()/victims/`` keyed by a hash of
the victim's training settings and seed, is written under a temporary name and renamed into place when
complete, and its weights are reloaded with ``torch.load(weights_only=True)`` (data is never code). The
quantised victim has the same run spec as ``mnist-lenet`` and so shares its cached training.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradfree.data.splits import DataSplits, stratified_subset
from gradfree.data.store import cache_dir
from gradfree.errors import ConfigError, DataError
from gradfree.registry import Registry
from gradfree.run import RunSpec, resolve_device
from gradfree.train.files import save_json
from gradfree.victims.pixels import PixelClassifier, to_pixels

CACHE_VERSION = 1
"""Bumped when a cached victim's layout or meaning changes, so old folders are not reused."""


@dataclass(frozen=True)
class VictimSpec:
    """How a victim is trained (everything :class:`~gradfree.run.RunSpec` needs but the seed).

    Attributes:
        task, model, optimizer, options, budget, batch_size, eval_every, train_subset: the training run.
        levels: grey levels of the input quantisation in front of the network (``None``: none).
        summary: one line for listings.
    """

    task: str
    model: str
    optimizer: str = "adam"
    options: dict[str, Any] = field(default_factory=dict)
    budget: int = 3000
    batch_size: int = 128
    eval_every: int = 1000
    train_subset: int | None = None
    levels: int | None = None
    summary: str = ""

    def run_spec(self, seed: int) -> RunSpec:
        """The training run of this victim for ``seed`` (CPU, one thread's worth of work)."""
        return RunSpec(task=self.task, model=self.model, optimizer=self.optimizer, options=dict(self.options),
                       budget=self.budget, batch_size=self.batch_size, eval_every=self.eval_every, seed=seed,
                       train_subset=self.train_subset, device="cpu")


VICTIMS: Registry[VictimSpec] = Registry("victim")


def _add(name: str, spec: VictimSpec) -> None:
    VICTIMS.add(name, spec, summary=spec.summary, task=spec.task)


# Budgets are sized to build a victim in minutes on one core (measured times in the module docstring): Adam
# steps of 128 images; RSO evaluations of batches of 256.
_add("mnist-lenet", VictimSpec(task="mnist", model="lenet", budget=3000, eval_every=1000,
                               summary="LeNet-5 on MNIST, Adam, 3,000 steps of 128"))
_add("cifar10-cnn", VictimSpec(task="cifar10", model="cifar:0.5", budget=3000, eval_every=1000,
                               summary="compact CIFAR CNN (cifar:0.5) on CIFAR-10, Adam, 3,000 steps of 128"))
_add("mnist-rso", VictimSpec(task="mnist", model="lenet", optimizer="rso",
                             options={"rounds": 4, "weights_per_step": 256}, budget=400_000, batch_size=256,
                             eval_every=100_000, summary="LeNet-5 on MNIST trained gradient-free by RSO, "
                             "400k evaluations of batches of 256"))
_add("mnist-quantized", VictimSpec(task="mnist", model="lenet", budget=3000, eval_every=1000, levels=8,
                                   summary="mnist-lenet behind 8-level input quantisation (no useful gradient)"))
_add("digits-mlp", VictimSpec(task="digits", model="mlp:64-32-10", budget=400, batch_size=64, eval_every=200,
                              summary="MLP 64-32-10 on scikit-learn's 8x8 digits, Adam, 400 steps (offline)"))


@dataclass
class Victim:
    """A trained classifier on pixels, with its test images.

    Attributes:
        name: the victim's name (or the run folder it came from). seed: its training seed.
        model: the :class:`PixelClassifier` in eval mode, parameters frozen (``requires_grad=False``).
        task: the task it was trained on. input_shape, num_classes, class_names: of that task.
        test_x: ``(N, *input_shape)`` test images in pixels ``[0, 1]``. test_y: ``(N,)`` their labels.
        test_accuracy: the model's accuracy on them (measured when the victim is loaded, or cached).
        folder: the training run's folder. spec: the :class:`VictimSpec` (``None`` for a run folder).
    """

    name: str
    seed: int
    model: PixelClassifier
    task: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    test_x: Tensor
    test_y: Tensor
    test_accuracy: float
    folder: Path | None = None
    spec: VictimSpec | None = None

    @torch.no_grad()
    def predict(self, x: Tensor, *, chunk: int = 2048) -> Tensor:
        """``(N,)`` labels of pixel images ``x``."""
        dev = next(iter(self.model.buffers())).device
        return torch.cat([self.model(part.to(dev)).argmax(dim=1).cpu() for part in x.split(chunk)]) \
            if x.shape[0] else torch.zeros(0, dtype=torch.int64)


def pixel_scale(task: str, data: DataSplits) -> tuple[Tensor, Tensor, int]:
    """``(mean, std, levels)``: how ``task``'s loader standardised pixels, and their quantisation (255 for
    8-bit images, 16 for the digits)."""
    if task == "mnist":
        from gradfree.data.mnist import MNIST_MEAN, MNIST_STD

        return torch.tensor([MNIST_MEAN]), torch.tensor([MNIST_STD]), 255
    if task == "fashion-mnist":
        from gradfree.data.fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD

        return torch.tensor([FASHION_MNIST_MEAN]), torch.tensor([FASHION_MNIST_STD]), 255
    if task == "cifar10":
        from gradfree.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD

        return torch.tensor(CIFAR10_MEAN), torch.tensor(CIFAR10_STD), 255
    if task == "digits":
        return _digits_scale(data)
    raise ConfigError(f"no pixel scale is known for task {task!r}; victims come from mnist, fashion-mnist, "
                      "cifar10 or digits")


def _digits_scale(data: DataSplits) -> tuple[Tensor, Tensor, int]:
    """The digits loader's per-pixel statistics, recomputed from scikit-learn's pixels and checked against
    the loaded split (so a change in the loader is a clear error, not a silent mismatch)."""
    from sklearn.datasets import load_digits

    from gradfree.data.digits import DIGITS_SIZES

    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    generator = torch.Generator().manual_seed(0)
    test_index = stratified_subset(y, DIGITS_SIZES[2], generator=generator)
    keep = torch.ones(y.shape[0], dtype=torch.bool)
    keep[test_index] = False
    rest = torch.nonzero(keep).flatten()
    keep[rest[stratified_subset(y[rest], DIGITS_SIZES[1], generator=generator)]] = False
    train = x[torch.nonzero(keep).flatten()]
    mean = train.mean(dim=0)
    std = train.std(dim=0, correction=0)
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    if not torch.allclose((x[test_index] - mean) / std, data.test.x, atol=1e-5):
        raise DataError("the digits loader's standardisation no longer matches gradfree.victims; update "
                        "victims.load._digits_scale")
    return mean, std, 16


def _key(spec: VictimSpec, seed: int) -> str:
    """A hash of what defines the training run (not the quantisation in front of it, nor the summary), so
    new fields of :class:`~gradfree.run.RunSpec` with defaults do not invalidate cached victims."""
    training = {k: v for k, v in asdict(spec).items() if k not in ("levels", "summary")}
    blob = json.dumps({"version": CACHE_VERSION, "spec": training, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def victim_folder(name: str, *, seed: int = 0, cache: str | Path | None = None) -> Path:
    """The cache folder of victim ``name``'s training run for ``seed`` (it may not exist yet)."""
    spec = VICTIMS.get(name)
    root = Path(cache) if cache is not None else cache_dir() / "victims"
    label = f"{spec.task}-{spec.model}-{spec.optimizer}-seed{seed}".replace(":", "_")
    return root / f"{label}-{_key(spec, seed)}"


def train_victim(name: str, *, seed: int = 0, data_dir: str | Path | None = None, download: bool = True,
                 cache: str | Path | None = None, progress: bool | None = False) -> Path:
    """Train victim ``name`` for ``seed`` unless its cached run exists; returns the run folder."""
    from gradfree.run import train_run

    folder = victim_folder(name, seed=seed, cache=cache)
    if (folder / "model.pt").exists():
        return folder
    spec = VICTIMS.get(name)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        train_run(spec.run_spec(seed), out_dir=tmp, data_dir=data_dir, download=download, progress=progress)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same victim first: keep theirs
            if not (folder / "model.pt").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_victim(name: str, *, seed: int = 0, data_dir: str | Path | None = None, download: bool = True,
                cache: str | Path | None = None, device: str = "cpu", train: bool = True,
                progress: bool | None = False, levels: int | None = None, reuse: bool = True) -> Victim:
    """Victim ``name`` trained with ``seed``: from the cache, or trained now (``train=True``).

    ``levels`` puts an input quantisation of that many grey levels in front of the network (default: the
    victim's own, ``None`` for all but ``mnist-quantized``). With ``reuse`` the last victims loaded in this
    process are handed out again (the same object: treat it as read-only) instead of reloading the dataset —
    a suite's trials attack the same victim one after another.

    Raises:
        DataError: the victim is not cached and ``train`` is false.
    """
    spec = VICTIMS.get(name)
    folder = victim_folder(name, seed=seed, cache=cache)
    if not (folder / "model.pt").exists():
        if not train:
            raise DataError(f"victim {name!r} (seed {seed}) is not cached in {folder.parent}; load it with "
                            "train=True to train it (a few minutes on one core)")
        train_victim(name, seed=seed, data_dir=data_dir, download=download, cache=cache, progress=progress)
    levels = spec.levels if levels is None else levels
    weights = (folder / "model.pt").stat()
    key = (name, str(folder), weights.st_mtime_ns, weights.st_size, levels, device, str(data_dir))
    if reuse and key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    victim = _assemble(name, seed=seed, task=spec.task, model_spec=spec.model, folder=folder, data_dir=data_dir,
                       download=download, train_subset=spec.train_subset, levels=levels, device=device, spec=spec,
                       cache_accuracy=True)
    if reuse:
        _LOADED[key] = victim
        while len(_LOADED) > _REUSED:
            _LOADED.popitem(last=False)
    return victim


_REUSED = 2
"""Victims kept loaded in a process (a CIFAR-10 victim holds 120 MB of test images)."""
_LOADED: OrderedDict[tuple[Any, ...], Victim] = OrderedDict()


def victim_from_run(run_dir: str | Path, *, data_dir: str | Path | None = None, download: bool = True,
                    device: str = "cpu", levels: int | None = None) -> Victim:
    """The classifier a ``gradfree train`` run folder holds (its ``config.json`` and ``model.pt``) as a victim.

    Raises:
        DataError: the folder lacks a finished run (``config.json`` and ``model.pt``).
    """
    folder = Path(run_dir)
    config_path, weights = folder / "config.json", folder / "model.pt"
    if not config_path.exists() or not weights.exists():
        raise DataError(f"{folder} holds no finished run (config.json and model.pt); train one with "
                        "`gradfree train ... --out DIR` first")
    try:
        config = json.loads(config_path.read_text())["config"]
        task, model_spec, seed = config["task"], config["model"], int(config.get("seed", 0))
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{config_path} is not a gradfree run config ({exc}); point --run at a run folder") from None
    return _assemble(str(folder), seed=seed, task=task, model_spec=model_spec, folder=folder, data_dir=data_dir,
                     download=download, train_subset=config.get("train_subset"), levels=levels, device=device,
                     spec=None, cache_accuracy=False)


def _assemble(name: str, *, seed: int, task: str, model_spec: str, folder: Path, data_dir: str | Path | None,
              download: bool, train_subset: int | None, levels: int | None, device: str, spec: VictimSpec | None,
              cache_accuracy: bool) -> Victim:
    from gradfree.models import build_model
    from gradfree.tasks import build_task

    data = build_task(task, data_dir=data_dir, seed=seed, download=download, train_subset=train_subset).data
    net = build_model(model_spec, seed=seed, input_shape=data.input_shape, num_classes=data.num_classes)
    try:
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle that asks to run code, or a corrupt file
        raise DataError(f"{folder / 'model.pt'} could not be loaded as plain weights ({exc}); retrain the "
                        "victim (delete the folder)") from None
    net.load_state_dict(state)
    mean, std, pixel_levels = pixel_scale(task, data)
    model = PixelClassifier(net, mean, std, input_shape=data.input_shape, levels=levels)
    dev = resolve_device(device)
    model = model.to(dev).eval()
    _freeze(model)
    test_x = to_pixels(data.test.x.cpu(), mean, std, levels=pixel_levels)
    if not isinstance(data.test.y, Tensor):
        raise ConfigError(f"task {task!r} has no class labels; victims are classifiers")
    test_y = data.test.y.cpu()
    accuracy = _accuracy(model, test_x, test_y, folder if cache_accuracy else None, levels)
    return Victim(name=name, seed=seed, model=model, task=task, input_shape=tuple(data.input_shape),
                  num_classes=data.num_classes, class_names=_class_names(task, data.num_classes), test_x=test_x,
                  test_y=test_y, test_accuracy=accuracy, folder=folder, spec=spec)


def _freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def _accuracy(model: nn.Module, x: Tensor, y: Tensor, folder: Path | None, levels: int | None) -> float:
    key = str(levels)
    record = folder / "victim.json" if folder is not None else None
    known: dict[str, float] = {}
    if record is not None and record.exists():
        try:
            known = dict(json.loads(record.read_text()).get("test_accuracy", {}))
        except (ValueError, AttributeError):
            known = {}
        if key in known:
            return float(known[key])
    dev = next(iter(model.buffers())).device
    with torch.no_grad():
        correct = sum(int((model(part.to(dev)).argmax(dim=1).cpu() == lab).sum())
                      for part, lab in zip(x.split(2048), y.split(2048), strict=True))
    accuracy = correct / max(int(y.numel()), 1)
    if record is not None:
        known[key] = accuracy
        save_json({"test_accuracy": known, "test_images": int(y.numel())}, record)
    return accuracy


def _class_names(task: str, num_classes: int) -> tuple[str, ...]:
    if task == "cifar10":
        from gradfree.data.cifar10 import CIFAR10_CLASSES

        return tuple(CIFAR10_CLASSES)
    return tuple(str(i) for i in range(num_classes))
