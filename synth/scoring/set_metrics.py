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

Cost: every k-NN quantity of one (real, synthetic) pair comes from four chunked sweeps
(`Neighbourhood`: real-real, fake-fake, fake->real, real->fake), shared by PRDC,
alpha/beta/authenticity and the per-sample realism/novelty; the real-real sweep is
shared with the real-vs-real baseline too. 10k vs 10k at 128 features: docs/scoring.md.

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
from synth.neighbors import NeighbourPass, knn_distances, neighbour_pass

#: KID subsets x subset size. torchmetrics' default is 100 x 1000; 20 x 1000 keeps the
#: mean's standard error small next to set-to-set differences (the per-subset spread is
#: ~1/sqrt(20) of one subset's), at a fifth of the kernel cost. Pass `subsets=` for more.
KID_SUBSETS = 20

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


def kernel_distance(
    real: np.ndarray, fake: np.ndarray, seed: int = 0, subsets: int = KID_SUBSETS
) -> tuple[float, int]:
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
    if len(queries) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    p = neighbour_pass(queries, centers, 1, radii={"r": radii}, ratio_radii={"r": radii}, chunk=chunk)
    return p.inside["r"], p.ratio["r"]


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest other point of the same set."""
    k = min(k, len(x) - 1)
    if k < 1:
        raise DataError(f"need at least 2 points for k-NN radii, got {len(x)}")
    return knn_distances(x, x, k=k, exclude_self=True)[:, -1]


@dataclass
class Neighbourhood:
    """The k-NN quantities of one (real, fake) pair, from four sweeps (see module docstring).

    `real_self` (real -> real, self excluded) depends on the real set only: pass it in to
    share it between a synthetic set and its real-vs-real baseline.
    """

    k: int  # the PRDC k actually used (<= len - 1 of both sets)
    real_self: np.ndarray  # (N_real, >= k) NN distances within real, ascending
    fake_radii: np.ndarray  # (N_fake,) k-th NN distance within fake
    f2r: NeighbourPass  # fake -> real: top-1, inside["prdc"] (real balls), ratio["realism"] if asked
    r2f: NeighbourPass  # real -> fake: top-1, inside["prdc"] (fake balls)

    @property
    def real_radii(self) -> np.ndarray:
        return self.real_self[:, self.k - 1]


def real_self_distances(real: np.ndarray, k: int) -> np.ndarray:
    """Distances from each real point to its k nearest other real points (one sweep)."""
    k = min(k, len(real) - 1)
    if k < 1:
        raise DataError(f"need at least 2 points for k-NN radii, got {len(real)}")
    return knn_distances(real, real, k=k, exclude_self=True)


def neighbourhood(
    real: np.ndarray,
    fake: np.ndarray,
    k: int = 5,
    real_self: np.ndarray | None = None,
    realism_radii: np.ndarray | None = None,
) -> Neighbourhood:
    """All k-NN statistics of (real, fake); `realism_radii` (one per real point, 0 = unused)
    folds the per-sample realism ratio into the fake -> real sweep."""
    k = min(k, len(real) - 1, len(fake) - 1)
    if k < 1:
        raise DataError(f"need at least 2 real and 2 synthetic points for k-NN radii, got {len(real)}, {len(fake)}")
    if real_self is None or real_self.shape[1] < k:
        real_self = real_self_distances(real, k)
    fake_radii = knn_distances(fake, fake, k=k, exclude_self=True)[:, k - 1]
    ratio = {"realism": realism_radii} if realism_radii is not None else None
    f2r = neighbour_pass(fake, real, 1, radii={"prdc": real_self[:, k - 1]}, ratio_radii=ratio)
    r2f = neighbour_pass(real, fake, 1, radii={"prdc": fake_radii})
    return Neighbourhood(k, real_self, fake_radii, f2r, r2f)


def prdc_from(nb: Neighbourhood) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) with k-NN balls."""
    return {
        "precision": float((nb.f2r.inside["prdc"] > 0).mean()),
        "recall": float((nb.r2f.inside["prdc"] > 0).mean()),
        "density": float(nb.f2r.inside["prdc"].mean() / nb.k),
        "coverage": float((nb.r2f.dist[:, 0] <= nb.real_radii).mean()),
    }


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) with k-NN balls."""
    return prdc_from(neighbourhood(real, fake, k))


def alpha_beta_from(real: np.ndarray, fake: np.ndarray, nb: Neighbourhood, n_steps: int = 30) -> dict[str, float]:
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

    real_nn = nb.real_self[:, 0]
    d_rf, idx_rf = nb.r2f.dist[:, 0], nb.r2f.index[:, 0]
    closest_fake_d = np.linalg.norm(fake[idx_rf] - fake.mean(0), axis=1)
    fake_radii = np.quantile(closest_fake_d, alphas)
    beta_curve = np.array([((d_rf <= real_nn) & (closest_fake_d <= r)).mean() for r in fake_radii])

    d_fr, idx_fr = nb.f2r.dist[:, 0], nb.f2r.index[:, 0]
    authentic = d_fr > real_nn[idx_fr]
    area = alphas.sum()
    return {
        "alpha_precision": float(1 - np.abs(alphas - alpha_curve).sum() / area),
        "beta_recall": float(1 - np.abs(alphas - beta_curve).sum() / area),
        "authenticity": float(authentic.mean()),
    }


def alpha_beta_authenticity(real: np.ndarray, fake: np.ndarray, n_steps: int = 30) -> dict[str, float]:
    """alpha-precision, beta-recall, authenticity of `fake` against `real` (see alpha_beta_from)."""
    return alpha_beta_from(real, fake, neighbourhood(real, fake, 1), n_steps)


def nearest(queries: np.ndarray, refs: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Distance to and index of each query's nearest ref (chunked over queries)."""
    p = neighbour_pass(queries, refs, 1, chunk=chunk)
    return p.dist[:, 0], p.index[:, 0]


