"""Augmentation policies: presets plus a RandAugment/TrivialAugment-style op-set x magnitude space.

On digits on-the-fly augmentation gave ~2x fewer labels; on Fashion-MNIST the same affine
jitter *hurt* from 20 labels per class. So the policy is searched per dataset, and "none"
is always one of the answers. A policy is plain data (a name plus albumentations op dicts),
so it serialises into the recipe YAML and rebuilds with `generators.procedural.build_augmenter`.

The search space follows RandAugment (one global magnitude m in [0, 1] over a chosen op set)
with TrivialAugment's spirit of sampling rather than grid-searching it: each op is applied
with probability `p_op` (albumentations cannot nest op lists in synth's flat op format,
so "apply N of K ops" becomes "apply each with probability N/K").

`AugPolicy.prob` applies the whole policy to only that share of draws (the rest pass the
real image unchanged). Why: on Fashion-MNIST light augmentation on *every* draw cost
labels (0.74x) while 10 precomputed variations mixed at share 0.5 gained (0.682 vs 0.667
at 5 labels/class): the clean image must stay in the diet. `prob < 1` is that lever online.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synth.errors import ConfigError
from synth.regularisers import Regularisers, parse

if TYPE_CHECKING:
    from synth.training import TrainConfig

_PRESET_DIR = Path(__file__).resolve().parents[2] / "conf" / "generator"


@dataclass(frozen=True)
class AugPolicy:
    """A named list of albumentations ops (empty: no augmentation), applied to a `prob` share of draws."""

    name: str
    ops: tuple[dict[str, Any], ...] = ()
    working_size: int = 32
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    prob: float = 1.0
    #: the augmenter backend (generators.procedural.BACKENDS): torch batches online augmentation
    backend: str = "torch"
    #: the working-size round trip (generators.procedural.torch_backend.RESAMPLE); a recipe written before
    #: the option existed reads as "bilinear", the round trip it was scored with
    resample: str = "exact"
    #: mix every training batch too (synth.regularisers: "mixup" or "cutmix", alpha 1.0); None: no mixing
    batch_mix: str | None = None
    #: label smoothing of the training targets (synth.regularisers); 0: none
    smoothing: float = 0.0
    #: train this many times the trainer's steps (name suffix `+x<scale>`). Why: a model fed a fresh variation
    #: at every draw keeps improving after real only has converged (digits dev split, strong@p0.5+ls0.1 at
    #: 2,400 vs 600 steps: +1.9 / +0.75 / +0.3 / +0.8 points at 2-20 labels per class, 16 of 16 draws at or
    #: above; real only at 1,200: +0.3 / 0.0 / +0.3 / 0.0; benchmarks/results/steps_check_digits.md).
    #: Supervised training only: consistency training has its own `semi.steps` (a Recipe refuses both).
    steps_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.prob <= 1.0:
            raise ConfigError(f"augmentation policy {self.name!r}: prob must be in (0, 1], got {self.prob}")
        from generators.procedural.torch_backend import check_resample

        check_resample(self.resample, f"augmentation policy {self.name!r}: resample")
        self.regularisers()  # a bad kind or smoothing is a ConfigError now, not at training time
        if not 0 < self.steps_scale < float("inf"):
            raise ConfigError(f"augmentation policy {self.name!r}: steps_scale (+x<scale>) must be a finite number "
                              f"> 0, got {self.steps_scale}")

    @property
    def is_none(self) -> bool:
        return not self.ops and self.batch_mix is None and not self.smoothing and self.steps_scale == 1.0

    def regularisers(self) -> Regularisers:
        """The batch mix and label smoothing the trainer applies after the per-image augmenter."""
        return parse(self.batch_mix, self.smoothing)

    def train_config(self, cfg: TrainConfig) -> TrainConfig:
        """The trainer settings this policy trains with: `cfg` with its steps scaled by `steps_scale`."""
        return cfg if self.steps_scale == 1.0 else replace(cfg, steps=max(1, round(cfg.steps * self.steps_scale)))

    def build(self):
        """The per-image augmenter `(image, rng) -> image`, or None for no per-image augmentation."""
        if not self.ops:
            return None
        from generators.procedural import build_augmenter

        augment = build_augmenter([dict(op) for op in self.ops], self.working_size, self.backend, self.resample)
        return augment if self.prob >= 1.0 else Sometimes(augment, self.prob)

    def with_prob(self, prob: float) -> AugPolicy:
        """This policy applied to a `prob` share of draws, named `<name>@p<prob>`."""
        base = split_loss_suffixes(self.name)[0].split("@p")[0]
        return replace(self, name=(base if prob >= 1.0 else f"{base}@p{prob:g}") + self._suffix(),
                       meta=dict(self.meta), prob=float(prob))

    def with_loss(self, batch_mix: str | None = None, smoothing: float = 0.0, steps_scale: float = 1.0) -> AugPolicy:
        """This policy with a batch mix, label smoothing and training length, named
        `<name>+<kind>+ls<smoothing>+x<steps_scale>` (each part only when set)."""
        kind = None if batch_mix in (None, "none") else str(batch_mix)
        name = split_loss_suffixes(self.name)[0] + _suffix(kind, float(smoothing), float(steps_scale))
        return replace(self, name=name, meta=dict(self.meta), batch_mix=kind, smoothing=float(smoothing),
                       steps_scale=float(steps_scale))

    def with_steps(self, steps_scale: float) -> AugPolicy:
        """This policy trained `steps_scale` times the trainer's steps (its other suffixes kept)."""
        return self.with_loss(self.batch_mix, self.smoothing, steps_scale)

    def _suffix(self) -> str:
        return _suffix(self.batch_mix, self.smoothing, self.steps_scale)

    def to_dict(self) -> dict[str, Any]:
        # prob only when < 1: recipes written before it existed serialise (and hash) unchanged
        return {"name": self.name, "ops": [dict(op) for op in self.ops], "working_size": self.working_size,
                "backend": self.backend, "resample": self.resample,
                **({"prob": self.prob} if self.prob < 1.0 else {}),
                **({"batch_mix": self.batch_mix} if self.batch_mix else {}),
                **({"smoothing": self.smoothing} if self.smoothing else {}),
                **({"steps_scale": self.steps_scale} if self.steps_scale != 1.0 else {}),
                **({"meta": dict(self.meta)} if self.meta else {})}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AugPolicy:
        if "name" not in d:
            raise ConfigError(f"augmentation policy needs a `name`, got keys {sorted(d)}")
        ops = tuple(dict(op) for op in d.get("ops", ()))
        # a recipe written before policies named their backend was augmented by albumentations
        return cls(str(d["name"]), ops, int(d.get("working_size", 32)), dict(d.get("meta", {})),
                   float(d.get("prob", 1.0)), str(d.get("backend", "albumentations")), str(d.get("resample", "bilinear")),
                   d.get("batch_mix"), float(d.get("smoothing", 0.0)), float(d.get("steps_scale", 1.0)))


