"""Pseudo-label source: real pool images labelled by a classifier trained on the labelled budget.

On digits, confident pseudo-labels were the strongest single lever (3.4-4.2x); on
Fashion-MNIST they were only 77-91 % correct and hurt. So this source measures its own
label precision before it offers anything: k-fold cross-validation *inside* the labelled
budget estimates how often a confident prediction (confidence >= `threshold`) is right, and
below `min_precision` the generator switches itself off. Switched off, `fit` still succeeds
(a recipe search must be able to try it and move on), `fit_info["active"]` is False with the
reason, and `sample` raises `PseudoLabelsDisabled` (a catchable `DataError`).

It honours the Generator contract, so scoring, filtering and the mixer treat it like any
other source: sample j is one kept pool image of the requested class, chosen by an RNG
seeded from seeds[j] alone; `parent_ids` are the pool image ids (never a labelled id).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from generators.base import Generator, Samples
from synth.cv import cross_validate
from synth.data.imageset import ImageSet
from synth.errors import ConfigError, DataError
from synth.training import TrainConfig, predict_proba, train_classifier

_TEACHER_STREAM = 17


def pool_subset(unlabelled: ImageSet, max_pool: int | None, seed: int) -> ImageSet:
    """The seeded subset of at most `max_pool` pool images a teacher labels (all of them when None)."""
    if max_pool is None or len(unlabelled) <= max_pool:
        return unlabelled
    rng = np.random.default_rng([seed, _TEACHER_STREAM])
    return unlabelled.subset(np.sort(rng.choice(len(unlabelled), int(max_pool), replace=False)))


def balance_kept(keep: np.ndarray, pred: np.ndarray, conf: np.ndarray, n_classes: int, max_ratio: float) -> np.ndarray:
    """`keep` (indices into pred/conf) with each class cut to at most ceil(max_ratio x the smallest class's
    count), a class with none counting as 1, the most confident kept first; sorted, so the order of the
    kept images does not depend on the cap."""
    counts = np.bincount(pred[keep], minlength=n_classes)
    cap = math.ceil(max_ratio * max(int(counts.min()), 1))
    out = [keep[pred[keep] == c] for c in range(n_classes)]
    out = [idx[np.argsort(-conf[idx], kind="stable")[:cap]] for idx in out]
    return np.sort(np.concatenate(out)) if out else keep


def confident_kept(pred: np.ndarray, conf: np.ndarray, threshold: float, n_classes: int,
                   max_ratio: float | None) -> np.ndarray:
    """Indices whose confidence reaches `threshold`, cut per class by `balance_kept` unless `max_ratio` is None.

    One place for the source's kept set, its intermediate rounds and the stack's benefit-test students, so
    all three keep the same pseudo-labels."""
    keep = np.flatnonzero(conf >= threshold)
    return keep if max_ratio is None else balance_kept(keep, pred, conf, n_classes, float(max_ratio))


class PseudoLabelsDisabled(DataError):
    """The pseudo-label source switched itself off (estimated precision too low, or no pool)."""


class PseudoLabelGenerator(Generator):
    """Confident predictions on the unlabelled pool, gated by a CV estimate of their precision.

    Args:
        threshold: keep a pool image when the teacher's top probability is at least this.
        min_precision: switch off when the CV-estimated precision of kept labels is below this.
        k_folds: folds for the precision estimate (inside the labelled budget); 0 skips the
            estimate (k teachers' training) where nothing gates on it: min_precision must be 0.
        rounds: teacher rounds; round r > 1 retrains on labelled + round r-1 pseudo-labels
            (helped on digits, hurt on Fashion-MNIST: let the recipe search decide).
        augment_ops: albumentations ops for online augmentation while training the teacher
            (the teacher is much better with it on digits); empty = none.
        working_size, resample: the augmenter's working size and round trip (as the recipe's policy).
        steps, batch_size, width, hidden: the teacher SmallCNN's training.
        max_pool: label at most this many pool images (a seeded subset), to bound cost.
        max_class_ratio: keep at most this many times the smallest class's count of pseudo-labels
            per class (the most confident first; a class with none counts as 1); None keeps all.
            Confident predictions pile up in the easy classes (Fashion-MNIST teachers at 20 labels
            per class kept 26-699x more of one class than another), and a set that skewed teaches the
            student the teacher's bias: on dev splits the cap at 2 gained +1.24 +- 0.57 points there
            and never bound on digits (benchmarks/results/pl_balance_check_*.md). With rounds > 1 each
            round's teacher trains on the previous round's capped set too.
        seed: seeds teacher training and the pool subset.
    """

    name = "pseudo_label"
    uses_unlabelled = True
    #: a checkpoint saved before `resample` existed augmented with the bilinear round trip
    #: and one saved before `max_class_ratio` existed kept every confident pseudo-label
    legacy_config = {"resample": "bilinear", "max_class_ratio": None}

    def __init__(
        self,
        threshold: float = 0.9,
        min_precision: float = 0.9,
        k_folds: int = 3,
        rounds: int = 1,
        augment_ops: Sequence[Mapping[str, Any]] = (),
        working_size: int = 32,
        steps: int = 300,
        batch_size: int = 64,
        width: int = 16,
        hidden: int = 64,
        max_pool: int | None = None,
        seed: int = 0,
        resample: str = "exact",
        max_class_ratio: float | None = 2.0,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"generator.threshold must be in [0, 1], got {threshold}")
        if not 0.0 <= min_precision <= 1.0:
            raise ConfigError(f"generator.min_precision must be in [0, 1], got {min_precision}")
        if k_folds == 1 or k_folds < 0 or rounds < 1:
            raise ConfigError(f"generator.k_folds must be >= 2 (or 0: no estimate) and rounds >= 1, got {k_folds}, {rounds}")
        if k_folds == 0 and min_precision > 0:
            raise ConfigError(f"generator.min_precision={min_precision} needs a precision estimate: set k_folds >= 2, "
                              "or min_precision: 0 to run without the gate")
        if max_pool is not None and max_pool <= 0:
            raise ConfigError(f"generator.max_pool must be > 0 or null, got {max_pool}")
        if max_class_ratio is not None and not max_class_ratio >= 1:
            raise ConfigError(f"generator.max_class_ratio must be >= 1 or null, got {max_class_ratio}")
        augment_ops = [dict(op) for op in augment_ops]
        super().__init__(
            threshold=threshold, min_precision=min_precision, k_folds=k_folds, rounds=rounds,
            augment_ops=augment_ops, working_size=working_size, steps=steps, batch_size=batch_size,
            width=width, hidden=hidden, max_pool=max_pool, seed=seed, resample=resample,
            max_class_ratio=max_class_ratio,
        )
        self.train_cfg = TrainConfig(steps=steps, batch_size=batch_size, width=width, hidden=hidden)
        self.augmenter = None
        if augment_ops:
            from generators.procedural import build_augmenter

            self.augmenter = build_augmenter(augment_ops, working_size, resample=resample)
        self._set_kept(np.zeros((0, 1, 1, 1), np.uint8), np.zeros(0, np.int64), np.zeros(0, str), np.zeros(0))

    # ---------------------------------------------------------------- state
    @property
    def active(self) -> bool:
        """Whether fit found the pseudo-labels precise enough to offer them."""
        return bool(self.fit_info.get("active", False))

    @property
    def kept_counts(self) -> np.ndarray:
        """Kept pseudo-labelled pool images per class (0 everywhere when switched off)."""
        return np.bincount(self._labels, minlength=len(self.class_names or ()))

    def pseudo_labelled(self) -> ImageSet:
        """All kept pool images with their predicted labels (each image once), for direct mixing."""
        self._require_active()
        return ImageSet(self._images, self._labels, self._ids, tuple(self.class_names or ()))

    def _set_kept(self, images: np.ndarray, labels: np.ndarray, ids: np.ndarray, conf: np.ndarray) -> None:
        self._images, self._labels, self._ids, self._conf = images, labels.astype(np.int64), ids, conf
        n_classes = len(self.class_names or ())
        self._by_class = [np.flatnonzero(self._labels == c) for c in range(n_classes)]

    def _require_active(self) -> None:
        if not self.active:
            reason = self.fit_info.get("reason", "not fitted")
            raise PseudoLabelsDisabled(f"pseudo_label source is switched off: {reason}")

    # ---------------------------------------------------------------- fit
    def _teacher(self, labelled: ImageSet, extra: ImageSet | None, seed: int) -> torch.nn.Module:
        data = labelled if extra is None or len(extra) == 0 else labelled.concat(extra)
        return train_classifier(data, self.train_cfg, seed=seed, augment=self.augmenter)

    def _label_pool(self, labelled: ImageSet, pool: ImageSet, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Run `rounds` teacher rounds; return (predicted label, confidence) per pool image."""
        extra: ImageSet | None = None
        threshold = float(self.config["threshold"])
        for r in range(int(self.config["rounds"])):
            proba = predict_proba(self._teacher(labelled, extra, seed + r), pool.images)
            pred, conf = proba.argmax(1).astype(np.int64), proba.max(1)
            # the next round's teacher trains on the capped set
            keep = confident_kept(pred, conf, threshold, proba.shape[1], self.config["max_class_ratio"])
            extra = ImageSet(pool.images[keep], pred[keep], pool.ids[keep], pool.class_names)
        return pred, conf

    def estimate_precision(self, labelled: ImageSet, pool: ImageSet | None = None,
                           always_train: ImageSet | None = None,
                           thresholds: Sequence[float] = ()) -> dict[str, Any]:
        """CV inside the labelled budget: precision and coverage of confident predictions.

        Each fold's teacher trains on the other folds (plus, with rounds > 1, its own
        pseudo-labels of `pool`) and labels the held-out fold as if it were pool images.
        The estimate is conservative: the final teacher sees all k folds.

        `always_train` are labelled images in every fold's training set and never validated on:
        actively chosen labels are the hard cases, a biased validation set, but leaving them out
        of the teachers would make the estimate that of a much weaker teacher than the final one.
        `thresholds`: also report kept / correct at these confidence thresholds (`by_threshold`),
        read off the same held-out predictions (no extra teacher).
        """
        right: list[np.ndarray] = []
        confs: list[np.ndarray] = []

        def score(train: ImageSet, val: ImageSet, fold_seed: int) -> float:
            if always_train is not None and len(always_train):
                train = train.concat(always_train)
            unl = val.without_labels() if pool is None else pool.concat(val.without_labels())
            pred, conf = self._label_pool(train, unl, fold_seed)
            right.append(pred[-len(val):] == val.labels)
            confs.append(conf[-len(val):])
            return float("nan")

        if int(self.config["k_folds"]) < 2:
            raise ConfigError("estimate_precision needs generator.k_folds >= 2")
        k = min(int(self.config["k_folds"]), len(labelled))
        cross_validate(labelled, score, k=k, seed=int(self.config["seed"]))
        ok, conf = np.concatenate(right), np.concatenate(confs)

        def at(t: float) -> dict[str, Any]:
            mask = conf >= t
            return {"threshold": float(t), "kept": int(mask.sum()), "correct": int(ok[mask].sum())}

        own = at(float(self.config["threshold"]))
        return {"cv_precision": own["correct"] / own["kept"] if own["kept"] else 0.0,
                "cv_coverage": own["kept"] / max(len(ok), 1), "cv_kept": own["kept"], "cv_correct": own["correct"],
                "cv_validated": len(ok), "by_threshold": [at(t) for t in thresholds]}

    def _fit(self, labelled: ImageSet, unlabelled: ImageSet | None) -> dict[str, Any]:
        self._set_kept(np.zeros((0, *labelled.image_shape), np.uint8), np.zeros(0), np.zeros(0, str), np.zeros(0))
        if unlabelled is None or len(unlabelled) == 0:
            return {"active": False, "reason": "no unlabelled pool was given", "kept": 0}
        pool = self._subsample(unlabelled)
        # only the precision estimate needs 2 labels a class; with k_folds 0 (no gate) a single label teaches too
        if int(self.config["k_folds"]) > 0 and int(labelled.class_counts().min()) < 2:
            return {"active": False, "reason": "fewer than 2 labelled images in some class: "
                    "cannot estimate pseudo-label precision by cross-validation", "kept": 0}
        multi_round = int(self.config["rounds"]) > 1
        if int(self.config["k_folds"]) == 0:
            info: dict[str, Any] = {"cv_precision": None, "cv_coverage": None, "cv_kept": None, "cv_correct": None, "cv_validated": None,
                                    "estimate": "skipped (k_folds 0, no gate)"}
        else:
            info = self.estimate_precision(labelled, pool if multi_round else None)
        floor = float(self.config["min_precision"])
        if info["cv_precision"] is not None and info["cv_precision"] < floor:
            info.update(active=False, kept=0, reason=(
                f"cross-validated precision of confident pseudo-labels is {info['cv_precision']:.3f} "
                f"< min_precision={floor} (threshold={self.config['threshold']})"))
            return info
        pred, conf = self._label_pool(labelled, pool, int(self.config["seed"]) + 1000)
        threshold, n_classes = float(self.config["threshold"]), len(labelled.class_names)
        confident = np.bincount(pred[conf >= threshold], minlength=n_classes)  # before the cap, for the record
        keep = confident_kept(pred, conf, threshold, n_classes, self.config["max_class_ratio"])
        self._set_kept(pool.images[keep], pred[keep], pool.ids[keep], conf[keep])
        counts = self.kept_counts
        info.update(active=len(keep) > 0, kept=int(len(keep)), pool=len(pool), kept_per_class=counts.tolist(),
                    confident_per_class=confident.tolist())
        if not len(keep):
            info["reason"] = f"no pool image reached confidence {self.config['threshold']}"
        return info

    def _subsample(self, unlabelled: ImageSet) -> ImageSet:
        return pool_subset(unlabelled, self.config["max_pool"], int(self.config["seed"]))

    # ---------------------------------------------------------------- sample
    def _sample(self, labels: np.ndarray, seeds: np.ndarray) -> Samples:
        self._require_active()
        missing = sorted({int(c) for c in labels if len(self._by_class[c]) == 0})
        if missing:
            names = [self.class_names[c] for c in missing]  # type: ignore[index]
            raise PseudoLabelsDisabled(
                f"no confident pseudo-labels for class(es) {names}; sample only classes with "
                f"kept_counts > 0 or lower generator.threshold"
            )
        picks = np.empty(len(labels), dtype=np.int64)
        for j, (label, seed) in enumerate(zip(labels, seeds, strict=True)):
            members = self._by_class[label]
            picks[j] = members[np.random.default_rng(int(seed)).integers(len(members))]
        return Samples(self._images[picks].copy(), labels.copy(), self._ids[picks].astype(object))

    # ---------------------------------------------------------------- persistence
    def _save(self, directory: Path) -> None:
        tensors = {
            "images": torch.from_numpy(np.ascontiguousarray(self._images)),
            "labels": torch.from_numpy(self._labels),
            "confidence": torch.from_numpy(self._conf.astype(np.float32)),
        }
        save_file(tensors, directory / "pseudo_labels.safetensors")
        (directory / "pool_ids.txt").write_text("".join(f"{i}\n" for i in self._ids))

    def _load(self, directory: Path) -> None:
        tensors = load_file(directory / "pseudo_labels.safetensors")
        ids = np.array((directory / "pool_ids.txt").read_text().splitlines(), dtype=str)
        self._set_kept(tensors["images"].numpy(), tensors["labels"].numpy(), ids, tensors["confidence"].numpy())
