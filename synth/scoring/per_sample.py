"""Per-sample scores: realism, novelty (copies flagged), label consistency, combined gap score.

All distances are in the extractor's feature space and are measured against the
*training* reference (the labelled images a generator could have memorised).

- realism (Kynkäänniemi et al., NeurIPS 2019): max_i r_i / ||x - phi_i|| over real points
  phi_i with k-NN radius r_i (the half with the smallest radii, which makes it robust to
  outliers). >= 1: inside the real manifold estimate; near 0: far from every real image.
- novelty: distance to the nearest training image divided by the median distance from a
  held-out real image to its nearest training image. 1.0: as new as a fresh real image;
  0: an exact copy. Samples with novelty < `copy_threshold` are flagged as copies.
- label_consistency: the probability a classifier trained on the labelled set assigns to
  the sample's label.
- gap (the combined score, higher = more useful, in [-1, 1]):

      gap = (2 * label_consistency - 1) * min(1, novelty / novelty_target) * min(1, realism)

  A product, because each factor alone is a veto: a perfect-looking copy adds nothing
  (novelty ~ 0) and an image off the real manifold teaches the wrong features (realism
  ~ 0). The label term is signed: a sample whose label the judge disputes does not merely
  add nothing, it pushes training the wrong way (its expected effect is P(right label) -
  P(wrong label)), so harmful sets score below useless ones. The novelty and realism
  factors saturate at "as good as fresh real data" (novelty 1 = a held-out real image;
  realism 1 = inside a real k-NN ball), so the score never rewards being closer to the
  training images than real images are (which fidelity-only scores such as FD do).
  Measured validity and its limits: docs/scoring.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.errors import DataError
from synth.neighbors import knn_distances
from synth.scoring.set_metrics import ball_stats, check_features, knn_radii

SCORES = ("realism", "novelty", "label_consistency", "gap")
#: Realism is a ratio r/d, unbounded for exact copies (d = 0); stored values are capped here.
REALISM_CAP = 100.0


@dataclass(frozen=True)
class Reference:
    """What per-sample scores compare against: training features, their k-NN radii, and the
    real-to-real nearest-neighbour scale that defines novelty 1.0."""

    train: np.ndarray
    radii: np.ndarray
    nn_scale: float
    nn_reference: np.ndarray  # real-to-real NN distances behind nn_scale
    k: int

    @classmethod
    def fit(cls, train: np.ndarray, heldout: np.ndarray | None = None, k: int = 3) -> Reference:
        """Held-out real -> train NN distances set the novelty scale; without held-out images,
        leave-one-out NN distances within the training set do (a slightly smaller scale)."""
        if len(train) < 2:
            raise DataError(f"the real reference needs at least 2 images, got {len(train)}")
        if heldout is not None and len(heldout):
            check_features(train, heldout, "held-out real")
            ref = knn_distances(heldout, train, k=1)[:, 0]
        else:
            ref = knn_distances(train, train, k=1, exclude_self=True)[:, 0]
        scale = float(np.median(ref))
        return cls(train, knn_radii(train, k), max(scale, 1e-8), ref, k)


def realism(features: np.ndarray, ref: Reference) -> np.ndarray:
    keep = ref.radii <= np.median(ref.radii)
    _, ratio = ball_stats(features, ref.train[keep], ref.radii[keep])
    return np.minimum(ratio.astype(np.float64), REALISM_CAP)  # exact copies sit at distance 0


def novelty(features: np.ndarray, ref: Reference) -> np.ndarray:
    return knn_distances(features, ref.train, k=1)[:, 0].astype(np.float64) / ref.nn_scale


def label_consistency(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if proba.ndim != 2 or len(proba) != len(labels):
        raise DataError(f"{len(labels)} labels but class probabilities of shape {proba.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= proba.shape[1]):
        raise DataError(f"labels must lie in [0, {proba.shape[1] - 1}] for label consistency")
    return proba[np.arange(len(labels)), labels].astype(np.float64)


def gap_score(
    realism_: np.ndarray, novelty_: np.ndarray, consistency: np.ndarray | None, novelty_target: float = 1.0
) -> np.ndarray:
    """The documented combined score (module docstring); consistency None counts as 1."""
    score = np.minimum(1.0, novelty_ / novelty_target) * np.minimum(1.0, realism_)
    return score * (2.0 * consistency - 1.0 if consistency is not None else 1.0)


def score_samples(
    features: np.ndarray,
    ref: Reference,
    labels: np.ndarray | None = None,
    proba: np.ndarray | None = None,
    copy_threshold: float = 0.1,
    novelty_target: float = 1.0,
) -> dict[str, np.ndarray]:
    """All per-sample scores plus the boolean `copy` flag, as arrays aligned with `features`."""
    check_features(ref.train, features)
    out = {"realism": realism(features, ref), "novelty": novelty(features, ref)}
    cons = label_consistency(proba, labels) if proba is not None and labels is not None else None
    if cons is not None:
        out["label_consistency"] = cons
    out["gap"] = gap_score(out["realism"], out["novelty"], cons, novelty_target)
    out["copy"] = out["novelty"] < copy_threshold
    return out
