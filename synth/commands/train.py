"""Train the reference classifier on real + synthetic data (mix, CV score, or tune the mix)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from synth.config import build, load_splits, to_container
from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.fsutil import atomic_write_text
from synth.mixing.sampler import Schedule, synthetic_share
from synth.mixing.sources import SyntheticData, load_synthetic
from synth.mixing.tuning import Candidate, cv_score, tune_mix
from synth.training import TrainConfig, accuracy, train_classifier

log = logging.getLogger("synth.train")
MODES = ("train", "cv", "tune")


def run(cfg: DictConfig) -> float:
    """Returns the number a sweep optimises: CV accuracy (mode=cv/tune) or test accuracy (train)."""
    t0 = time.perf_counter()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {cfg.mode!r}")
    _, splits = load_splits(cfg)
    labelled = splits.labelled
    mixer = cfg.mixer
    synthetic = _synthetic(cfg, labelled)
    augment = build(cfg.augment, "augment").augmenter if mixer.online_augment else None
    train_cfg = TrainConfig(**to_container(cfg.trainer))
    options = mix_options(mixer)
    ratio = _ratio(mixer)
    if ratio > 0 and synthetic is None:
        raise ConfigError(f"mixer.ratio={ratio} mixes synthetic data, but `synthetic` (a directory) is not set")
    metrics: dict[str, Any] = {"mode": cfg.mode, "data": cfg.data.name, "seed": int(cfg.seed),
                               "n_labelled": len(labelled), "n_synthetic": 0 if synthetic is None else len(synthetic)}
    if cfg.mode == "cv":
        cand = Candidate(ratio, None, augment is not None)
        value = cv_score(labelled, synthetic, cand, augment=augment, train_cfg=train_cfg, mix_options=options,
                         k=int(cfg.cv.k), seed=int(cfg.seed))
        metrics.update(cv_accuracy=value, k=int(cfg.cv.k), candidate=cand.__dict__)
    else:
        if cfg.mode == "tune":
            result = tune_mix(
                labelled, synthetic, ratios=list(cfg.tune.ratios), quantiles=list(cfg.tune.quantiles),
                quantile_column=cfg.tune.quantile_column, augment=augment,
                augment_options=None if cfg.tune.augment_options is None else list(cfg.tune.augment_options),
                train_cfg=train_cfg, mix_options=options, k=int(cfg.cv.k), seed=int(cfg.seed), progress=bool(cfg.progress),
            )
            metrics["tuning"] = result.to_dict()
            ratio, augment = result.best.ratio, augment if result.best.augment else None
            if result.best.quantile is not None and synthetic is not None:
                synthetic = synthetic.filtered(cfg.tune.quantile_column, quantile=result.best.quantile)
        value = _train_and_test(labelled, splits.test, synthetic, ratio, augment, train_cfg, options, int(cfg.seed))
        metrics["test_accuracy"] = value
        if cfg.mode == "tune":
            value = metrics["tuning"]["best_cv_accuracy"]
    metrics.update(seconds=round(time.perf_counter() - t0, 2), config=to_container(cfg))
    _write(Path(cfg.out_dir), metrics)
    print(f"synth train: {_summary(metrics)}; metrics in {Path(cfg.out_dir) / 'metrics.json'}")
    return float(value)


def mix_options(mixer: DictConfig) -> dict[str, Any]:
    """Sampler options from a `mixer` config node (the share itself is set per candidate)."""
    sched = mixer.get("schedule") or {}
    return {
        "balance_classes": bool(mixer.get("balance_classes", False)),
        "schedule": Schedule(str(sched.get("kind", "constant")), float(sched.get("end", 0.0)), sched.get("epochs")),
        "batches_per_epoch": mixer.get("batches_per_epoch"),
        "weight_column": mixer.get("weight_column"),
    }


def _ratio(mixer: DictConfig) -> float:
    """mixer.probability, if set, expressed as the equivalent synthetic:real ratio."""
    share = synthetic_share(mixer.get("ratio"), mixer.get("probability"))
    if share >= 1.0:
        raise ConfigError("mixer.probability=1 leaves no real images in training; use a value below 1")
    return share / (1.0 - share)


def _synthetic(cfg: DictConfig, labelled: ImageSet) -> SyntheticData | None:
    if not cfg.synthetic:
        return None
    data = load_synthetic(cfg.synthetic, labelled.class_names, labelled.image_shape)
    if data.parent_ids is not None:
        outside = np.unique(data.parent_ids[(data.parent_ids != "") & ~np.isin(data.parent_ids, labelled.ids)])
        if len(outside):
            log.warning(
                "%d real images behind %s are not in this run's labelled budget (e.g. %s): it was generated for "
                "another budget/seed, or from the unlabelled pool; results may not be comparable to a strict arm",
                len(outside), cfg.synthetic, outside[0],
            )
    f = cfg.mixer.filter
    if f.column is not None or f.min is not None or f.quantile is not None or f.accepted_only:
        data = data.filtered(f.column, min_score=f.min, quantile=f.quantile, accepted_only=bool(f.accepted_only))
    if cfg.mixer.weight_column:
        data.column(cfg.mixer.weight_column)  # fail early on an unknown or empty column
    return data


def _train_and_test(labelled, test, synthetic, ratio, augment, train_cfg, options, seed) -> float:
    mix = dict(options)
    weight_column = mix.pop("weight_column", None)
    use_syn = synthetic is not None and ratio > 0
    if use_syn and weight_column:
        mix["synthetic_weights"] = synthetic.column(weight_column)
    if not use_syn:
        mix.pop("schedule")
    mix["ratio"] = ratio if use_syn else 0.0
    model = train_classifier(labelled, train_cfg, seed=seed, augment=augment,
                             synthetic=synthetic.images if use_syn else None, mix=mix)
    return accuracy(model, test)


def _summary(m: dict[str, Any]) -> str:
    parts = [f"{m['n_labelled']} labelled + {m['n_synthetic']} synthetic {m['data']} images"]
    if "tuning" in m:
        best = m["tuning"]["best"]
        parts.append(f"tuned (k={m['tuning']['k']}): ratio={best['ratio']} augment={best['augment']} "
                     f"quantile={best['quantile']} cv_accuracy={m['tuning']['best_cv_accuracy']:.4f}")
    if "cv_accuracy" in m:
        parts.append(f"cv_accuracy={m['cv_accuracy']:.4f} (k={m['k']})")
    if "test_accuracy" in m:
        parts.append(f"test_accuracy={m['test_accuracy']:.4f}")
    return "; ".join(parts) + f" in {m['seconds']:.1f}s"


def _write(out: Path, metrics: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1, default=str))



