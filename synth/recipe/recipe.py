"""A recipe: one point in synth's lever space, and how to train a classifier with it.

The levers are: an online augmentation policy, one extra source of training images (a
registered generator: procedural offline variations, pseudo-labelled pool images,
diffusion/GAN/img2img samples), its share of each batch, a label-consistency filter
quantile, consistency training on the pool (synth.semi) instead of a source, and
self-supervised initialisation. `Recipe()` with all defaults is "nothing":
real labelled images only, no augmentation — the answer synth falls back to.

`fit_and_train` is the single code path used both inside cross-validation folds and for
the final classifier, so what the search scored is exactly what the user gets.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from synth.data.imageset import ImageSet
from synth.errors import ConfigError, DataError
from synth.recipe.policy import NONE, AugPolicy
from synth.seeding import rng_for
from synth.semi import WEAK, Restarts, SemiConfig, pool_confidence, train_semi
from synth.training import TrainConfig, predict_proba, train_classifier

if TYPE_CHECKING:  # synth.ssl is imported where it is used: only SSL recipes need it
    from synth.ssl import SSLConfig

_SOURCE_STREAM = 23


@dataclass(frozen=True)
class Recipe:
    """Levers for one training run. All defaults = "nothing" (real only, no augmentation).

    Args:
        policy: online augmentation of real images (and of pseudo-labelled pool images).
        source: registered generator name, or None.
        source_config: constructor arguments for the generator.
        synthetic_share: share of each batch from the source. None (pseudo_label only):
            pseudo-labelled pool images join the real set as if labelled.
        n_synthetic_per_class: samples drawn from a generative source.
        filter_quantile: drop this lowest share of samples by a real-only teacher's
            probability of their label (label-consistency filter); 0 = keep all.
        ssl: start from a contrastive encoder pretrained on the unlabelled pool (synth.ssl).
        semi: train by consistency on the pool with these settings (synth.semi); the policy then
            augments the labelled images (none: the semi weak view). Exclusive with a source: it
            labels the pool itself, at every step. None: off. It trains for `semi.steps`, so a policy with
            a `+x<scale>` training length is refused beside it (the scale would be silently ignored).
    """

    policy: AugPolicy = NONE
    source: str | None = None
    source_config: dict[str, Any] = field(default_factory=dict)
    synthetic_share: float | None = 0.5
    n_synthetic_per_class: int = 100
    filter_quantile: float = 0.0
    ssl: bool = False
    semi: SemiConfig | None = None

    def __post_init__(self) -> None:
        if self.semi is not None and self.source is not None:
            raise ConfigError("recipe.semi trains on the labelled images + the pool and labels the pool itself; "
                              f"it does not mix in a source (got source={self.source!r}): set one of them to null")
        if self.semi is not None and self.policy.steps_scale != 1.0:
            raise ConfigError(f"recipe.semi trains for semi.steps; the policy {self.policy.name!r} asks for "
                              f"{self.policy.steps_scale:g}x the supervised steps, which consistency training would "
                              "ignore: drop the +x suffix from the policy or set semi.steps instead")
        if not 0.0 <= self.filter_quantile < 1.0:
            raise ConfigError(f"recipe.filter_quantile must be in [0, 1), got {self.filter_quantile}")
        if self.synthetic_share is not None and not 0.0 <= self.synthetic_share < 1.0:
            raise ConfigError(f"recipe.synthetic_share must be in [0, 1) or null, got {self.synthetic_share}")
        if self.synthetic_share is None and self.source not in (None, "pseudo_label"):
            raise ConfigError("recipe.synthetic_share=null (mix as real) is only valid for source=pseudo_label")

    @property
    def is_nothing(self) -> bool:
        return self.policy.is_none and self.source is None and not self.ssl and self.semi is None

    @property
    def name(self) -> str:
        if self.is_nothing:
            return "nothing"
        parts = [] if self.policy.is_none else [f"aug={self.policy.name}"]
        if self.source:
            share = "as-real" if self.synthetic_share is None else f"{self.synthetic_share:g}"
            extra = "".join(f",{k}={v}" for k, v in sorted(self.source_config.items()) if k in _NAMED_KEYS)
            parts.append(f"{self.source}({share}{extra})")
            if self.filter_quantile:
                parts.append(f"filter={self.filter_quantile:g}")
        if self.semi is not None:
            parts.append(self.semi.label)
        if self.ssl:
            parts.append("ssl")
        return " + ".join(parts)

    def with_(self, **changes: Any) -> Recipe:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "policy": self.policy.to_dict(), "source": self.source, "source_config": copy.deepcopy(self.source_config),
            "synthetic_share": self.synthetic_share, "n_synthetic_per_class": self.n_synthetic_per_class,
            "filter_quantile": self.filter_quantile, "ssl": self.ssl,
        }
        if self.semi is not None:  # only when on: recipes written before the lever serialise unchanged
            d["semi"] = self.semi.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ConfigError(f"unknown recipe key(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        d = dict(d)
        d["policy"] = AugPolicy.from_dict(d.get("policy") or {"name": "none"})
        d["source_config"] = dict(d.get("source_config") or {})
        d["semi"] = SemiConfig.from_dict(d["semi"]) if d.get("semi") is not None else None
        return cls(**d)


_NAMED_KEYS = ("threshold", "rounds")


@dataclass
class TrainContext:
    """What is shared across recipes within one search: training sizes and cached models.

    `teacher_cache` holds real-only models per fold (the "nothing" trial trains exactly
    these), reused as label-consistency filters; `encoder` is the SSL encoder, pretrained
    once on the unlabelled pool (it never sees a label, so folds may share it).
    """

    train_cfg: TrainConfig
    ssl_cfg: Any = None
    teacher_cache: dict[int, nn.Module] = field(default_factory=dict)
    encoder: nn.Module | None = None
    notes: list[str] = field(default_factory=list)


def train_with(
    recipe: Recipe, labelled: ImageSet, unlabelled: ImageSet | None = None, seed: int = 0,
    cfg: TrainConfig | None = None, restarts: Restarts | None = None,
) -> nn.Module:
    """Train the classifier a recipe prescribes on the whole labelled budget (+ pool).

    `restarts`: with consistency training on a labelled set small enough for them (`Restarts.applies`), train
    `restarts.runs` times (training seeds `Restarts.seeds`) and return the run most confident on the pool; its
    `semi_info["restarts"]` lists every run's confidence and which was kept. Run 0 is the run without restarts.
    The search's folds score one run: restarts choose among runs of the recipe it chose, at the final fit only.
    """
    ctx = TrainContext(train_cfg=cfg or TrainConfig())
    restarts = restarts or Restarts()
    if recipe.semi is None or unlabelled is None or not len(unlabelled) or not restarts.applies(labelled):
        return fit_and_train(recipe, labelled, unlabelled, seed, ctx)
    kept, best, confidence = None, 0, []
    for k, s in enumerate(restarts.seeds(seed)):  # one model held at a time besides the best so far
        model = fit_and_train(recipe, labelled, unlabelled, s, ctx)
        confidence.append(pool_confidence(model, unlabelled))
        if kept is None or confidence[k] > confidence[best]:  # ties keep the earlier run
            kept, best = model, k
    kept.semi_info["restarts"] = {"runs": restarts.runs, "max_labels": restarts.max_labels, "picked": best,
                                  "pool_confidence": [round(c, 6) for c in confidence]}
    return kept


def fit_and_train(
    recipe: Recipe, labelled: ImageSet, unlabelled: ImageSet | None, seed: int, ctx: TrainContext,
    fold: int | None = None,
) -> nn.Module:
    """Fit the recipe's source on `labelled` (+ pool), then train the classifier. Deterministic per seed."""
    augment = recipe.policy.build()
    data, synthetic, share = labelled, None, 0.0
    if recipe.source is not None:
        extra = _source_images(recipe, labelled, unlabelled, seed, ctx, fold)
        if extra is not None and len(extra):
            if recipe.synthetic_share is None:
                data = labelled.concat(extra)
            elif recipe.synthetic_share > 0:
                synthetic, share = extra, recipe.synthetic_share
    model = None
    if recipe.ssl:
        model = copy.deepcopy(_encoder(labelled, unlabelled, seed, ctx))
    if recipe.semi is not None:
        if unlabelled is None or not len(unlabelled):
            raise DataError("recipe.semi needs an unlabelled pool (pass unlabelled images)")
        return train_semi(data, unlabelled, ctx.train_cfg, recipe.semi, seed=seed,
                          augment=WEAK if augment is None else augment, model=model, regularise=recipe.policy.regularisers())
    return train_classifier(data, recipe.policy.train_config(ctx.train_cfg), seed=seed, augment=augment, synthetic=synthetic,
                            synthetic_share=share, model=model, regularise=recipe.policy.regularisers())


