"""Keep or reject synthetic samples by a score; generate until enough are accepted.

Filtering never deletes: callers record the boolean mask in the manifest (`accepted`,
`status`), so rejected samples stay listed and a different threshold can be applied later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from generators.base import Samples
from synth.errors import ConfigError, DataError

log = logging.getLogger("synth.score")


def accept_mask(
    scores: Mapping[str, np.ndarray],
    column: str,
    *,
    threshold: float | None = None,
    quantile: float | None = None,
    keep: str = "above",
) -> np.ndarray:
    """Boolean mask of accepted samples by a threshold or a quantile on one score.

    Args:
        column: a score name (e.g. "gap"; a "score_" prefix is accepted too).
        threshold: accept samples with score >= threshold (keep="above") or <= (keep="below").
        quantile: accept the best `quantile` share instead, e.g. 0.8 keeps the top 80 %.
        keep: "above" when higher is better (all synth scores), "below" otherwise.
    NaN scores are rejected.
    """
    name = column.removeprefix("score_") if column.removeprefix("score_") in scores else column
    if name not in scores:
        raise ConfigError(f"unknown score column {column!r} for filter.column; available: {', '.join(sorted(scores))}")
    if (threshold is None) == (quantile is None):
        raise ConfigError("set exactly one of filter.threshold or filter.quantile")
    if keep not in ("above", "below"):
        raise ConfigError(f"filter.keep must be 'above' or 'below', got {keep!r}")
    values = np.asarray(scores[name], dtype=np.float64)
    if len(values) == 0:
        raise DataError("nothing to filter: the score column is empty")
    finite = np.isfinite(values)
    if quantile is not None:
        if not 0.0 < quantile <= 1.0:
            raise ConfigError(f"filter.quantile must be in (0, 1], got {quantile}")
        if not finite.any():
            return np.zeros(len(values), bool)
        q = 1.0 - quantile if keep == "above" else quantile
        threshold = float(np.quantile(values[finite], q))
    with np.errstate(invalid="ignore"):
        mask = values >= threshold if keep == "above" else values <= threshold
    return mask & finite


@dataclass
class AcceptanceResult:
    samples: Samples
    scores: dict[str, np.ndarray]
    generated: int
    accepted: int
    rounds: int

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.generated if self.generated else 0.0


def generate_until(
    sample: Callable[[int, int], Samples],
    score: Callable[[Samples], dict[str, np.ndarray]],
    accept: Callable[[dict[str, np.ndarray]], np.ndarray],
    n_accepted: int,
    *,
    batch_size: int = 256,
    max_generated: int | None = None,
) -> AcceptanceResult:
    """Draw batches from `sample(start_index, n)` until `n_accepted` samples pass `accept`.

    Consecutive global start indices keep every sample's seed distinct and reproducible.
    The batch size adapts to the acceptance rate seen so far. Stops with a DataError once
    `max_generated` (default 20 x n_accepted) is exceeded, naming the rate, rather than
    looping forever on a filter nothing passes.
    """
    if n_accepted <= 0 or batch_size <= 0:
        raise ConfigError(f"n_accepted and batch_size must be > 0, got {n_accepted}, {batch_size}")
    limit = max_generated or 20 * n_accepted
    kept: list[Samples] = []
    kept_scores: list[dict[str, np.ndarray]] = []
    generated = accepted = rounds = 0
    while accepted < n_accepted:
        if generated >= limit:
            raise DataError(
                f"only {accepted} of {n_accepted} samples accepted after generating {generated} "
                f"(acceptance rate {accepted / generated:.1%}); loosen the filter or raise max_generated"
            )
        rate = accepted / generated if generated else 1.0
        n = int(min(limit - generated, max(batch_size, (n_accepted - accepted) / max(rate, 0.05) * 1.1)))
        batch = sample(generated, n)
        s = score(batch)
        mask = accept(s)
        generated, rounds = generated + len(batch), rounds + 1
        idx = np.flatnonzero(mask)[: n_accepted - accepted]
        accepted += len(idx)
        kept.append(Samples(batch.images[idx], batch.labels[idx], batch.parent_ids[idx]))
        kept_scores.append({k: np.asarray(v)[idx] for k, v in s.items()})
        log.info("generate_until: round %d, %d/%d accepted, acceptance rate %.1f%%", rounds, accepted, n_accepted,
                 100 * accepted / generated)
    samples = Samples(
        np.concatenate([k.images for k in kept]), np.concatenate([k.labels for k in kept]),
        np.concatenate([k.parent_ids for k in kept]),
    )
    scores = {k: np.concatenate([s[k] for s in kept_scores]) for k in kept_scores[0]}
    return AcceptanceResult(samples, scores, generated, accepted, rounds)
