"""Loss-side regularisers: batch mixing (mixup, CutMix) and label smoothing.

Why: per-image augmentation (synth's augmenters) varies an image but keeps its label; with a handful
of labelled images per class a classifier still memorises them. Mixing two images of a batch and
their labels in proportion (mixup, Zhang et al. 2018: a convex combination; CutMix, Yun et al. 2019:
a box of one pasted into the other) keeps it from becoming certain on any one of them. On the dev
splits (benchmarks/regulariser_check.py, on top of the default policy strong@p0.5) both gained on
Fashion-MNIST at 5 and 20 labels per class and lost on 8x8 digits (CutMix also at 50 on Fashion-MNIST):
a per-dataset choice, not a default (docs/recipe.md).

Label smoothing (Szegedy et al. 2016: the target puts `smoothing` of its mass evenly on every class) keeps
the classifier from driving its logits to certainty on a handful of images; on the digits dev split it
gained on top of strong@p0.5 in every draw checked (docs/recipe.md).

As in the augmenters, randomness is drawn in one place (`BatchMix.draw`, from an injected
generator) and pure functions apply it (`apply_mix`), so a batch's mix is reproducible per seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from synth.errors import ConfigError

KINDS = ("mixup", "cutmix")


@dataclass(frozen=True)
class MixDraw:
    """One batch's random choices: the partner of each image, the mixing weight and (CutMix) the box."""

    perm: np.ndarray
    lam: float
    box: tuple[int, int, int, int] | None = None  # top, left, height, width


@dataclass(frozen=True)
class BatchMix:
    """Mix every training batch with a permutation of itself; `lam ~ Beta(alpha, alpha)`."""

    kind: str
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"batch mix must be one of {KINDS}, got {self.kind!r}")
        if not self.alpha > 0:
            raise ConfigError(f"batch mix {self.kind}: alpha must be > 0, got {self.alpha}")

    def draw(self, n: int, height: int, width: int, rng: np.random.Generator) -> MixDraw:
        lam, perm = float(rng.beta(self.alpha, self.alpha)), rng.permutation(n)
        if self.kind == "mixup":
            return MixDraw(perm, lam)
        bh, bw = int(round(height * np.sqrt(1 - lam))), int(round(width * np.sqrt(1 - lam)))
        top, left = int(rng.integers(0, height - bh + 1)), int(rng.integers(0, width - bw + 1))
        # the label weight is the share of pixels each image really contributes
        return MixDraw(perm, 1.0 - bh * bw / (height * width), (top, left, bh, bw))

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, MixDraw]:
        """The mixed batch and the draw that made it (`mixed_loss` needs it)."""
        d = self.draw(len(x), x.shape[2], x.shape[3], rng)
        return apply_mix(x, d), d


def apply_mix(x: torch.Tensor, d: MixDraw) -> torch.Tensor:
    """Pure: the batch `x` (N, C, H, W) mixed with `x[d.perm]` as `d` says."""
    other = x[torch.from_numpy(d.perm)]
    if d.box is None:
        return d.lam * x + (1 - d.lam) * other
    top, left, h, w = d.box
    out = x.clone()
    out[:, :, top:top + h, left:left + w] = other[:, :, top:top + h, left:left + w]
    return out


def mixed_loss(logits: torch.Tensor, y: torch.Tensor, d: MixDraw | None, smoothing: float = 0.0) -> torch.Tensor:
    """Per-image cross-entropy against the mixed labels (plain cross-entropy when `d` is None),
    with the targets smoothed by `smoothing`."""
    loss = F.cross_entropy(logits, y, reduction="none", label_smoothing=smoothing)
    if d is None:
        return loss
    other = F.cross_entropy(logits, y[torch.from_numpy(d.perm)], reduction="none", label_smoothing=smoothing)
    return d.lam * loss + (1 - d.lam) * other


@dataclass(frozen=True)
class Regularisers:
    """What the trainer applies on top of per-image augmentation: a batch mix and label smoothing."""

    mix: BatchMix | None = None
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"label smoothing must be in [0, 1), got {self.smoothing}")

    def batch(self, x: torch.Tensor, rng: np.random.Generator | None) -> tuple[torch.Tensor, MixDraw | None]:
        """The batch to train on and the mix draw (None without a batch mix)."""
        if self.mix is None:
            return x, None
        if rng is None:
            raise ConfigError("a batch mix needs an rng (its draws must be reproducible)")
        return self.mix(x, rng)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, d: MixDraw | None) -> torch.Tensor:
        return mixed_loss(logits, y, d, self.smoothing)


#: no regulariser: plain cross-entropy, the batch as it comes
PLAIN = Regularisers()


def parse(kind: str | None, smoothing: float = 0.0, alpha: float = 1.0) -> Regularisers:
    """Regularisers from config values (kind None or "none": no batch mix)."""
    mix = None if kind in (None, "none") else BatchMix(str(kind), float(alpha))
    return Regularisers(mix, float(smoothing))


def unsmooth(proba: np.ndarray, smoothing: float) -> np.ndarray:
    """Class probabilities of a model trained on label-smoothed targets, mapped back to the labels' scale.

    Why: cross-entropy against targets (1 - e) * onehot + e / K is minimised by q = (1 - e) * p + e / K,
    p the class probability given the image, so a model smoothed with e = 0.1 answers a sure image
    with ~0.91. Whatever reads its confidence as a probability of being right was misled: the recipe
    search's Brier score charged it for the confidence it was trained not to show (it refused
    `strong@p0.5+ls0.1` while its accuracy was higher, digits n = 20), and consistency training's
    0.95 threshold was out of reach. Smoothing is symmetric label noise at a known rate, so
    the map inverts exactly, p = (q - e / K) / (1 - e) (the backward correction of Patrini et al.
    2017); probabilities below e / K clip to 0 and rows are renormalised. Monotone in each class, so
    the predicted class (and accuracy) is unchanged. `smoothing` 0 returns `proba` as it is.
    """
    if smoothing <= 0.0 or proba.size == 0:
        return proba
    if smoothing >= 1.0:
        raise ConfigError(f"label smoothing must be in [0, 1), got {smoothing}")
    p = np.clip((proba.astype(np.float64) - smoothing / proba.shape[1]) / (1.0 - smoothing), 0.0, None)
    total = p.sum(1, keepdims=True)
    # a row whose every class sits at or below e / K carries no preference: keep the model's own row
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), proba).astype(proba.dtype)
