"""Memorisation control: novelty of samples measured during training.

novelty = median NN distance (sample -> labelled training images)
          / median leave-one-out NN distance (training image -> the other training images).

The denominator stands in for "held-out real image -> training set" without spending any
labelled image on a held-out split and without touching the unlabelled pool or the test
set: each training image is held out from the others in turn. 1.0 means samples sit as far
from the training set as fresh real images would; a model that copies its training images
drifts toward 0. (With n training images the leave-one-out reference uses n-1 neighbours,
so it slightly overstates the held-out distance: the measure is mildly conservative.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from synth.neighbors import knn_distances
from synth.seeding import sample_seeds


def leave_one_out_reference(train: np.ndarray) -> float:
    """Median distance from each training image to its nearest *other* training image."""
    return float(np.median(knn_distances(train, train, exclude_self=True)[:, 0]))


def novelty_against(samples: np.ndarray, train: np.ndarray, reference: float) -> float:
    return float(np.median(knn_distances(samples, train)[:, 0])) / max(reference, 1e-8)


@dataclass
class NoveltyMonitor:
    """Samples a few images per class with fixed seeds and scores their novelty.

    `sampler(labels, seeds) -> uint8 images` draws from the current EMA model; the same
    seeds at every evaluation make the curve comparable across steps.
    """

    train_images: np.ndarray  # uint8 (N, H, W, C): the labelled images
    n_classes: int
    per_class: int
    seed: int
    reference: float = field(init=False)

    def __post_init__(self) -> None:
        self.reference = leave_one_out_reference(self.train_images)
        self.labels = np.tile(np.arange(self.n_classes, dtype=np.int64), self.per_class)
        self.seeds = sample_seeds(self.seed, np.arange(len(self.labels)))

    def evaluate(self, sampler: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[float, np.ndarray]:
        images = sampler(self.labels, self.seeds)
        return novelty_against(images, self.train_images, self.reference), images
