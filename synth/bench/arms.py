"""Benchmark arms: name -> callable(ArmData, budget, seed, ArmConfig) -> ArmOutput.

An arm trains one classifier from exactly the data the harness hands it and reports which
real ids each of its components saw (the harness checks them against the protocol). The
harness evaluates the returned model on the test set; arms never get the test set.

Arms are registered by import path, like generators, so an arm whose module does not exist
yet (or whose generator is not registered) is reported as "not available" instead of
breaking the benchmark. Other packages add arms with `register_arm`, e.g. issue 7/9 arms:
`register_arm("ssl", "synth.ssl.bench:arm_ssl", uses_unlabelled=True)`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from torch import nn

from generators.base import Generator, Samples
from generators.registry import available as available_generators
from generators.registry import get_generator_class
from synth.bench.protocol import ArmData, LabelOracle, budget_key
from synth.data.imageset import ImageSet
from synth.errors import ConfigError, SynthError
from synth.training import TrainConfig, accuracy, train_classifier
from synth.writer import config_hash

CONF_DIR = Path(__file__).resolve().parent.parent.parent / "conf"

#: Keys of an arm's entry that only tell the harness where and when to run it: which budgets and
#: protocols, and `cost` (relative seconds per cell; costly cells start first so parallel workers
#: finish together). They do not change what a cell computes, so they are not part of its hash.
SCHEDULE_KEYS: tuple[str, ...] = ("budgets", "protocols", "cost")
#: Every key the harness itself reads from an arm's entry; arms that reject unknown keys allow these.
HARNESS_KEYS: tuple[str, ...] = ("target", "uses_unlabelled", *SCHEDULE_KEYS)
#: Keys added to arm entries after cells were computed, each with the value that means "off". A key at that
#: value is left out of a cell's hash, so the cells it cannot have shaped stay valid (as `AugPolicy.to_dict`
#: leaves `prob` = 1 out): adding `batch_mixes: []` to the `auto` entry recomputes no `auto`-like cell.
LATE_KEYS: dict[str, Any] = {"batch_mixes": [], "batch_mix_metric": None, "prune_default": True,
                             "settle_default": False, "semi_restarts": None}


def hashed_params(params: dict[str, Any]) -> dict[str, Any]:
    """The params that shape what a cell computes: without schedule keys and late keys left off."""
    return {k: v for k, v in params.items()
            if k not in SCHEDULE_KEYS and not (k in LATE_KEYS and _plain(v) == LATE_KEYS[k])}


def _plain(value: Any) -> Any:
    """A list for any list-like value (a config's ListConfig included), so `[]` compares equal to `()`."""
    from omegaconf import ListConfig

    return list(value) if isinstance(value, (list, tuple, ListConfig)) else value


@dataclass
class ArmConfig:
    """What an arm may configure: its own params, the classifier recipe, the generator cache."""

    name: str
    params: dict[str, Any]
    train: TrainConfig
    cache: GeneratorCache | None = None
    #: every arm's params, so a combining arm can reuse other arms' generator settings
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: bool = False
    #: simulated annotator (unlabelled_pool protocol only): oracle(ids) -> labels; queries count as labels used
    oracle: LabelOracle | None = None


@dataclass
class ArmOutput:
    model: nn.Module
    meta: dict[str, Any]
    #: component name -> real ids it saw (generators, encoders, tuners); checked by the harness
    seen: dict[str, list[str]]
    #: labelled images actually used, if the arm chose its own (e.g. active learning)
    n_labelled: int | None = None


ArmFn = Callable[[ArmData, Any, int, ArmConfig], ArmOutput]


@dataclass(frozen=True)
class ArmSpec:
    target: str  # "package.module:function"
    uses_unlabelled: bool | Callable[[dict], bool] = False
    #: the registered generator this arm needs, given its params (None: needs none)
    needs_generator: Callable[[dict], str | None] | None = None


_ARMS: dict[str, ArmSpec] = {}


def register_arm(
    name: str, target: str, *, uses_unlabelled: bool | Callable[[dict], bool] = False,
    needs_generator: Callable[[dict], str | None] | None = None,
) -> None:
    """Add an arm. `uses_unlabelled=False` arms run once and count for both protocols."""
    _ARMS[name] = ArmSpec(target, uses_unlabelled, needs_generator)


def ensure_registered(name: str, params: Mapping[str, Any]) -> None:
    """Register an arm straight from its config: `bench.arms.<name>.target: "module:function"`
    (plus `uses_unlabelled: true` if it learns from the pool). Lets new arms plug in by config alone."""
    target = params.get("target")
    if target and (name not in _ARMS or _ARMS[name].target != target):
        flag = bool(params.get("uses_unlabelled", False))
        register_arm(name, str(target), uses_unlabelled=flag)


def registered() -> list[str]:
    return sorted(_ARMS)


def availability(name: str, params: Mapping[str, Any]) -> str | None:
    """None if the arm can run here, else the reason it cannot (shown in the report)."""
    if name not in _ARMS:
        return f"arm {name!r} is not registered (known: {', '.join(registered())})"
    spec = _ARMS[name]
    gen = spec.needs_generator(dict(params)) if spec.needs_generator else None
    if gen is not None and gen not in available_generators():
        return f"generator {gen!r} is not registered (available: {', '.join(available_generators())})"
    try:
        resolve(name)
    except (ImportError, AttributeError) as exc:
        return f"cannot import {spec.target}: {exc}"
    return None


def resolve(name: str) -> ArmFn:
    module, _, attr = _ARMS[name].target.partition(":")
    return getattr(importlib.import_module(module), attr)


def uses_unlabelled(name: str, params: Mapping[str, Any]) -> bool:
    flag = _ARMS[name].uses_unlabelled
    return bool(flag(dict(params)) if callable(flag) else flag)


# ------------------------------------------------------------------ shared helpers
def online_augmenter(params: Mapping[str, Any]):
    """The procedural preset `params.augment` (conf/generator/<preset>.yaml) as a training-time transform."""
    preset = params.get("augment")
    if not preset:
        return None
    kwargs = generator_kwargs({"generator_conf": preset, "generator_params": params.get("augment_params") or {}})
    return get_generator_class("procedural")(**kwargs).augmenter


def generator_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor kwargs: conf/generator/<generator_conf>.yaml (if named) updated by `generator_params`."""
    kwargs: dict[str, Any] = {}
    conf = params.get("generator_conf")
    if conf:
        path = CONF_DIR / "generator" / f"{conf}.yaml"
        if not path.is_file():
            raise ConfigError(f"generator_conf {conf!r}: {path} does not exist")
        kwargs = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        kwargs.pop("_target_", None)
        kwargs.pop("name", None)
    kwargs.update(dict(params.get("generator_params") or {}))
    return kwargs


def generator_name(params: Mapping[str, Any]) -> str | None:
    return params.get("generator")


def generator_uses_unlabelled(params: Mapping[str, Any]) -> bool:
    name = generator_name(params)
    if not name or name not in available_generators():
        return False
    return bool(get_generator_class(name).uses_unlabelled)


class GeneratorCache:
    """Fitted generators on disk, keyed by (arm, protocol, budget, seed, config + data hash)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, arm: str, protocol: str, budget: Any, seed: int, digest: str) -> Path:
        return self.root / arm / protocol / f"{budget_key(budget)}-seed{seed}-{digest}"

    def get_or_fit(
        self, arm: str, name: str, kwargs: dict[str, Any], data: ArmData, budget: Any, seed: int
    ) -> tuple[Generator, dict[str, Any]]:
        digest = config_hash({"generator": name, "kwargs": kwargs, "data": data.fingerprint()})[:12]
        where = self.path(arm, data.protocol, budget, seed, digest)
        if (where / "generator_config.json").is_file():
            try:
                return Generator.load(where), {"cached": True, "path": str(where)}
            except SynthError:
                pass  # unreadable checkpoint: refit and overwrite
        gen, info = fit_generator(name, kwargs, data)
        gen.save(where)
        return gen, {**info, "cached": False, "path": str(where)}


