"""Set-level distances between a real reference and a synthetic set, in feature space.

Every metric is reported next to a real-vs-real baseline (held-out real images against the
same reference, at the same sample count): a number means little on its own at small n,
and the baseline says what "as good as fresh real data" looks like here. Warnings say
when n is too small for a metric to mean anything.

Metrics (all on extractor features):
- FD_<extractor>, KID_<extractor>: torchmetrics' FID/KID with a custom `feature` module.
- precision / recall / density / coverage (Naeem et al., ICML 2020), k-NN balls.
- alpha_precision / beta_recall / authenticity (Alaa et al., ICML 2022), computed
  directly in the extractor's feature space (no extra one-class embedding is trained).
- c2st_auc: a classifier two-sample test; 0.5 = indistinguishable from real.

FD/KID reward memorisation (exact copies score best); read them with authenticity and
the per-sample novelty, never alone.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from synth.errors import DataError
from synth.neighbors import knn_distances

#: How each metric's ideal reads, for reports: value that means "like real data".
IDEAL = {
    "FD": ("lower", 0.0), "KID": ("lower", 0.0), "precision": ("higher", 1.0), "recall": ("higher", 1.0),
    "density": ("closer to 1", 1.0), "coverage": ("higher", 1.0), "alpha_precision": ("higher", 1.0),
    "beta_recall": ("higher", 1.0), "authenticity": ("higher", 1.0), "c2st_auc": ("closer to 0.5", 0.5),
}


class PrecomputedFeatures(nn.Module):
    """torchmetrics `feature` module for features computed (and cached) beforehand.

    torchmetrics calls `feature(imgs)` inside `update`; passing features through an
    identity keeps one extraction per dataset (cached on disk) instead of one per metric.
    `num_features` stops torchmetrics from probing with a 299x299 dummy image.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def check_features(real: np.ndarray, fake: np.ndarray, what: str = "synthetic") -> None:
    """Clear errors for empty sets and mismatched feature shapes."""
    if len(real) == 0:
        raise DataError("the real reference set is empty; check data/budget")
    if len(fake) == 0:
        raise DataError(f"the {what} set is empty: nothing to score")
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise DataError(
            f"feature shapes differ: real {real.shape} vs {what} {fake.shape}; score both with the same extractor "
            "(and the same image size/channels)"
        )


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=PrecomputedFeatures(real.shape[1]), reset_real_features=True)
    metric.update(torch.from_numpy(real.astype(np.float64)), real=True)
    metric.update(torch.from_numpy(fake.astype(np.float64)), real=False)
    return float(metric.compute())


def kernel_distance(real: np.ndarray, fake: np.ndarray, seed: int = 0, subsets: int = 50) -> tuple[float, int]:
    """KID (mean over subsets) and the subset size used (bounded by both set sizes)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = int(min(1000, len(real), len(fake)))
    if size < 2:
        return float("nan"), size
    with warnings.catch_warnings():  # "will save all extracted features": known, they are already in memory
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=PrecomputedFeatures(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(torch.from_numpy(real.astype(np.float64)), real=True)
    metric.update(torch.from_numpy(fake.astype(np.float64)), real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws subsets from torch's global RNG
        torch.manual_seed(seed)
        mean, _ = metric.compute()
    return float(mean), size


def ball_stats(queries: np.ndarray, centers: np.ndarray, radii: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each query: how many balls (center_i, radius_i) contain it, and max_i radius_i / d_i.

    Chunked over queries so the (N, M) distance matrix never sits in memory at once.
    """
    c = torch.from_numpy(np.ascontiguousarray(centers, dtype=np.float32))
    r = torch.from_numpy(np.ascontiguousarray(radii, dtype=np.float32))
    counts, ratios = [], []
    for start in range(0, len(queries), chunk):
        q = torch.from_numpy(np.ascontiguousarray(queries[start : start + chunk], dtype=np.float32))
        d = torch.cdist(q, c)
        counts.append((d <= r).sum(1))
        ratios.append((r / d.clamp_min(1e-12)).max(1).values)
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return torch.cat(counts).numpy(), torch.cat(ratios).numpy()


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest other point of the same set."""
    k = min(k, len(x) - 1)
    if k < 1:
        raise DataError(f"need at least 2 points for k-NN radii, got {len(x)}")
    return knn_distances(x, x, k=k, exclude_self=True)[:, -1]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) with k-NN balls."""
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    inside, _ = ball_stats(fake, real, r_real)
    recalled, _ = ball_stats(real, fake, r_fake)
    nearest_fake = knn_distances(real, fake, k=1)[:, 0]
    return {
        "precision": float((inside > 0).mean()),
        "recall": float((recalled > 0).mean()),
        "density": float(inside.mean() / min(k, len(real) - 1)),
        "coverage": float((nearest_fake <= r_real).mean()),
    }


