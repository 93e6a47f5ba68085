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
from synth.neighbors import NeighbourPass, knn_distances, neighbour_pass
from synth.scoring.set_metrics import check_features, real_self_distances

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
        held_nn = None
        if heldout is not None and len(heldout):
            check_features(train, heldout, "held-out real")
            held_nn = knn_distances(heldout, train, k=1)[:, 0]
        return cls.from_neighbours(train, real_self_distances(train, k), held_nn, k)

    @classmethod
    def from_neighbours(
        cls, train: np.ndarray, real_self: np.ndarray, heldout_nn: np.ndarray | None, k: int = 3
    ) -> Reference:
        """Build from precomputed sweeps: `real_self` (train -> train k-NN distances, self
        excluded, >= k columns) and `heldout_nn` (held-out -> nearest train distance, or None)."""
        k = min(k, real_self.shape[1])
        ref = heldout_nn if heldout_nn is not None and len(heldout_nn) else real_self[:, 0]
        scale = float(np.median(ref))
        return cls(train, real_self[:, k - 1], max(scale, 1e-8), ref, k)

    def realism_radii(self) -> np.ndarray:
        """Radii of the realism balls: the half of the training points with the smallest
        k-NN radii (robust to outliers); 0 takes a point out (`neighbour_pass` radii)."""
        return np.where(self.radii <= np.median(self.radii), self.radii, 0.0).astype(np.float32)


    def sweep(self, features: np.ndarray) -> NeighbourPass:
        """The one features -> train sweep both realism and novelty read."""
        return neighbour_pass(features, self.train, 1, ratio_radii={"realism": self.realism_radii()})


def realism(to_train: NeighbourPass) -> np.ndarray:
    """From a features -> train sweep made with ratio_radii={"realism": ref.realism_radii()}."""
    return np.minimum(to_train.ratio["realism"].astype(np.float64), REALISM_CAP)  # exact copies sit at distance 0


def novelty(to_train: NeighbourPass, ref: Reference) -> np.ndarray:
    return to_train.dist[:, 0].astype(np.float64) / ref.nn_scale


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
    to_train: NeighbourPass | None = None,
) -> dict[str, np.ndarray]:
    """All per-sample scores plus the boolean `copy` flag, as arrays aligned with `features`.

    `to_train`: the features -> train sweep if already made (see `realism`), to reuse it.
    """
    check_features(ref.train, features)
    to_train = to_train if to_train is not None else ref.sweep(features)
    out = {"realism": realism(to_train), "novelty": novelty(to_train, ref)}
    cons = label_consistency(proba, labels) if proba is not None and labels is not None else None
    if cons is not None:
        out["label_consistency"] = cons
    out["gap"] = gap_score(out["realism"], out["novelty"], cons, novelty_target)
    out["copy"] = out["novelty"] < copy_threshold
    return out
