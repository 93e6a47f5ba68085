"""CV evidence for a lever: a recipe's per-fold metrics and the paired rule that adopts it.

Shared by the recipe search and the stack arm's after-AL decision (synth/bench/stack_cv.py),
so both adopt a lever by the same rule: the mean *paired* fold gain (same folds, same training
seeds) must exceed z standard errors and `min_gain`, and a probability metric's winner must not
lose accuracy beyond its own noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from torch import nn

from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.recipe.recipe import Recipe
from synth.regularisers import unsmooth
from synth.training import predict_proba

METRICS = ("brier", "brier_t", "log_loss", "accuracy")
#: temperatures `brier_t` chooses from: one decade each way, log-spaced (a grid, so the fit is deterministic)
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))


@dataclass
class Trial:
    """One recipe's CV evidence: per-fold validation accuracy, Brier score and log-loss."""

    recipe: Recipe
    stage: str
    scores: np.ndarray  # accuracy per fold (what a person reads)
    seconds: float
    complete: bool = True
    notes: list[str] = field(default_factory=list)
    brier: np.ndarray = field(default_factory=lambda: np.zeros(0))
    log_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: held-out predictions of every fold model, concatenated: top-class confidence and whether it was right
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0))
    correct: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: per fold: the fold model's held-out class probabilities (labels' scale) and the held-out labels
    held_proba: list[np.ndarray] = field(default_factory=list)
    held_labels: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.held_proba and not len(self.confidence):  # read off the predictions when not given
            self.confidence = np.concatenate([p.max(1) for p in self.held_proba])
            self.correct = np.concatenate([p.argmax(1) == y for p, y in zip(self.held_proba, self.held_labels, strict=True)])

    def values(self, metric: str) -> np.ndarray:
        """Per-fold values of `metric`, oriented so that higher is better."""
        if metric == "accuracy":
            return self.scores
        if metric == "brier":
            return -self.brier
        if metric == "log_loss":
            return -self.log_loss
        if metric == "brier_t":
            return -self._tempered_brier
        raise ConfigError(f"search.metric must be one of {METRICS}, got {metric!r}")

    @cached_property
    def _tempered_brier(self) -> np.ndarray:
        """`tempered_brier` of this trial, fitted once: every paired comparison of a stage reads it."""
        return tempered_brier(self.held_proba, self.held_labels)

    @property
    def mean(self) -> float:
        return float(self.scores.mean()) if len(self.scores) else float("nan")

    @property
    def se(self) -> float:
        return _se(self.scores)

    def to_dict(self, baseline: Trial | None = None, metric: str = "accuracy",
                test_train_ratio: float | None = None) -> dict[str, Any]:
        d = {"name": self.recipe.name, "stage": self.stage, "cv_mean": self.mean, "cv_se": self.se,
             "fold_scores": self.scores.tolist(), "fold_brier": self.brier.tolist(),
             "fold_log_loss": self.log_loss.tolist(), "seconds": round(self.seconds, 1), "complete": self.complete,
             "recipe": self.recipe.to_dict(), "notes": self.notes}
        if baseline is not None and len(self.scores):
            gain, se = paired_gain(self, baseline, "accuracy", test_train_ratio)
            d.update(gain_vs_nothing=gain, gain_se=se)
            if metric != "accuracy" and len(self.values(metric)):
                gain, se = paired_gain(self, baseline, metric, test_train_ratio)
                d.update({f"{metric}_gain_vs_nothing": gain, f"{metric}_gain_se": se})
        return d


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("inf")


def paired_gain(
    a: Trial, b: Trial, metric: str = "accuracy", test_train_ratio: float | None = None,
) -> tuple[float, float]:
    """Mean and standard error of a's fold-wise gain in `metric` over b (same folds, same seeds).

    A pruned trial is compared on the folds it ran. `test_train_ratio` (n_val / n_train) turns on
    the Nadeau-Bengio corrected SE, sqrt((1/J + n_val/n_train) * var): repeated k-fold reuses
    images across folds, so the plain SE over J overlapping folds would be too small.
    """
    va, vb = a.values(metric), b.values(metric)
    n = min(len(va), len(vb))
    d = va[:n] - vb[:n]
    if test_train_ratio is None or n < 2:
        return float(d.mean()) if n else float("nan"), _se(d)
    return float(d.mean()), float(np.sqrt((1.0 / n + test_train_ratio) * d.var(ddof=1)))


def beats(
    challenger: Trial, incumbent: Trial, min_gain: float, metric: str = "accuracy",
    test_train_ratio: float | None = None, z: float = 1.0,
) -> bool:
    """Adopt a challenger only when its paired gain in `metric` exceeds both CV noise (its SE) and
    `min_gain`, and (for a probability metric) its accuracy is not lower beyond its own noise."""
    if not (challenger.complete and incumbent.complete):
        return False
    gain, se = paired_gain(challenger, incumbent, metric, test_train_ratio)
    # strictly above, with a tolerance: with k=3 a win on one fold only ([x, 0, 0]) has mean == SE
    # exactly, and float rounding must not turn that tie into a lever
    if not gain > max(z * se, min_gain) + 1e-9:
        return False
    if metric == "accuracy":
        return True
    acc_gain, acc_se = paired_gain(challenger, incumbent, "accuracy", test_train_ratio)
    return acc_gain >= -(acc_se if np.isfinite(acc_se) else 0.0) - 1e-9


