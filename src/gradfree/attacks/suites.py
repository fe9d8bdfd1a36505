"""The suites ``attacks-mnist`` and ``attacks-cifar10``: every attack, untargeted and targeted, side by side.

Each suite attacks a victim's first correctly classified test images (:mod:`gradfree.victims`: trained with
Adam once per seed and cached; each seed trains its own) with:

* **minimal L2**: ZOO-ADAM and ZOO-Newton (Chen et al. 2017), white-box C&W-L2 (the distortion ZOO is judged
  against, on the same images) and ART's ``ZooAttack`` at its best settings and at its defaults (the library
  users would pick instead, same model and images), and ZOO-ADAM at ART's best settings
  (:data:`ZOO_AT_ART_SETTINGS`: the wall-time comparison at equal work);
* **eps-bounded, L-inf** (0.3 on MNIST, 8/255 on CIFAR-10) and **L2** (2.0 and 0.5): NES, ZO-signSGD (L-inf),
  Bandits-TD, Square, the label-only HopSkipJump and white-box PGD, at one query budget per image;

all untargeted and targeted (a seeded random other class per image), over 3 seeds. ``attacks-mnist`` adds two
victims where gradients fail: the LeNet trained gradient-free by RSO, and the non-differentiable
``mnist-quantized`` (8-level input quantisation), each attacked untargeted at L-inf 0.3 by every score-based
attack, HopSkipJump and PGD.

ZOO's settings were chosen on a few images (one core, short runs): on MNIST (``tanh=False``,
``initial_const=1``, 5 binary steps of 300 iterations, ``lr=0.03``) its L2 came within 0.5-6.5% of C&W-L2's on
each of 3 images (mean +1.9%), for about 330,000 queries per image; on CIFAR-10, whose distortions are ten times
smaller (``lr=0.003``, ``initial_const=0.01``, 6 binary steps of 200 iterations, an early-abort check every 50)
it came within 6% on one image and at 3x on a second whose C&W distortion is only 0.018, for 80,000-270,000
queries. Targeted on CIFAR-10 those settings fooled 4 of 6 images (seeds 0-1 of the full size): Adam moves a
coordinate by about ``lr`` an update, and targeted distortions are 2-4x larger, so the targeted attack takes
the paper's ``lr = 0.01`` (:data:`ZOO_ADAM_TARGETED`; 6 of 6 on the same images, 9 of 9 over the full size's
3 seeds). ZOO and ART attack fewer images than the others.

Sizes (one core's time, from the measured query costs: the LeNet scores about 10,000 images a second, the
half-width CIFAR CNN about 1,400):

* ``quick`` — 4 images (ZOO, C&W and ART: 2), small budgets, seed 0: a few minutes once the victims exist;
* ``full`` — 100 images (ZOO and ART: 10; CIFAR-10: 30, and 3), budgets of 10,000 queries (HopSkipJump
  5,000), 3 seeds. Estimated from the measured costs (not yet run): MNIST about 2-2.5 hours on one core, a third
  of it ZOO's 13 million queries per seed; CIFAR-10 about 5-7 hours at 50 images (ZOO 5), hence 30 and 3 —
  plus training the victims of seeds 1 and 2 (CIFAR-10 CNN and RSO: tens of minutes each);
* ``gpu`` — 500 images (ZOO and ART: 50), the same budgets.
"""

from __future__ import annotations

from typing import Any

from gradfree.attacks.peers import ART_BEST, ZOO_AT_ART_LABEL
from gradfree.attacks.trials import AttackSpec
from gradfree.experiments.suite import SUITES, Size, Trial

SCORE_BOUNDED = ("nes", "zo-signsgd", "bandits-td", "square")
ZOO_OPTIONS: dict[str, dict[str, Any]] = {
    "mnist": {"tanh": False, "initial_const": 1.0, "binary_steps": 5, "iterations": 300, "lr": 0.03},
    "cifar10": {"tanh": False, "initial_const": 0.01, "binary_steps": 6, "iterations": 200, "lr": 0.003,
                "early_stop_every": 50},
}
ZOO_ADAM_TARGETED: dict[str, dict[str, Any]] = {"mnist": {}, "cifar10": {"lr": 0.01}}
"""Changes to :data:`ZOO_OPTIONS` for targeted ZOO-ADAM (see the module docstring; ZOO-Newton's step is
``lr g / h``, already 100% targeted at the shared settings)."""
ZOO_AT_ART_SETTINGS = {"tanh": False, "initial_const": ART_BEST["initial_const"], "binary_steps": 1,
                       "iterations": ART_BEST["max_iter"], "lr": 0.01, "coordinates": 128, "h": 1e-4,
                       "confidence": 0.0}
"""ZOO-ADAM set as ART's ``ZooAttack`` is at :data:`~gradfree.attacks.peers.ART_BEST` (ART's defaults
otherwise): ``c = 10``, one search step (``binary_search_steps=1``), 100 iterations (``max_iter``) of 128
coordinates (``nb_parallel``), ``lr = 0.01`` (``learning_rate``), ``h = 1e-4`` (``variable_h``),
``confidence = 0``, the projection onto the box, early abort on: "the same settings" of the issue's wall-time
comparison."""