def fit_generator(name: str, kwargs: dict[str, Any], data: ArmData) -> tuple[Generator, dict[str, Any]]:
    t0 = time.perf_counter()
    gen = get_generator_class(name)(**kwargs)
    gen.fit(data.labelled, data.unlabelled)
    return gen, {"fit_seconds": round(time.perf_counter() - t0, 2)}


def synthetic_set(gen: Generator, labelled: ImageSet, params: Mapping[str, Any], seed: int) -> ImageSet:
    """`synthetic_per_real` samples per labelled image of each class (capped), as an ImageSet."""
    return synthetic_with_parents(gen, labelled, params, seed)[0]


def synthetic_with_parents(
    gen: Generator, labelled: ImageSet, params: Mapping[str, Any], seed: int
) -> tuple[ImageSet, np.ndarray]:
    """Like `synthetic_set`, plus each sample's parent real id ("" where none)."""
    per_class = int(np.ceil(float(params.get("synthetic_per_real", 10)) * labelled.class_counts().max()))
    per_class = max(1, min(per_class, int(params.get("max_synthetic_per_class", 500))))
    samples: Samples = gen.sample(per_class, seed=seed)
    ids = [f"syn-{i:06d}" for i in range(len(samples))]
    parents = np.asarray(["" if p is None else str(p) for p in samples.parent_ids], dtype=str)
    return ImageSet.build(samples.images, samples.labels, ids, labelled.class_names), parents


