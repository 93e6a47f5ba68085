"""Seeded, stratified splits: a fixed test set, a training pool, and a labelled budget.

The test set depends only on `split_seed` (never on the experiment seed) so every arm and
seed of a benchmark is scored on the same images. The labelled budget is drawn from the
pool with the experiment seed; the rest of the pool is the *unlabelled* pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.data.imageset import ImageSet
from synth.errors import ConfigError, DataError
from synth.seeding import rng_for

_SPLIT_STREAM = 1
_BUDGET_STREAM = 2


@dataclass(frozen=True)
class Splits:
    """What one experiment may use: labelled images, unlabelled pool, and the held-out test set."""

    labelled: ImageSet
    unlabelled: ImageSet
    test: ImageSet

    @property
    def pool(self) -> ImageSet:
        """Labelled + unlabelled (with the unlabelled images' labels hidden)."""
        return self.labelled.concat(self.unlabelled)


def stratified_split(data: ImageSet, test_size: int | float, split_seed: int) -> tuple[ImageSet, ImageSet]:
    """Split into (pool, test) with each class represented in proportion."""
    n = len(data)
    n_test = int(round(test_size * n)) if isinstance(test_size, float) and test_size < 1 else int(test_size)
    if not 0 < n_test < n:
        raise ConfigError(f"data.test_size={test_size} leaves no test or no training images (dataset has {n})")
    rng = rng_for(split_seed, _SPLIT_STREAM)
    test_idx: list[np.ndarray] = []
    counts = data.class_counts()
    # Largest-remainder allocation keeps the test set exactly n_test and stratified.
    quota = counts * n_test / n
    alloc = np.floor(quota).astype(int)
    alloc[np.argsort(-(quota - alloc), kind="stable")[: n_test - alloc.sum()]] += 1
    for c in range(data.n_classes):
        members = np.flatnonzero(data.labels == c)
        test_idx.append(rng.permutation(members)[: alloc[c]])
    test_mask = np.zeros(n, dtype=bool)
    test_mask[np.concatenate(test_idx)] = True
    return data.subset(np.flatnonzero(~test_mask)), data.subset(np.flatnonzero(test_mask))


def draw_budget(
    pool: ImageSet,
    n_per_class: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
) -> tuple[ImageSet, ImageSet]:
    """Draw the labelled budget from the pool; return (labelled, unlabelled-with-labels-hidden).

    `n_per_class` takes that many images of every class; `fraction` takes that share of each
    class (at least one). Neither: the whole pool is labelled.
    """
    if n_per_class is not None and fraction is not None:
        raise ConfigError("set budget.n_per_class or budget.fraction, not both")
    if n_per_class is not None and n_per_class <= 0:
        raise ConfigError(f"budget.n_per_class must be > 0, got {n_per_class}")
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"budget.fraction must be in (0, 1], got {fraction}")
    rng = rng_for(seed, _BUDGET_STREAM)
    chosen: list[np.ndarray] = []
    for c, name in enumerate(pool.class_names):
        members = np.flatnonzero(pool.labels == c)
        if n_per_class is None and fraction is None:
            take = len(members)
        elif n_per_class is not None:
            take = n_per_class
        else:
            take = max(1, int(round(fraction * len(members))))
        if take > len(members):
            raise DataError(
                f"class {name!r} has {len(members)} images in the training pool but the budget asks "
                f"for {take}; lower budget.n_per_class"
            )
        chosen.append(np.sort(rng.permutation(members)[:take]))
    mask = np.zeros(len(pool), dtype=bool)
    mask[np.concatenate(chosen)] = True
    return pool.subset(np.flatnonzero(mask)), pool.subset(np.flatnonzero(~mask)).without_labels()


def make_splits(
    data: ImageSet,
    test: ImageSet | None,
    *,
    test_size: int | float,
    split_seed: int,
    n_per_class: int | None,
    fraction: float | None,
    seed: int,
) -> Splits:
    """Full split: (given or stratified) test set, then the labelled budget from the pool."""
    if test is None:
        pool, test = stratified_split(data, test_size, split_seed)
    else:
        pool = data
    labelled, unlabelled = draw_budget(pool, n_per_class, fraction, seed)
    return Splits(labelled=labelled, unlabelled=unlabelled, test=test)