def no_harm(
    challenger: Trial, incumbent: Trial, metric: str = "accuracy", test_train_ratio: float | None = None,
    z: float = 1.0,
) -> bool:
    """The challenger's paired CV gain is not negative beyond z standard errors, in `metric` and in accuracy.

    Weaker than `beats` on purpose: used only where a second piece of evidence (the semi precision
    gate) says the lever should help and the folds are too small to show it.
    """
    if not (challenger.complete and incumbent.complete):
        return False
    for m in dict.fromkeys((metric, "accuracy")):
        gain, se = paired_gain(challenger, incumbent, m, test_train_ratio)
        if not gain >= -(z * se if np.isfinite(se) else 0.0) - 1e-9:
            return False
    return True


def fold_metrics(model: nn.Module, held: ImageSet) -> tuple[float, float, float]:
    """Validation accuracy, multi-class Brier score (sum over classes, in [0, 2]) and log-loss."""
    return proba_metrics(predict_proba(model, held.images), held.labels)


def held_out(model: nn.Module, held: ImageSet, smoothing: float = 0.0) -> tuple[tuple[float, float, float], np.ndarray]:
    """`fold_metrics` plus the held-out class probabilities they were computed from.

    `smoothing`: the label smoothing the model was trained with; its probabilities are mapped back
    to the labels' scale (`unsmooth`) before anything is scored.
    """
    proba = unsmooth(predict_proba(model, held.images), smoothing)
    return proba_metrics(proba, held.labels), proba


def proba_metrics(proba: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """`fold_metrics` from predicted probabilities already in hand (callers that also read them)."""
    p = proba.astype(np.float64)
    p_true = np.clip(p[np.arange(len(p)), labels], 1e-7, 1.0)
    return float((p.argmax(1) == labels).mean()), _brier(p, labels), float(-np.log(p_true).mean())


def temper(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities with their logits divided by `temperature` (p ** (1 / T), renormalised): argmax unchanged."""
    logp = np.log(np.clip(proba.astype(np.float64), 1e-12, 1.0)) / temperature
    logp -= logp.max(1, keepdims=True)
    q = np.exp(logp)
    return q / q.sum(1, keepdims=True)


def _brier(proba: np.ndarray, labels: np.ndarray) -> float:
    return float(((proba - np.eye(proba.shape[1])[labels]) ** 2).sum(1).mean())


def fit_temperature(proba: np.ndarray, labels: np.ndarray) -> float:
    """The grid temperature (`TEMPERATURES`) with the lowest Brier score on these predictions."""
    losses = [_brier(temper(proba, t), labels) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def tempered_brier(proba: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> np.ndarray:
    """Per-fold Brier score after a temperature fitted on the *other* folds' held-out predictions.

    Why: a lever that softens the targets (mixup, label smoothing) trains a model that is right as
    often but less sure, and the plain Brier score charges it for that as if it had lost evidence.
    Label smoothing has an exact inverse (`unsmooth`); mixup has none (its target depends on the
    drawn pair and weight). One temperature per recipe removes any such global over- or
    under-confidence, so what is left is how well the model separates right from wrong. Fitting it
    on the other folds (cross-fitting) keeps each fold's score on images its temperature never saw.
    One fold (a pruned trial) has no other folds to fit on and keeps temperature 1.
    """
    out = []
    for i, (p, y) in enumerate(zip(proba, labels, strict=True)):
        others = [j for j in range(len(proba)) if j != i]
        t = fit_temperature(np.concatenate([proba[j] for j in others]),
                            np.concatenate([labels[j] for j in others])) if others else 1.0
        out.append(_brier(temper(p, t), y))
    return np.asarray(out)


def wilson_lower(correct: int, n: int, z: float = 1.0) -> float:
    """Lower Wilson bound of a proportion: a precision from 20 kept images must not pass as 0.95."""
    if n <= 0:
        return 0.0
    phat = correct / n
    centre = phat + z * z / (2 * n)
    spread = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def confident_precision(confidence: np.ndarray, correct: np.ndarray, threshold: float, z: float = 1.0) -> dict[str, Any]:
    """How often held-out predictions at or above `threshold` confidence are right, with a Wilson lower bound.

    Why: consistency training and pseudo-labels treat exactly those predictions as labels, so
    their precision on labelled images the model did not see is direct evidence for the lever.
    """
    mask = np.asarray(confidence) >= threshold
    kept, right = int(mask.sum()), int(np.asarray(correct)[mask].sum())
    return {"threshold": float(threshold), "kept": kept, "correct": right,
            "precision": right / kept if kept else 0.0, "lower": wilson_lower(right, kept, z)}