def _suffix(batch_mix: str | None, smoothing: float, steps_scale: float) -> str:
    """The name suffixes of the loss-side settings, each only when set: `+mixup+ls0.1+x4`."""
    return ((f"+{batch_mix}" if batch_mix else "") + (f"+ls{smoothing:g}" if smoothing else "")
            + (f"+x{steps_scale:g}" if steps_scale != 1.0 else ""))


class Sometimes:
    """Apply `augment` with probability `prob` per draw, from the draw's own rng (deterministic per seed).

    A class, not a closure, so a DataLoader worker can pickle it.
    """

    def __init__(self, augment: Callable[[np.ndarray, np.random.Generator], np.ndarray], prob: float):
        self.augment, self.prob = augment, float(prob)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.augment(image, rng) if rng.random() < self.prob else image

    def batch(self, images: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        """Same draws as calling one image at a time: each coin, then the chosen ones batched."""
        from generators.procedural import augment_batch

        chosen = [i for i, rng in enumerate(rngs) if rng.random() < self.prob]
        out = images.copy()
        if chosen:
            out[chosen] = augment_batch(self.augment, images[chosen], [rngs[i] for i in chosen])
        return out


NONE = AugPolicy("none")


def split_loss_suffixes(name: str) -> tuple[str, list[str]]:
    """(the policy's own name, its trailing loss suffixes): `strong@p0.5+mixup+ls0.1` -> (`strong@p0.5`,
    [`mixup`, `ls0.1`]). Only the trailing `+<word>` parts that are not inside brackets count, so a
    random policy's name (`ra[affine+noise]m0.20`) stays whole."""
    base, suffixes = name, []
    while "+" in base and "]" not in base.rsplit("+", 1)[1]:
        base, part = base.rsplit("+", 1)
        suffixes.insert(0, part)
    return base, suffixes


def loss_suffixes(name: str, suffixes: Sequence[str]) -> tuple[str | None, float, float]:
    """(batch mix, smoothing, steps scale) from a policy name's `+` suffixes (`mixup`, `cutmix`, `ls<eps>`,
    `x<scale>`)."""
    kind, smoothing, scale = None, 0.0, 1.0
    for part in suffixes:
        if part.startswith("ls"):
            smoothing = _number(name, part[2:], "+ls<smoothing>, e.g. +ls0.1")
        elif part.startswith("x"):
            scale = _number(name, part[1:], "+x<steps scale>, e.g. +x4")
        else:
            kind = part
    return kind, smoothing, scale


def _number(name: str, text: str, expected: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"augmentation policy {name!r}: expected {expected}") from None


def preset(name: str) -> AugPolicy:
    """`none`, or a procedural preset from conf/generator/<name>.yaml (light, strong); `<name>@p<prob>`
    (as `with_prob` names it, e.g. `strong@p0.5`) applies it to that share of draws; `+mixup` / `+cutmix`,
    `+ls<eps>` and `+x<scale>` suffixes (as `with_loss` names them, e.g. `strong@p0.5+ls0.1+x4`) add a batch mix,
    label smoothing and a longer training run."""
    base, suffixes = split_loss_suffixes(name)
    if suffixes:
        return preset(base).with_loss(*loss_suffixes(name, suffixes))
    base, sep, prob = name.partition("@p")
    if sep:
        try:
            share = float(prob)
        except ValueError:
            raise ConfigError(f"augmentation preset {name!r}: expected <preset>@p<share>, e.g. strong@p0.5") from None
        return preset(base).with_prob(share)
    if name == "none":
        return NONE
    path = _PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ["none", *sorted(p.stem for p in _PRESET_DIR.glob("*.yaml"))]
        raise ConfigError(f"unknown augmentation preset {name!r}; known: {', '.join(known)}")
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(path))
    return AugPolicy(name, tuple(cfg.get("ops", ())), int(cfg.get("working_size", 32)),
                     backend=str(cfg.get("backend", "albumentations")), resample=str(cfg.get("resample", "exact")))