def _source_images(
    recipe: Recipe, labelled: ImageSet, unlabelled: ImageSet | None, seed: int, ctx: TrainContext, fold: int | None,
) -> ImageSet | None:
    """Images from the recipe's source, or None when the source switched itself off."""
    from generators.pseudo_label import PseudoLabelsDisabled
    from generators.registry import get_generator_class

    klass = get_generator_class(recipe.source)
    config = dict(recipe.source_config)
    if recipe.source == "pseudo_label":
        config.setdefault("augment_ops", [dict(op) for op in recipe.policy.ops])
        config.setdefault("working_size", recipe.policy.working_size)
        config.setdefault("resample", recipe.policy.resample)
        config.setdefault("seed", seed)
    gen = klass(**config).fit(labelled, unlabelled)
    try:
        if recipe.source == "pseudo_label":
            extra = gen.pseudo_labelled()
            if recipe.synthetic_share is None:
                return extra
            return _balanced_sample(gen, recipe.n_synthetic_per_class, seed)
        samples = gen.sample(recipe.n_synthetic_per_class, seed=int(rng_for(seed, _SOURCE_STREAM).integers(2**31)))
    except PseudoLabelsDisabled as exc:
        ctx.notes.append(f"{recipe.name}: source off ({exc}); trained without it")
        return None
    ids = np.array([f"syn{j}" for j in range(len(samples))])
    extra = ImageSet(samples.images, samples.labels, ids, labelled.class_names)
    if recipe.filter_quantile > 0:
        teacher = ctx.teacher_cache.get(fold) if fold is not None else None
        if teacher is None:
            teacher = train_classifier(labelled, ctx.train_cfg, seed=seed)
        extra = filter_by_teacher(extra, teacher, recipe.filter_quantile)
    return extra