def c2st_auc(real: np.ndarray, fake: np.ndarray, seed: int = 0, max_per_side: int = 5000) -> float:
    """Classifier two-sample test: 5-fold cross-validated ROC AUC of a linear classifier, real vs fake.

    Balanced by subsampling both sides to the same size; 0.5 = indistinguishable. The
    classifier is shrinkage LDA on standardised features: linear like logistic regression
    (same test power against mean/covariance shifts in feature space) but closed-form, so
    it costs ~0.1 s at 5k + 5k x 128 where iterative logistic regression took ~20 s.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
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
    clf = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
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
    real: np.ndarray, fake: np.ndarray, extractor: str, k: int = 5, seed: int = 0, skip: tuple[str, ...] = (),
    nb: Neighbourhood | None = None,
) -> dict[str, float]:
    """All set-level metrics of `fake` against `real`, named with the extractor (FD_<extractor>).

    `nb`: the pair's precomputed `neighbourhood` (e.g. shared with per-sample scoring).
    """
    check_features(real, fake)
    if nb is None and not {"prdc", "alpha"} <= set(skip):
        nb = neighbourhood(real, fake, k)
    out: dict[str, float] = {}
    if "fd" not in skip:
        out[f"FD_{extractor}"] = frechet_distance(real, fake)
    if "kid" not in skip:
        out[f"KID_{extractor}"] = kernel_distance(real, fake, seed)[0]
    if "prdc" not in skip:
        out.update(prdc_from(nb))
    if "alpha" not in skip:
        out.update(alpha_beta_from(real, fake, nb))
    if "c2st" not in skip:
        out["c2st_auc"] = c2st_auc(real, fake, seed)
    return out


def evaluate_set(
    real: np.ndarray, fake: np.ndarray, heldout: np.ndarray | None, extractor: str, k: int = 5, seed: int = 0,
    skip: tuple[str, ...] = (), nb_fake: Neighbourhood | None = None, nb_heldout: Neighbourhood | None = None,
) -> SetMetrics:
    """Metrics of `fake` vs `real`, plus the same metrics for held-out real vs `real` at the same n.

    `nb_fake` / `nb_heldout`: precomputed neighbourhoods of (real, fake) and (real, heldout);
    the held-out one is used only when the whole held-out set is the baseline.
    """
    check_features(real, fake)
    result = SetMetrics(extractor, len(real), len(fake), 0)
    result.values = compute_set_metrics(real, fake, extractor, k, seed, skip, nb_fake)
    result.warnings = small_n_warnings(len(real), len(fake), real.shape[1], k)
    if heldout is not None and len(heldout) >= 2:
        check_features(real, heldout, "held-out real")
        n = min(len(fake), len(heldout))
        if n < len(fake):
            result.warnings.append(f"real-vs-real baseline uses {n} held-out images, fewer than the {len(fake)} "
                                   "synthetic ones: the baseline is biased upwards for FD/KID")
        if n == len(heldout):  # all of it: metrics do not depend on order, keep the shared neighbourhood
            base, nb_base = heldout, nb_heldout
        else:
            base = heldout[np.random.default_rng(seed).permutation(len(heldout))[:n]]
            nb_base = None if nb_fake is None else neighbourhood(real, base, k, nb_fake.real_self)
        result.baseline = compute_set_metrics(real, base, extractor, k, seed, skip, nb_base)
        result.n_baseline = n
    else:
        result.warnings.append("no held-out real images: no real-vs-real baseline")
    return result
