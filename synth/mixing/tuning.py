"""Choose the mix (synthetic ratio, filter quantile, online augmentation) by k-fold CV inside the budget.

Nothing outside the labelled images is used to score a candidate: every fold trains on
part of the labelled budget (plus synthetic data) and validates on the rest, so the
validation images count against the budget and the test set is never touched. Synthetic
samples derived from a validation image (same `parent_id`) are dropped from that fold's
training data; they would otherwise carry the answer into training. (A learned generator
fitted on the whole budget still saw the fold's images: refit it per fold when that
matters.)

"Use nothing" is always a candidate — ratio 0 without augmentation — because measured on
Fashion-MNIST augmentation and synthetic data *hurt* from 20 labels per class. Ties go to
the simpler candidate (smaller ratio, no augmentation, no filter).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from synth.cv import stratified_folds
from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.mixing.dataset import Augment
from synth.mixing.sources import SyntheticData
from synth.training import TrainConfig, accuracy, train_classifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    ratio: float
    quantile: float | None = None
    augment: bool = False

    def complexity(self) -> tuple:
        return (self.ratio, self.augment, self.quantile or 0.0)


@dataclass
class TuneResult:
    best: Candidate
    best_score: float
    #: one row per candidate: its settings, mean/std CV accuracy and per-fold scores
    table: list[dict[str, Any]] = field(default_factory=list)
    k: int = 3
    n_labelled: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"best": asdict(self.best), "best_cv_accuracy": self.best_score, "k": self.k,
                "n_labelled": self.n_labelled, "candidates": self.table}


def candidates(
    ratios: Sequence[float],
    quantiles: Sequence[float | None] = (None,),
    augment_options: Sequence[bool] = (False,),
) -> list[Candidate]:
    """The grid, always including the "nothing" candidate (ratio 0, no augmentation)."""
    if any(not float(r) >= 0 for r in ratios):
        raise ConfigError(f"tune.ratios must all be >= 0, got {list(ratios)}")
    grid = {Candidate(0.0, None, False)}
    for r, q, a in itertools.product(ratios, quantiles, augment_options):
        grid.add(Candidate(float(r), None if float(r) == 0 else q, bool(a)))
    return sorted(grid, key=Candidate.complexity)


def tune_mix(
    labelled: ImageSet,
    synthetic: SyntheticData | None,
    *,
    ratios: Sequence[float] = (0.0, 0.5, 1.0, 2.0),
    quantiles: Sequence[float | None] = (None,),
    quantile_column: str | None = None,
    augment: Augment | None = None,
    augment_options: Sequence[bool] | None = None,
    train_cfg: TrainConfig | None = None,
    mix_options: Mapping[str, Any] | None = None,
    k: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> TuneResult:
    """Score every candidate by stratified k-fold CV on `labelled`; return the best and the table.

    Args:
        ratios: synthetic:real ratios to try (0 is always added).
        quantiles: filter quantiles of `quantile_column` to try (None = no filter).
        augment: the online augmenter; `augment_options` defaults to (False, True) with one.
        mix_options: further fixed `MixedBatchSampler` options (balance_classes, schedule,
            batches_per_epoch) and `weight_column` (draw synthetic samples by that score).
    """
    if synthetic is None or len(synthetic) == 0:
        ratios = [0.0]
    if any(q is not None for q in quantiles) and quantile_column is None:
        raise ConfigError("tune.quantiles needs tune.quantile_column (a manifest score column)")
    if quantile_column is not None and synthetic is not None:
        synthetic.column(quantile_column)  # unknown or empty column: fail before any training
    options = augment_options if augment_options is not None else ((False, True) if augment else (False,))
    if any(options) and augment is None:
        raise ConfigError("tune.augment_options includes true but no online augmenter was given")
    grid = candidates(ratios, quantiles, options)
    train_cfg = train_cfg or TrainConfig()
    folds = stratified_folds(labelled.labels, k, seed)
    scores = np.zeros((len(grid), k))
    bar = tqdm(total=len(grid) * k, desc="tune mix", unit="fit", disable=not progress)
    for f, val in enumerate(folds):
        train_idx = np.setdiff1d(np.arange(len(labelled)), val)
        train, held = labelled.subset(train_idx), labelled.subset(val)
        fold_syn = None if synthetic is None else synthetic.without_parents(held.ids)
        for c, cand in enumerate(grid):
            scores[c, f] = _score(cand, train, held, fold_syn, quantile_column, augment, train_cfg, mix_options, seed * 1000 + f)
            bar.update()
    bar.close()
    return _summarise(grid, scores, k, len(labelled))


def _score(cand: Candidate, train: ImageSet, held: ImageSet, syn: SyntheticData | None, column: str | None,
           augment: Augment | None, cfg: TrainConfig, mix_options: Mapping[str, Any] | None, seed: int) -> float:
    mix = dict(mix_options or {})
    weight_column = mix.pop("weight_column", None)
    data = None
    if cand.ratio > 0 and syn is not None and len(syn):
        if cand.quantile is not None:
            syn = syn.filtered(column, quantile=cand.quantile)
        data = syn.images
        mix["ratio"] = cand.ratio
        if weight_column:
            mix["synthetic_weights"] = syn.column(weight_column)
    else:
        mix.pop("schedule", None)  # nothing synthetic to schedule
        mix["ratio"] = 0.0
    model = train_classifier(train, cfg, seed=seed, augment=augment if cand.augment else None, synthetic=data, mix=mix)
    return accuracy(model, held)


def _summarise(grid: list[Candidate], scores: np.ndarray, k: int, n: int) -> TuneResult:
    means = scores.mean(1)
    best_mean = means.max()
    # Ties (within float noise) go to the simplest candidate: grid is sorted by complexity.
    best = int(np.flatnonzero(means >= best_mean - 1e-9)[0])
    table = [
        {**asdict(c), "cv_accuracy": float(means[i]), "cv_std": float(scores[i].std()), "folds": scores[i].tolist()}
        for i, c in enumerate(grid)
    ]
    for row in table:
        log.info("mix %s", row)
    return TuneResult(grid[best], float(means[best]), table, k, n)


def cv_score(
    labelled: ImageSet,
    synthetic: SyntheticData | None,
    candidate: Candidate,
    *,
    quantile_column: str | None = None,
    augment: Augment | None = None,
    train_cfg: TrainConfig | None = None,
    mix_options: Mapping[str, Any] | None = None,
    k: int = 3,
    seed: int = 0,
) -> float:
    """Mean k-fold CV accuracy of one candidate: the objective a Hydra sweep maximises."""
    if candidate.ratio < 0:
        raise ConfigError(f"mixer.ratio must be >= 0, got {candidate.ratio}")
    if candidate.augment and augment is None:
        raise ConfigError("online augmentation requested but no augmenter given")
    cfg = train_cfg or TrainConfig()
    folds = stratified_folds(labelled.labels, k, seed)
    scores = []
    for f, val in enumerate(folds):
        train_idx = np.setdiff1d(np.arange(len(labelled)), val)
        held = labelled.subset(val)
        syn = None if synthetic is None else synthetic.without_parents(held.ids)
        scores.append(_score(candidate, labelled.subset(train_idx), held, syn, quantile_column, augment, cfg, mix_options, seed * 1000 + f))
    return float(np.mean(scores))
