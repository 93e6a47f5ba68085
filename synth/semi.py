"""Semi-supervised training on the unlabelled pool by consistency (FixMatch, Sohn et al. 2020).

Why: users have many images and few labels, and the pool itself is the strongest source of
extra training images when the model can label it reliably. Each step the classifier sees a
batch of labelled images and `unlabelled_ratio` times as many pool images, each pool image
twice: a *weak* view (small label-preserving jitter) and a *strong* view (synth's own
procedural augmenter at full strength). Where the prediction on the weak view is confident
(>= `threshold`), its argmax is the target for the strong view. So the pool contributes
synthetic variations of real images labelled by the model itself, filtered by confidence at
every step, instead of one offline round of pseudo-labels (generators/pseudo_label.py).
Which pool images count, and as what, is `PseudoLabeller`'s job: FixMatch's one threshold, or
FlexMatch's per-class thresholds, optionally after distribution alignment (ReMixMatch).

Measured on a dev split of the digits pool (benchmarks/semi_check.py, never the test set): 0.82
-> 0.94 at 2 labels per class, 0.89 -> 0.95 at 5; in the harness 6.1x fewer labels to the target.
On Fashion-MNIST it gained 3 points at 5 labels per class and *lost* 2.7 at 20 (the model's
confident mistakes on the pool teach themselves; docs/label_efficiency.md). So it is a lever to
decide per dataset inside the label budget (the stack arm and the recipe search do), not a default.

`train_semi` is deterministic per seed: batch draws and every view's augmentation come from
seeded streams, torch's own RNG (dropout) is forked and seeded as in `train_classifier`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm

from synth.data.imageset import ImageSet
from synth.errors import ConfigError, DataError
from synth.regularisers import PLAIN, Regularisers, unsmooth
from synth.seeding import rng_for
from synth.training import MIX_STREAM, Augment, TrainConfig, make_model, optimizer, predict_proba, to_tensor

_BATCH_STREAM = 47
#: `augment=WEAK` (the default of `train_semi`): the labelled images get the config's weak view.
WEAK = "weak"
THRESHOLDS = ("fixed", "flex")
#: distribution alignment's running mean of pool predictions: ~100-step memory (ReMixMatch's 0.999
#: remembers ~1,000 steps, longer than a whole 600-step run here)
ALIGN_MOMENTUM = 0.99


@dataclass(frozen=True)
class SemiConfig:
    """Consistency-training settings (conf/semi/default.yaml).

    Args:
        steps: optimiser steps; None: the TrainConfig's steps. Each step trains on
            `batch_size * (1 + 2 * unlabelled_ratio)` images, so it costs ~5x a supervised step
            at the default ratio (augmentation is half of it).
        unlabelled_ratio: pool images per labelled image in a batch (FixMatch's mu).
        threshold: confidence on the weak view needed for a pool image to count.
        weight: weight of the pool loss against the labelled loss.
        weak, strong: augmentation presets for the two views (conf/generator/<name>.yaml, or
            "none" for an unaugmented weak view).
        thresholds: "fixed" (FixMatch: `threshold` for every class) or "flex" (FlexMatch's
            curriculum pseudo-labelling, Zhang et al. 2021: class c's threshold is
            `threshold * M(beta_c)`, beta_c its share of confidently labelled pool images relative
            to the best-learned class, so classes the model has not learned yet get lower
            thresholds and are not starved of pool images; published to converge faster at a
            few labels per class, which is the regime of a 600-step CPU run).
        align: distribution alignment (ReMixMatch, Berthelot et al. 2020): scale the weak-view
            probabilities by (uniform prior / running mean of the model's pool predictions)
            before thresholding, so the pseudo-labels cannot drift onto a few classes.
    """

    steps: int | None = 600
    unlabelled_ratio: int = 3
    threshold: float = 0.95
    weight: float = 1.0
    weak: str = "light"
    strong: str = "strong"
    thresholds: str = "fixed"
    align: bool = False

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps <= 0:
            raise ConfigError(f"semi.steps must be > 0 or null, got {self.steps}")
        if self.unlabelled_ratio < 1:
            raise ConfigError(f"semi.unlabelled_ratio must be >= 1, got {self.unlabelled_ratio}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"semi.threshold must be in [0, 1], got {self.threshold}")
        if self.weight < 0:
            raise ConfigError(f"semi.weight must be >= 0, got {self.weight}")
        if self.strong == "none":
            raise ConfigError("semi.strong must name an augmentation preset: the strong view is the method")
        if self.thresholds not in THRESHOLDS:
            raise ConfigError(f"semi.thresholds must be one of {THRESHOLDS}, got {self.thresholds!r}")
        if not isinstance(self.align, bool):
            raise ConfigError(f"semi.align must be true or false, got {self.align!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SemiConfig:
        """From a config node; an unknown key is a ConfigError naming the known ones."""
        d = {k: v for k, v in dict(d or {}).items() if k not in ("_target_", "name")}
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"semi: unknown key(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        """`semi`, plus the settings that differ from the defaults: how a recipe names its candidate."""
        default = SemiConfig()
        diff = [f"{k}={v}" for k, v in asdict(self).items() if getattr(default, k) != v]
        return "semi" if not diff else f"semi({','.join(diff)})"

    def augmenters(self) -> tuple[Augment | None, Augment]:
        """(weak, strong) augmenters built from the presets (the weak one may be None)."""
        from synth.recipe.policy import preset

        return preset(self.weak).build(), preset(self.strong).build()


#: restart k trains with seed + RESTART_SEED_STRIDE * k (restart 0 is the single run synth trains without restarts)
RESTART_SEED_STRIDE = 1000


@dataclass(frozen=True)
class Restarts:
    """Train consistency training `runs` times and keep the run most confident on the pool.

    Why: at 2 labels per class one run can settle onto a wrong pairing of classes, and whether it does
    depends on the training seed as much as on the draw (five runs of one digits draw: 87-94 % on dev). The
    labelled images cannot tell the runs apart (every run fits them) and held-out folds of 2 per class are too
    small, but the pool can be read without labels: a run that merged or split classes stays less sure of the
    images between them. On digits dev splits (benchmarks/semi_select_check.py, 8 draws each) the most confident
    of five runs gained +1.87 ± 0.70 points over one run at 2 labels per class, -0.13 ± 0.18 at 3 and -0.33 ± 0.45
    at 5, so restarts apply only up to `max_labels` labelled images in the smallest class (recommend: 2; in the
    harness, digits with a pool at n = 2: 0.970 ± 0.020 vs 0.951 ± 0.060; docs/recipe_log.md, stop 44).

    Args:
        runs: consistency-training runs to choose from (1: off).
        max_labels: restarts apply only when the smallest class has at most this many labelled images.
    """

    runs: int = 1
    max_labels: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.runs, bool) or not isinstance(self.runs, int) or self.runs < 1:
            raise ConfigError(f"semi_restarts.runs must be an integer >= 1, got {self.runs!r}")
        if isinstance(self.max_labels, bool) or not isinstance(self.max_labels, int) or self.max_labels < 0:
            raise ConfigError(f"semi_restarts.max_labels must be an integer >= 0, got {self.max_labels!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Restarts:
        """From a config node (None: off); an unknown key is a ConfigError naming the known ones."""
        if isinstance(d, DictConfig):
            d = OmegaConf.to_container(d, resolve=True)
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ConfigError(f"semi_restarts must be null or a mapping with runs / max_labels, got {d!r}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"semi_restarts: unknown key(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**dict(d))

    def applies(self, labelled: ImageSet) -> bool:
        """Whether `labelled` is small enough per class for restarts (and there is more than one run)."""
        if self.runs < 2 or len(labelled) == 0:
            return False
        return int(np.bincount(labelled.labels, minlength=len(labelled.class_names)).min()) <= self.max_labels

    def seeds(self, seed: int) -> list[int]:
        return [seed + RESTART_SEED_STRIDE * k for k in range(self.runs)]


def pool_confidence(model: nn.Module, unlabelled: ImageSet) -> float:
    """Mean top-class probability of `model` over the pool: how `Restarts` ranks runs (no label is read)."""
    return float(predict_proba(model, unlabelled.images).max(1).mean())


def semi_candidates(node: Any) -> tuple[SemiConfig, ...]:
    """Consistency-training settings to try, from a config node: null (none), one mapping, or a list of them.

    Why a list: the weak view is a per-dataset choice (light on digits, none on Fashion-MNIST;
    docs/label_efficiency.md), so a search may try several settings and let CV decide.
    """
    if isinstance(node, (DictConfig, ListConfig)):  # a Hydra node: resolve interpolations first
        node = OmegaConf.to_container(node, resolve=True)
    if node is None:
        return ()
    if isinstance(node, SemiConfig):
        return (node,)
    if isinstance(node, Mapping):
        return (SemiConfig.from_dict(dict(node)),)
    if isinstance(node, Sequence) and not isinstance(node, str):
        bad = [c for c in node if not isinstance(c, (Mapping, SemiConfig))]
        if bad:
            raise ConfigError(f"semi: every list entry must be a mapping of SemiConfig keys, got {bad!r}")
        out = tuple(semi_candidates(c)[0] for c in node)
        if len(set(out)) < len(out):
            raise ConfigError(f"semi: the same settings are listed twice: {[c.label for c in out]}")
        return out
    raise ConfigError(f"semi must be null, a mapping of SemiConfig keys or a list of them, got {type(node).__name__}")


class PseudoLabeller:
    """Turns weak-view logits into (targets, mask) for the strong view: FixMatch's fixed
    threshold, or FlexMatch's class-adaptive one, optionally after distribution alignment.

    Kept apart from the training loop so each rule is a small testable piece; it holds the only
    state the rules need (which pool images were confidently labelled as what, and the running
    mean of pool predictions).
    """

    def __init__(self, semi: SemiConfig, n_pool: int, n_classes: int, smoothing: float = 0.0):
        # smoothing: the labelled loss's label smoothing; the model's confidences are read on the labels'
        # scale (`unsmooth`), else a 0.95 threshold is out of reach of a model smoothed with 0.1 (max ~0.91)
        self.semi, self.n_classes, self.smoothing = semi, n_classes, smoothing
        self.selected = np.full(n_pool, -1)  # flex: the class each pool image was last confidently given
        self.p_model = torch.full((n_classes,), 1.0 / n_classes)

    def class_thresholds(self) -> np.ndarray:
        """Per-class confidence thresholds (all `threshold` when fixed).

        FlexMatch with its threshold warm-up: beta_c = sigma_c / max(max_c sigma_c, pool images not
        yet confidently labelled), mapped through the convex M(x) = x / (2 - x). Early in training
        most pool images are unlabelled, so every threshold starts low and rises as classes are learned.
        """
        tau = self.semi.threshold
        if self.semi.thresholds == "fixed":
            return np.full(self.n_classes, tau)
        counts = np.bincount(self.selected + 1, minlength=self.n_classes + 1)  # [unused, class 0, ...]
        beta = counts[1:] / max(int(counts.max()), 1)
        return tau * beta / (2.0 - beta)

    def __call__(self, weak_logits: torch.Tensor, pool_idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        probs = F.softmax(weak_logits, 1)
        if self.smoothing:
            probs = torch.from_numpy(unsmooth(probs.numpy(), self.smoothing))
        if self.semi.align:
            self.p_model = ALIGN_MOMENTUM * self.p_model + (1 - ALIGN_MOMENTUM) * probs.mean(0)
            probs = probs / self.p_model  # x (uniform prior); the constant cancels in the renormalisation
            probs = probs / probs.sum(1, keepdim=True)
        conf, target = probs.max(1)
        thr = torch.from_numpy(self.class_thresholds()).to(conf.dtype)
        mask = (conf >= thr[target]).float()
        if self.semi.thresholds == "flex":
            sure = (conf >= self.semi.threshold).numpy()
            self.selected[pool_idx[sure]] = target.numpy()[sure]
        return target, mask


def _views(augment: Augment | None, images: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """One augmented view per image, image i from its own rng drawn off `rng` (batched when it can be)."""
    if augment is None:
        return to_tensor(images)
    from generators.procedural.augment import augment_batch

    rngs = [np.random.default_rng(int(s)) for s in rng.integers(2**62, size=len(images))]
    return to_tensor(augment_batch(augment, images, rngs))


def _check(labelled: ImageSet, unlabelled: ImageSet) -> None:
    if len(labelled) == 0:
        raise ConfigError("cannot train a classifier on zero labelled images")
    if len(unlabelled) == 0:
        raise DataError("semi-supervised training needs unlabelled images: the pool is empty")
    if unlabelled.image_shape != labelled.image_shape or unlabelled.class_names != labelled.class_names:
        raise DataError(f"the pool ({unlabelled.image_shape}) and the labelled images ({labelled.image_shape}) "
                        "must share image shape and classes")


def train_semi(
    labelled: ImageSet,
    unlabelled: ImageSet,
    cfg: TrainConfig | None = None,
    semi: SemiConfig | None = None,
    *,
    seed: int = 0,
    augment: Augment | None | str = WEAK,
    model: nn.Module | None = None,
    progress: bool = False,
    regularise: Regularisers = PLAIN,
) -> nn.Module:
    """Train on `labelled` plus the consistency loss on `unlabelled` (its labels are never read).

    Args:
        cfg: the classifier (size, batch size, optimiser); `semi.steps` overrides its steps.
        augment: online augmentation of the labelled images; default: the weak view.
        model: start from this model (e.g. an SSL encoder) instead of a fresh SmallCNN.
        regularise: batch mixing and label smoothing of the labelled batch's loss (synth.regularisers); the
            pool's views and their loss are left as they are, and the weak view's confidences are read
            back on the labels' scale before the threshold (`unsmooth`).

    The returned model carries `semi_info`: steps, seconds, and the share of pool images
    above the threshold over the last tenth of training (near 0: the pool taught nothing).
    """
    cfg, semi = cfg or TrainConfig(), semi or SemiConfig()
    _check(labelled, unlabelled)
    weak, strong = semi.augmenters()
    sup_aug = weak if augment == WEAK else augment
    steps, b, mu = int(semi.steps or cfg.steps), cfg.batch_size, semi.unlabelled_ratio
    rng, mix_rng = rng_for(seed, _BATCH_STREAM), rng_for(seed, MIX_STREAM)
    started, masks = time.perf_counter(), []
    pseudo = PseudoLabeller(semi, len(unlabelled), len(labelled.class_names), regularise.smoothing)
    with torch.random.fork_rng(devices=[]):
        model = model if model is not None else make_model(labelled, cfg, seed)
        torch.manual_seed(seed)
        opt, sched = optimizer(model, cfg, steps)
        model.train()
        for _ in tqdm(range(steps), desc="semi-supervised", disable=not progress, leave=False):
            li, ui = rng.integers(len(labelled), size=b), rng.integers(len(unlabelled), size=b * mu)
            xl, pool = _views(sup_aug, labelled.images[li], rng), unlabelled.images[ui]
            xl, draw = regularise.batch(xl, mix_rng)
            logits = model(torch.cat([xl, _views(weak, pool, rng), _views(strong, pool, rng)]))
            on_weak, on_strong = logits[b:b + b * mu].detach(), logits[b + b * mu:]
            target, mask = pseudo(on_weak, ui)
            pool_loss = (F.cross_entropy(on_strong, target, reduction="none") * mask).mean()
            sup_loss = regularise.loss(logits[:b], torch.from_numpy(labelled.labels[li]), draw).mean()
            loss = sup_loss + semi.weight * pool_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            masks.append(float(mask.mean()))
        model.eval()
    tail = masks[-max(1, steps // 10):]
    model.semi_info = {**semi.to_dict(), "steps": steps, "seconds": round(time.perf_counter() - started, 1),
                       "confident_share": round(float(np.mean(tail)), 4), "pool": len(unlabelled),
                       "class_thresholds": [round(float(t), 4) for t in pseudo.class_thresholds()]}
    return model


__all__ = ["PseudoLabeller", "Restarts", "SemiConfig", "WEAK", "pool_confidence", "train_semi"]