def obtain_generator(
    arm: str, params: Mapping[str, Any], data: ArmData, budget: Any, seed: int, cfg: ArmConfig
) -> tuple[Generator, dict[str, Any]]:
    name = generator_name(params)
    if not name:
        raise ConfigError(f"bench.arms.{arm}.generator is not set (a registered generator name)")
    kwargs = generator_kwargs(params)
    if cfg.cache is None:
        return fit_generator(name, kwargs, data)
    return cfg.cache.get_or_fit(arm, name, kwargs, data, budget, seed)


# --------------------------------------------------------------------------- arms
def arm_real(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """Labelled real images only, no augmentation: the baseline every multiplier divides by."""
    model = train_classifier(data.labelled, cfg.train, seed=seed)
    return ArmOutput(model, {}, {})


def arm_aug_online(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """Real images with a fresh procedural variation at every draw (classic augmentation)."""
    params = {"augment": "light", **cfg.params}
    model = train_classifier(data.labelled, cfg.train, seed=seed, augment=online_augmenter(params))
    return ArmOutput(model, {"augment": params["augment"]}, {})


def arm_policy(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """Real images trained with one augmentation policy as the recipe search names it (`params.policy`,
    e.g. "strong@p0.5+ls0.1": per-image ops on a share of draws plus loss-side regularisers), fixed on
    every cell: measures a policy the search could choose, without the search's decision."""
    from synth.recipe import Recipe, preset, train_with

    name = cfg.params.get("policy")
    if not name:
        raise ConfigError("bench arm policy needs `policy`, a name synth.recipe.preset reads (e.g. strong@p0.5)")
    model = train_with(Recipe(policy=preset(str(name))), data.labelled, None, seed, cfg.train)
    return ArmOutput(model, {"policy": str(name)}, {})


def arm_generator(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """Fit the arm's generator on the arm's data, sample, and mix at `share` of every batch.

    Used for aug_offline (procedural, precomputed), diffusion, gan and img2img; `augment`
    optionally adds online augmentation of the real images on top.
    """
    params = cfg.params
    gen, info = obtain_generator(cfg.name, params, data, budget, seed, cfg)
    t0 = time.perf_counter()
    syn = synthetic_set(gen, data.labelled, params, seed)
    t1 = time.perf_counter()
    share = float(params.get("share", 0.5))
    model = train_classifier(
        data.labelled, cfg.train, seed=seed, augment=online_augmenter(params), synthetic=syn, synthetic_share=share
    )
    meta = {"generator": generator_name(params), "synthetic": len(syn), "share": share,
            "sample_seconds": round(t1 - t0, 2), "train_seconds": round(time.perf_counter() - t1, 2),
            **info, "fit_info": gen.fit_info}
    return ArmOutput(model, meta, {f"generator:{generator_name(params)}": list(gen.seen_ids)})


def arm_combined(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """The best recipe among `candidates`, chosen by cross-validation inside the labelled budget."""
    from synth.bench.combine import choose_and_train

    return choose_and_train(data, budget, seed, cfg)


def _gen_of(params: dict) -> str | None:
    return params.get("generator")


def _combined_uses_unlabelled(params: dict) -> bool:
    from synth.bench.combine import uses_unlabelled as combined_uses

    return combined_uses(params)


register_arm("real", "synth.bench.arms:arm_real")
register_arm("aug_online", "synth.bench.arms:arm_aug_online")
for _name in ("aug_offline", "diffusion", "gan", "img2img"):
    register_arm(_name, "synth.bench.arms:arm_generator", uses_unlabelled=generator_uses_unlabelled,
                 needs_generator=_gen_of)
register_arm("combined", "synth.bench.arms:arm_combined", uses_unlabelled=_combined_uses_unlabelled)


def evaluate(model: nn.Module, test: ImageSet) -> float:
    return accuracy(model, test)