def _plan(size: Size) -> dict[str, Any]:
    if size == "quick":
        return {"images": 4, "few": 2, "budget": 500, "hsj": 300, "seeds": (0,), "zoo": {"binary_steps": 2,
                "iterations": 30}, "cw": {"binary_steps": 3, "iterations": 100, "initial_const": 1.0},
                "art": {"max_iter": 10}}
    if size == "full":
        return {"images": 100, "few": 10, "budget": 10_000, "hsj": 5000, "seeds": (0, 1, 2), "zoo": {}, "cw": {},
                "art": {}}
    return {"images": 500, "few": 50, "budget": 10_000, "hsj": 5000, "seeds": (0, 1, 2), "zoo": {}, "cw": {},
            "art": {}}


def _trial(label: str, group: str, **spec: Any) -> Trial:
    return Trial(label=label, spec=AttackSpec(**spec), group=group)


def attack_trials(victim: str, task: str, size: Size, *, eps_linf: float, eps_l2: float,
                  few: int | None = None, images: int | None = None) -> list[Trial]:
    """Every attack on ``victim`` (see the module docstring); ``few`` and ``images`` override the ZOO / ART
    image count and the others'."""
    p = _plan(size)
    n, budget = images if images is not None else p["images"], p["budget"]
    few = few if few is not None else p["few"]
    trials: list[Trial] = []
    for seed in p["seeds"]:
        common = {"victim": victim, "victim_seed": seed, "seed": seed}
        for targeted in (False, True):
            goal = "targeted" if targeted else "untargeted"
            g = f"{victim}/{goal}/l2-minimal"
            for method in ("zoo-adam", "zoo-newton"):
                own = ZOO_ADAM_TARGETED[task] if targeted and method == "zoo-adam" else {}
                zoo = {**ZOO_OPTIONS[task], **own, **p["zoo"]}
                trials.append(_trial(method, g, method=method, targeted=targeted, norm="l2", eps=None, queries=None,
                                     images=few, options=zoo, **common))
            trials.append(_trial("cw-l2", g, method="cw-l2", targeted=targeted, norm="l2", eps=None, queries=None,
                                 images=few, options=dict(p["cw"]), **common))
            at_art = {**ZOO_AT_ART_SETTINGS, **({"iterations": p["art"]["max_iter"]} if "max_iter" in p["art"] else {})}
            trials.append(_trial(ZOO_AT_ART_LABEL, g, method="zoo-adam", targeted=targeted, norm="l2",
                                 eps=None, queries=None, images=few, options=at_art, **common))
            for name, settings in (("best", ART_BEST), ("defaults", {})):
                chosen = {**settings, **p["art"]} if name == "best" else "defaults"
                trials.append(_trial(f"art-zoo ({name})", g, method="art-zoo", targeted=targeted, norm="l2",
                                     eps=None, queries=None, images=few,
                                     options={"settings": chosen}, **common))
            for norm, eps in (("linf", eps_linf), ("l2", eps_l2)):
                g = f"{victim}/{goal}/{norm}-{eps:.4g}"
                for method in SCORE_BOUNDED:
                    if method == "zo-signsgd" and norm == "l2":
                        continue
                    trials.append(_trial(method, g, method=method, targeted=targeted, norm=norm, eps=eps,
                                         queries=budget, images=n, **common))
                trials.append(_trial("hopskipjump", g, method="hopskipjump", targeted=targeted, norm=norm, eps=eps,
                                     queries=p["hsj"], images=n, **common))
                trials.append(_trial("pgd", g, method="pgd", targeted=targeted, norm=norm, eps=eps, queries=None,
                                     images=n, **common))
    return trials


def gradient_free_victims(size: Size, *, eps: float = 0.3) -> list[Trial]:
    """The two MNIST victims where gradients fail, untargeted at L-inf ``eps``: every score-based attack,
    HopSkipJump and PGD."""
    p = _plan(size)
    trials = []
    for victim in ("mnist-rso", "mnist-quantized"):
        for seed in p["seeds"]:
            common = {"victim": victim, "victim_seed": seed, "seed": seed, "targeted": False, "norm": "linf",
                      "eps": eps, "images": p["images"]}
            g = f"{victim}/untargeted/linf-{eps:g}"
            for method in SCORE_BOUNDED:
                trials.append(_trial(method, g, method=method, queries=p["budget"], **common))
            trials.append(_trial("hopskipjump", g, method="hopskipjump", queries=p["hsj"], **common))
            trials.append(_trial("pgd", g, method="pgd", queries=None, **common))
    return trials


def attacks_mnist(size: Size) -> list[Trial]:
    """``attacks-mnist``: the LeNet trained with Adam, then the RSO-trained and the quantised victims."""
    return attack_trials("mnist-lenet", "mnist", size, eps_linf=0.3, eps_l2=2.0) + gradient_free_victims(size)


def attacks_cifar10(size: Size) -> list[Trial]:
    """``attacks-cifar10``: the half-width CIFAR CNN trained with Adam. Fewer images than MNIST: its forward is
    5-7x dearer, and at 50 images (ZOO and ART 5) the full size was estimated at 5-7 hours on one core; 30
    images (ZOO and ART 3) keep it near the project's hours-not-days scale."""
    full = size == "full"
    return attack_trials("cifar10-cnn", "cifar10", size, eps_linf=8 / 255, eps_l2=0.5, few=3 if full else None,
                         images=30 if full else None)


SUITES.add("attacks-mnist", attacks_mnist,
           summary="every attack (ZOO, NES, ZO-signSGD, Bandits-TD, Square, HopSkipJump, PGD, C&W, ART's ZOO) on "
                   "the MNIST LeNet, untargeted and targeted, L2 and L-inf; plus RSO-trained and quantised victims")
SUITES.add("attacks-cifar10", attacks_cifar10,
           summary="every attack on the CIFAR-10 CNN, untargeted and targeted, L2 and L-inf eps 8/255")