def _balanced_sample(gen, n_per_class: int, seed: int) -> ImageSet:
    """Class-balanced draw from the classes the pseudo-label source could label."""
    classes = np.flatnonzero(gen.kept_counts > 0)
    s = gen.sample(labels=np.tile(classes, n_per_class), seed=seed)
    ids = np.array([f"pl{j}-{p}" for j, p in enumerate(s.parent_ids)])
    return ImageSet(s.images, s.labels, ids, tuple(gen.class_names))


def filter_by_teacher(samples: ImageSet, teacher: nn.Module, quantile: float) -> ImageSet:
    """Drop the `quantile` share of samples the teacher finds least consistent with their label."""
    if not len(samples):
        return samples
    p = predict_proba(teacher, samples.images)[np.arange(len(samples)), samples.labels]
    keep = np.flatnonzero(p >= np.quantile(p, quantile))
    return samples.subset(keep)


def encoder_config(ctx: TrainContext) -> SSLConfig:
    """The SSLConfig the search's encoder is pretrained with: `ctx.ssl_cfg`, else the classifier's size."""
    from synth.ssl import SSLConfig

    return ctx.ssl_cfg or SSLConfig(width=ctx.train_cfg.width, hidden=ctx.train_cfg.hidden)


def _encoder(labelled: ImageSet, unlabelled: ImageSet | None, seed: int, ctx: TrainContext) -> nn.Module:
    if ctx.encoder is None:
        if unlabelled is None or len(unlabelled) < 2:
            raise DataError("recipe.ssl needs an unlabelled pool (pass unlabelled images)")
        from synth.ssl import train_encoder

        ctx.encoder = train_encoder(unlabelled, encoder_config(ctx), seed=seed, n_classes=labelled.n_classes,
                                    progress=False)
    return ctx.encoder
