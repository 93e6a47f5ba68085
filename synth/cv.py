"""Cross-validation *inside* the labelled budget: the only honest way to tune anything.

Every choice synth makes for a user (mixing ratio, filter quantile, recipe) is scored on
folds of the labelled images alone. The test set never enters; validation images count
against the label budget because they are labelled images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.seeding import rng_for

_CV_STREAM = 3


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Split indices into k folds with classes spread evenly (round-robin within each class).

    With fewer than k images in a class, that class is simply absent from some folds.
    """
    if k < 2:
        raise ConfigError(f"cross-validation needs k >= 2 folds, got {k}")
    if len(labels) < k:
        raise ConfigError(f"{len(labels)} labelled images cannot be split into {k} folds")
    rng = rng_for(seed, _CV_STREAM)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        for i, idx in enumerate(members):
            folds[(offset + i) % k].append(int(idx))
        offset += len(members)
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in folds]


def cross_validate(
    labelled: ImageSet,
    score_fn: Callable[[ImageSet, ImageSet, int], float],
    k: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """Scores of `score_fn(train_part, val_part, fold_seed)` over k stratified folds."""
    folds = stratified_folds(labelled.labels, k, seed)
    scores = []
    for i, val in enumerate(folds):
        train = np.setdiff1d(np.arange(len(labelled)), val)
        scores.append(score_fn(labelled.subset(train), labelled.subset(val), seed * 1000 + i))
    return np.asarray(scores, dtype=np.float64)
