"""The stack arm's after-active-learning evidence: one set of fold models, three decisions.

Why one CV after AL: before AL the stack can only look at its random slice (3 labels per class
at n=5 on digits), where CV chose no augmentation on seeds whose final model then trailed
`active_aug` by 6 points, and its fold teachers were far weaker than the final one. After AL
every fold model also trains on the actively chosen labels (never validated on: they are the
hard cases), so the fold models are close to the final learner and teacher, while validation
stays on random slice images drawn like the pool and the test set. The same fold models give:

1. **Augmentation** (none or a preset): paired k-fold CV on the Brier score, "none" the
   incumbent, a preset adopted only beyond the fold noise (`synth.recipe.search.beats`).
2. **Pseudo-label precision** of the chosen policy's fold models, read at each confidence
   threshold (the teachers are exactly the gate's teachers: same folds, seeds and recipe).
3. **Pseudo-label benefit**: per fold, the fold model labels the pool and a student trains on
   the fold's labels + those pseudo-labels; the gate may open when the students beat their
   teachers on the held-out slice beyond the noise, even if 30 validated images are too few for
   the precision bound alone (24/24 correct is needed for a Wilson bound of 0.96, 23/24 gives 0.896).
4. **Consistency training** (`semi_benefit`): per fold, a student trained by `synth.semi` on the
   fold's labels + the pool; adopted when the students beat the chosen policy's fold models by
   the same paired rule (it helps on digits and hurts Fashion-MNIST at 20 labels per class).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from synth.cv import cross_validate
from synth.data.imageset import ImageSet
from synth.errors import DataError
from synth.recipe import AugPolicy, Recipe, Trial
from synth.recipe.evidence import beats, fold_metrics, paired_gain, proba_metrics
from synth.semi import SemiConfig, train_semi
from synth.training import TrainConfig, predict_proba, train_classifier

#: student(fold model, fold's training images, pool, fold seed) -> the student model
StudentFn = Callable[[nn.Module, ImageSet, ImageSet, int], nn.Module]


@dataclass
class FoldRun:
    """One policy's k fold models: per-fold metrics (a Trial) and the held-out predictions."""

    policy: AugPolicy
    trial: Trial
    conf: np.ndarray  # held-out top probability, folds concatenated
    correct: np.ndarray  # held-out prediction right?
    models: list[nn.Module] = field(default_factory=list)
    parts: list[tuple[ImageSet, ImageSet, int]] = field(default_factory=list)  # (train incl. picks, val, seed)


def fold_run(slice_: ImageSet, picks: ImageSet | None, policy: AugPolicy, train: TrainConfig, k: int,
             seed: int) -> FoldRun:
    """k stratified folds of the slice (seeded like `PseudoLabelGenerator.estimate_precision`); picks train every fold."""
    augment = policy.build()
    models, parts, conf, right, acc, brier, loss = [], [], [], [], [], [], []

    def score(tr: ImageSet, val: ImageSet, fold_seed: int) -> float:
        if picks is not None and len(picks):
            tr = tr.concat(picks)
        model = train_classifier(tr, train, seed=fold_seed, augment=augment)
        proba = predict_proba(model, val.images)
        a, b, ll = proba_metrics(proba, val.labels)
        models.append(model)
        parts.append((tr, val, fold_seed))
        conf.append(proba.max(1))
        right.append(proba.argmax(1) == val.labels)
        acc.append(a)
        brier.append(b)
        loss.append(ll)
        return a

    cross_validate(slice_, score, k=k, seed=seed)
    trial = Trial(Recipe(policy=policy), "after_al", np.asarray(acc), 0.0, brier=np.asarray(brier),
                  log_loss=np.asarray(loss))
    return FoldRun(policy, trial, np.concatenate(conf), np.concatenate(right), models, parts)


def choose_after_al(runs: Sequence[FoldRun], min_gain: float, z: float = 1.0) -> tuple[FoldRun, dict]:
    """runs[0] ("none") is the incumbent; the best other policy by paired Brier gain must beat it."""
    base = runs[0]
    others = [r for r in runs[1:] if len(r.trial.scores)]
    trials = {r.policy.name: round(float(r.trial.brier.mean()), 4) for r in runs}
    if not others:
        return base, {"augment": base.policy.name, "augment_choice": "after AL: no other policy", "after_al_brier": trials}
    best = max(others, key=lambda r: paired_gain(r.trial, base.trial, "brier")[0])
    gain, se = paired_gain(best.trial, base.trial, "brier")
    adopted = beats(best.trial, base.trial, min_gain, "brier", None, z)
    pick = best if adopted else base
    why = (f"after AL: {best.policy.name} {'beats' if adopted else 'does not beat'} {base.policy.name} "
           f"(brier gain {gain:+.4f} +- {se:.4f}, paired {len(base.trial.scores)}-fold CV on the slice)")
    return pick, {"augment": pick.policy.name, "augment_choice": why, "after_al_brier": trials}