# --------------------------------------------------------------- RandAugment-style space
def _affine(m: float) -> dict[str, Any]:
    return {"name": "Affine", "rotate": [-30 * m, 30 * m], "scale": [1 - 0.3 * m, 1 + 0.3 * m],
            "translate_percent": [-0.15 * m, 0.15 * m], "shear": [-20 * m, 20 * m]}


def _elastic(m: float) -> dict[str, Any]:
    return {"name": "ElasticTransform", "alpha": 30.0 * m, "sigma": 4.0}


def _brightness_contrast(m: float) -> dict[str, Any]:
    return {"name": "RandomBrightnessContrast", "brightness_limit": 0.4 * m, "contrast_limit": 0.4 * m}


def _blur(m: float) -> dict[str, Any]:
    k = 3 + 2 * int(round(2 * m))
    return {"name": "GaussianBlur", "blur_limit": [3, k]}


def _noise(m: float) -> dict[str, Any]:
    return {"name": "GaussNoise", "std_range": [0.01, 0.01 + 0.15 * m]}


def _dropout(m: float) -> dict[str, Any]:
    size = [0.05 + 0.1 * m, 0.1 + 0.25 * m]
    return {"name": "CoarseDropout", "num_holes_range": [1, 1], "hole_height_range": size,
            "hole_width_range": size, "fill": 0}


def _crop(m: float) -> dict[str, Any]:
    return {"name": "RandomResizedCrop", "size": [32, 32], "scale": [1 - 0.5 * m, 1.0], "ratio": [0.8, 1.25]}


def _hflip(m: float) -> dict[str, Any]:
    return {"name": "HorizontalFlip"}


#: op name -> magnitude (0..1) -> albumentations op (without p). Flips are not in the
#: default set: they change the label of digits; add "hflip" for natural images.
OPS: dict[str, Callable[[float], dict[str, Any]]] = {
    "affine": _affine, "elastic": _elastic, "brightness_contrast": _brightness_contrast, "blur": _blur,
    "noise": _noise, "dropout": _dropout, "crop": _crop, "hflip": _hflip,
}
DEFAULT_OP_SET = ("affine", "elastic", "brightness_contrast", "blur", "noise", "dropout")


def rand_policy(op_names: Sequence[str], magnitude: float, n_ops: int = 2, working_size: int = 32) -> AugPolicy:
    """RandAugment-style policy: each of `op_names` applied with probability n_ops/len at `magnitude`."""
    unknown = [o for o in op_names if o not in OPS]
    if unknown:
        raise ConfigError(f"unknown augmentation op(s) {unknown}; known: {', '.join(OPS)}")
    if not op_names:
        return NONE
    if not 0.0 < magnitude <= 1.0:
        raise ConfigError(f"augmentation magnitude must be in (0, 1], got {magnitude}")
    p = round(min(1.0, n_ops / len(op_names)), 3)
    ops = []
    for o in op_names:
        op = OPS[o](magnitude)
        if op["name"] == "RandomResizedCrop":
            op["size"] = [working_size, working_size]
        ops.append({**op, "p": p})
    name = f"ra[{'+'.join(op_names)}]m{magnitude:.2f}"
    return AugPolicy(name, tuple(ops), working_size, {"ops": list(op_names), "magnitude": magnitude, "n_ops": n_ops})


def sample_policies(
    n: int, rng: np.random.Generator, op_set: Sequence[str] = DEFAULT_OP_SET,
    magnitudes: Sequence[float] = (0.2, 0.4, 0.6), working_size: int = 32,
) -> list[AugPolicy]:
    """`n` distinct random policies (TrivialAugment-like sampling: 1-3 ops x one magnitude)."""
    out: dict[str, AugPolicy] = {}
    for _ in range(20 * max(n, 1)):
        if len(out) >= n:
            break
        k = int(rng.integers(1, min(3, len(op_set)) + 1))
        ops = sorted(rng.choice(len(op_set), size=k, replace=False).tolist())
        pol = rand_policy([op_set[i] for i in ops], float(rng.choice(magnitudes)), n_ops=min(2, k),
                          working_size=working_size)
        out.setdefault(pol.name, pol)
    return list(out.values())
