"""Score a synthetic dataset against its real reference (domain gap, novelty, labels); filter."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from synth.config import load_splits, to_container
from synth.data.imageset import ImageSet
from synth.data.splits import Splits
from synth.errors import ConfigError
from synth.scoring.features import (
    ClassifierExtractor,
    Extractor,
    FeatureCache,
    judge_augment,
    load_extractor,
    train_extractor,
)
from synth.scoring.filtering import accept_mask
from synth.scoring.manifest import read_synthetic, write_scores
from synth.scoring.per_sample import SCORES
from synth.scoring.pipeline import ScoreResult, score_images
from synth.scoring.report import build_report, write_all
from synth.training import TrainConfig

log = logging.getLogger("synth.score")
_SKIPPABLE = ("fd", "kid", "prdc", "alpha", "c2st")


@dataclass(frozen=True)
class ScoreRun:
    out_dir: Path
    report: dict[str, Any]
    result: ScoreResult
    accepted: np.ndarray | None


def reference_sets(splits: Splits, cfg: DictConfig, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """(training reference, held-out real). Never touches the test set.

    Held-out real = up to `heldout.max_images` unlabelled-pool images; with an empty pool,
    a `heldout.labelled_fraction` share of the labelled images (stratified) instead.
    """
    pool = splits.unlabelled
    limit = int(cfg.heldout.max_images)
    if len(pool):
        pick = np.random.default_rng(seed).permutation(len(pool))[:limit]
        return splits.labelled, pool.subset(np.sort(pick))
    frac = float(cfg.heldout.labelled_fraction)
    if not 0 < frac < 1:
        return splits.labelled, None
    from synth.data.splits import stratified_split

    train, held = stratified_split(splits.labelled, frac, seed)
    return train, held.without_labels()


def extractor_and_judge(cfg: DictConfig, train: ImageSet, seed: int) -> tuple[Extractor, ClassifierExtractor]:
    sc = cfg.scoring
    tc = TrainConfig(**to_container(sc.train))
    augment = judge_augment() if sc.get("augment", True) else None
    judge = train_extractor(train, tc, seed=seed, augment=augment, cache_dir=cfg.cache_dir, name="smallcnn")
    kind = sc.get("kind", "train")
    if kind == "train":
        return judge, judge
    if kind == "local":
        return load_extractor(sc.weights, sc.config), judge
    raise ConfigError(f"scoring.kind must be 'train' or 'local', got {kind!r}")


def _check_filter(cfg: DictConfig) -> None:
    """Fail on a bad filter before minutes of scoring, not after."""
    column = (cfg.get("filter") or {}).get("column")
    if column and column.removeprefix("score_") not in (*SCORES, "copy"):
        raise ConfigError(f"unknown score column {column!r} for filter.column; available: {', '.join(SCORES)}")


def _filter(cfg: DictConfig, scores: dict[str, np.ndarray]) -> tuple[np.ndarray | None, dict | None]:
    f = cfg.get("filter") or {}
    if not f.get("column"):
        if f.get("threshold") is not None or f.get("quantile") is not None:
            raise ConfigError("filter.threshold/quantile given without filter.column (e.g. filter.column=gap)")
        return None, None
    mask = accept_mask(scores, f.column, threshold=f.get("threshold"), quantile=f.get("quantile"), keep=f.get("keep", "above"))
    rule = f"{f.column} {'>=' if f.get('keep', 'above') == 'above' else '<='} " + (
        f"{f.threshold}" if f.get("threshold") is not None else f"quantile for best {f.quantile:.0%}")
    info = {"rule": rule, "accepted": int(mask.sum()), "total": len(mask), "acceptance_rate": float(mask.mean())}
    log.info("filter %s: %d of %d accepted (%.1f%%)", rule, mask.sum(), len(mask), 100 * mask.mean())
    return mask, info


def run(cfg: DictConfig) -> ScoreRun:
    t0 = time.perf_counter()
    if not cfg.get("synthetic"):
        raise ConfigError("synthetic=<dir> is required: a finished `synth generate` output directory")
    bad = [s for s in cfg.get("skip") or [] if s not in _SKIPPABLE]
    if bad:
        raise ConfigError(f"skip: unknown metric(s) {bad}; choose from {list(_SKIPPABLE)}")
    if cfg.get("num_threads"):
        import torch

        torch.set_num_threads(int(cfg.num_threads))  # multi-threaded torch on shared cores spins badly
    _check_filter(cfg)
    seed = int(cfg.seed)
    _, splits = load_splits(cfg)
    synthetic, _ = read_synthetic(cfg.synthetic, splits.labelled.class_names)
    train, heldout = reference_sets(splits, cfg, seed)
    extractor, judge = extractor_and_judge(cfg, train, seed)
    cache = FeatureCache(cfg.cache_dir)
    data_name = str(cfg.data.get("name", "data"))
    result = score_images(
        synthetic, train, heldout, extractor, judge=judge, cache=cache, k=int(cfg.k), realism_k=int(cfg.realism_k),
        copy_threshold=float(cfg.copy_threshold), novelty_target=float(cfg.novelty_target), seed=seed,
        skip=tuple(cfg.get("skip") or ()), names=(f"{data_name}-train", f"{data_name}-heldout", "synthetic"),
    )
    mask, filter_info = _filter(cfg, result.per_sample)
    if cfg.write_manifest:
        write_scores(cfg.synthetic, synthetic.ids, result.per_sample, mask)
    meta = {
        "synthetic": str(cfg.synthetic),
        "reference": f"data={data_name} budget={to_container(cfg.budget)} seed={seed} (labelled = training reference)",
        "heldout_source": "unlabelled pool" if len(splits.unlabelled) else "labelled hold-out",
    }
    result.seconds["total"] = time.perf_counter() - t0
    report = build_report(result, meta, filter_info)
    out = Path(cfg.out_dir)
    write_all(out, report, result, synthetic, int(cfg.grid_per_side))
    s = result.summary
    print(f"synth score: {len(synthetic)} samples, gap {s['gap_mean']:.3f} (held-out real "
          f"{s.get('real_vs_real_gap_mean', float('nan')):.3f}), copies {s['copy_rate']:.1%}"
          + (f", accepted {filter_info['accepted']}/{filter_info['total']}" if filter_info else "")
          + f" -> {out / 'report.md'} ({result.seconds['total']:.1f}s)")
    return ScoreRun(out, report, result, mask)
