"""Nearest-neighbour distances, chunked so N x M never sits in memory at once.

Shared by memorisation control (diffusion), collapse detection (GAN) and per-sample
scoring. Inputs are feature matrices (N, D) — raw pixels flattened, or extractor features.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_matrix(x: np.ndarray) -> torch.Tensor:
    x = np.asarray(x)
    return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32, copy=False))


def knn_distances(
    queries: np.ndarray, refs: np.ndarray, k: int = 1, exclude_self: bool = False, chunk: int = 2048
) -> np.ndarray:
    """Euclidean distances (N, k) from each query to its k nearest refs, ascending.

    `exclude_self` drops the zero self-match when queries and refs are the same set.
    """
    q, r = _as_matrix(queries), _as_matrix(refs)
    kk = k + int(exclude_self)
    if len(r) < kk:
        raise ValueError(f"need at least {kk} reference points for k={k}, got {len(r)}")
    out = []
    for start in range(0, len(q), chunk):
        d = torch.cdist(q[start : start + chunk], r)
        if exclude_self:
            rows = torch.arange(len(d))
            d[rows, rows + start] = float("inf")
        out.append(torch.topk(d, k, dim=1, largest=False).values)
    return torch.cat(out).numpy() if out else np.zeros((0, k), np.float32)


def novelty_ratio(samples: np.ndarray, train: np.ndarray, heldout: np.ndarray) -> float:
    """How far samples sit from their nearest training image, relative to fresh real images.

    median NN distance(sample -> train) / median NN distance(held-out real -> train).
    1.0: as novel as new real images; near 0: copies of training images.
    """
    ref = float(np.median(knn_distances(heldout, train)[:, 0]))
    return float(np.median(knn_distances(samples, train)[:, 0])) / max(ref, 1e-8)


def within_class_diversity(images: np.ndarray, labels: np.ndarray) -> float:
    """Mean pairwise distance between images of the same class, averaged over classes.

    Divide a generator's value by the real data's to get a collapse measure (1.0 = as
    diverse as real; near 0 = one image per class).
    """
    flat = _as_matrix(images)
    values = []
    for c in np.unique(labels):
        x = flat[torch.from_numpy(labels == c)]
        if len(x) < 2:
            continue
        d = torch.cdist(x, x)
        values.append(float(d.sum() / (len(x) * (len(x) - 1))))
    return float(np.mean(values)) if values else 0.0