def alpha_beta_authenticity(real: np.ndarray, fake: np.ndarray, n_steps: int = 30) -> dict[str, float]:
    """alpha-precision, beta-recall and authenticity (Alaa et al., ICML 2022).

    As in the reference implementation (synthcity), alpha-supports are balls around the
    real features' mean holding the alpha-quantile of real points; the integrated scores
    are 1 - normalised area between each curve and the diagonal. Authenticity follows the
    paper: a synthetic sample is authentic when it lies farther from its nearest real
    image than that real image lies from its own nearest real neighbour.
    """
    alphas = np.linspace(0, 1, n_steps)
    center = real.mean(0)
    radii = np.quantile(np.linalg.norm(real - center, axis=1), alphas)
    fake_to_center = np.linalg.norm(fake - center, axis=1)
    alpha_curve = np.array([(fake_to_center <= r).mean() for r in radii])

    real_nn = knn_distances(real, real, k=1, exclude_self=True)[:, 0]
    fake_center = fake.mean(0)
    d_rf, idx_rf = nearest(real, fake)
    closest_fake_d = np.linalg.norm(fake[idx_rf] - fake_center, axis=1)
    fake_radii = np.quantile(closest_fake_d, alphas)
    beta_curve = np.array([((d_rf <= real_nn) & (closest_fake_d <= r)).mean() for r in fake_radii])

    d_fr, idx_fr = nearest(fake, real)
    authentic = d_fr > real_nn[idx_fr]
    area = alphas.sum()
    return {
        "alpha_precision": float(1 - np.abs(alphas - alpha_curve).sum() / area),
        "beta_recall": float(1 - np.abs(alphas - beta_curve).sum() / area),
        "authenticity": float(authentic.mean()),
    }


def nearest(queries: np.ndarray, refs: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Distance to and index of each query's nearest ref (chunked over queries)."""
    r = torch.from_numpy(np.ascontiguousarray(refs, dtype=np.float32))
    dists, idx = [], []
    for s in range(0, len(queries), chunk):
        d = torch.cdist(torch.from_numpy(np.ascontiguousarray(queries[s : s + chunk], dtype=np.float32)), r)
        best = d.min(1)
        dists.append(best.values)
        idx.append(best.indices)
    if not dists:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    return torch.cat(dists).numpy(), torch.cat(idx).numpy()


def c2st_auc(real: np.ndarray, fake: np.ndarray, seed: int = 0, max_per_side: int = 5000) -> float:
    """Classifier two-sample test: cross-validated ROC AUC of logistic regression real vs fake.

    Balanced by subsampling both sides to the same size; 0.5 = indistinguishable.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake), max_per_side)
    x = np.concatenate([real[rng.permutation(len(real))[:n]], fake[rng.permutation(len(fake))[:n]]])
    y = np.r_[np.zeros(n), np.ones(n)]
    folds = min(5, n)
    if folds < 2:
        return float("nan")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=1.0))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


@dataclass
class SetMetrics:
    """Metric values for one synthetic set, the real-vs-real baseline, and warnings."""

    extractor: str
    n_real: int
    n_synthetic: int
    n_baseline: int
    values: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[dict]:
        out = []
        for name, value in self.values.items():
            base = name.split("_" + self.extractor)[0]
            better, ideal = IDEAL.get(base, ("", math.nan))
            out.append({"metric": name, "value": value, "real_vs_real": self.baseline.get(name, math.nan),
                        "ideal": ideal, "better": better})
        return out


def small_n_warnings(n_real: int, n_fake: int, dim: int, k: int) -> list[str]:
    """Where n is too small for a metric to be more than noise."""
    n = min(n_real, n_fake)
    w = []
    if n < 2 * dim:
        w.append(f"FD/KID: n={n} < 2 x num_features ({dim}): the covariance is rank-deficient and FD is strongly "
                 "biased by n; compare only with the real-vs-real baseline at the same n")
    if n < 100:
        w.append(f"KID/alpha/beta: n={n} < 100: subsets and quantile curves are coarse")
    if n < 10 * k:
        w.append(f"precision/recall/density/coverage: n={n} < 10 x k ({k}): k-NN balls cover most of the space")
    if n < 50:
        w.append(f"c2st_auc: n={n} < 50 per side: the AUC's standard error is above ~0.05")
    return w


def compute_set_metrics(
    real: np.ndarray, fake: np.ndarray, extractor: str, k: int = 5, seed: int = 0, skip: tuple[str, ...] = ()
) -> dict[str, float]:
    """All set-level metrics of `fake` against `real`, named with the extractor (FD_<extractor>)."""
    check_features(real, fake)
    out: dict[str, float] = {}
    if "fd" not in skip:
        out[f"FD_{extractor}"] = frechet_distance(real, fake)
    if "kid" not in skip:
        out[f"KID_{extractor}"] = kernel_distance(real, fake, seed)[0]
    if "prdc" not in skip:
        out.update(prdc(real, fake, k))
    if "alpha" not in skip:
        out.update(alpha_beta_authenticity(real, fake))
    if "c2st" not in skip:
        out["c2st_auc"] = c2st_auc(real, fake, seed)
    return out


def evaluate_set(
    real: np.ndarray, fake: np.ndarray, heldout: np.ndarray | None, extractor: str, k: int = 5, seed: int = 0,
    skip: tuple[str, ...] = (),
) -> SetMetrics:
    """Metrics of `fake` vs `real`, plus the same metrics for held-out real vs `real` at the same n."""
    check_features(real, fake)
    result = SetMetrics(extractor, len(real), len(fake), 0)
    result.values = compute_set_metrics(real, fake, extractor, k, seed, skip)
    result.warnings = small_n_warnings(len(real), len(fake), real.shape[1], k)
    if heldout is not None and len(heldout) >= 2:
        check_features(real, heldout, "held-out real")
        n = min(len(fake), len(heldout))
        if n < len(fake):
            result.warnings.append(f"real-vs-real baseline uses {n} held-out images, fewer than the {len(fake)} "
                                   "synthetic ones: the baseline is biased upwards for FD/KID")
        pick = np.random.default_rng(seed).permutation(len(heldout))[:n]
        result.baseline = compute_set_metrics(real, heldout[pick], extractor, k, seed, skip)
        result.n_baseline = n
    else:
        result.warnings.append("no held-out real images: no real-vs-real baseline")
    return result