def precision_at(run: FoldRun, thresholds: Sequence[float]) -> list[dict]:
    """Kept / correct of the held-out predictions at each confidence threshold."""
    out = []
    for t in sorted(float(x) for x in thresholds):
        mask = run.conf >= t
        out.append({"threshold": t, "kept": int(mask.sum()), "correct": int(run.correct[mask].sum())})
    return out


def student_benefit(run: FoldRun, pool: ImageSet, student: StudentFn, min_gain: float, z: float = 1.0) -> dict:
    """Per fold, `student(model, train part, pool, fold seed)` vs the fold model it came from, on the held-out fold.

    The pool never holds a slice image (the slice is labelled, the pool is not), so no student
    trains on its own validation images.
    """
    acc, brier, loss = [], [], []
    for model, (tr, val, fold_seed) in zip(run.models, run.parts, strict=True):
        if np.isin(val.ids, pool.ids).any() or np.isin(tr.ids, pool.ids).any():
            raise DataError("student_benefit: the pool holds labelled fold images; pass the pool minus every "
                            "labelled image")
        a, b, ll = fold_metrics(student(model, tr, pool, fold_seed), val)
        acc.append(a)
        brier.append(b)
        loss.append(ll)
    trial = Trial(run.trial.recipe, "student", np.asarray(acc), 0.0, brier=np.asarray(brier), log_loss=np.asarray(loss))
    gain, se = paired_gain(trial, run.trial, "brier")
    acc_gain, acc_se = paired_gain(trial, run.trial, "accuracy")
    return {"passes": beats(trial, run.trial, min_gain, "brier", None, z), "brier_gain": gain, "brier_gain_se": se,
            "acc_gain": acc_gain, "acc_gain_se": acc_se}


def pl_benefit(run: FoldRun, pool: ImageSet, threshold: float, train: TrainConfig, min_gain: float,
               max_class_ratio: float | None = None, z: float = 1.0) -> dict:
    """Students (fold labels + the fold model's confident pseudo-labels of `pool`) vs their teachers.

    `max_class_ratio` caps the pseudo-labels per class as the final teacher's source does
    (`PseudoLabelGenerator.max_class_ratio`), so the test measures the pseudo-labels that would ship.
    """
    from generators.pseudo_label import confident_kept

    augment = run.policy.build()
    kept: list[int] = []
    per_class: list[list[int]] = []

    def student(model: nn.Module, tr: ImageSet, pool: ImageSet, fold_seed: int) -> nn.Module:
        proba = predict_proba(model, pool.images)
        conf, pred = proba.max(1), proba.argmax(1)
        keep = confident_kept(pred, conf, threshold, proba.shape[1], max_class_ratio)
        extra = ImageSet(pool.images[keep], pred[keep].astype(np.int64), pool.ids[keep], pool.class_names)
        kept.append(len(keep))
        per_class.append(np.bincount(pred[keep], minlength=proba.shape[1]).tolist())
        return train_classifier(tr.concat(extra) if len(extra) else tr, train, seed=fold_seed, augment=augment)

    return {**student_benefit(run, pool, student, min_gain, z), "kept_per_fold": kept, "kept_per_class": per_class}


def semi_benefit(run: FoldRun, pool: ImageSet, train: TrainConfig, semi: SemiConfig, min_gain: float,
                 z: float = 1.0) -> dict:
    """Students trained by consistency on the fold's labels + `pool` (synth.semi) vs the fold models."""
    confident: list[float] = []

    def student(model: nn.Module, tr: ImageSet, pool: ImageSet, fold_seed: int) -> nn.Module:
        out = train_semi(tr, pool, train, semi, seed=fold_seed)
        confident.append(out.semi_info["confident_share"])
        return out

    return {**student_benefit(run, pool, student, min_gain, z), "confident_share_per_fold": confident}
