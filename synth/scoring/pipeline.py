"""Score one synthetic ImageSet against its real reference: features -> set + per-sample scores."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from synth.data.imageset import ImageSet
from synth.errors import DataError
from synth.scoring.features import ClassifierExtractor, Extractor, FeatureCache, embed
from synth.scoring.per_sample import Reference, score_samples
from synth.scoring.set_metrics import SetMetrics, evaluate_set, neighbourhood, real_self_distances

log = logging.getLogger("synth.score")


@dataclass
class ScoreResult:
    """Per-sample score arrays (aligned with the synthetic set), set-level metrics, summary."""

    per_sample: dict[str, np.ndarray]
    set_metrics: SetMetrics
    summary: dict[str, float]
    baseline_per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def check_compatible(train: ImageSet, synthetic: ImageSet) -> None:
    if len(synthetic) == 0:
        raise DataError("the synthetic set is empty: nothing to score")
    if synthetic.image_shape != train.image_shape:
        raise DataError(
            f"synthetic images are {synthetic.image_shape} but the real reference is {train.image_shape}; "
            "score against the data config the synthetic set was generated from"
        )
    if synthetic.class_names != train.class_names:
        raise DataError(f"synthetic classes {synthetic.class_names} differ from the reference's {train.class_names}")


def summarise(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Set-level view of the per-sample scores; `gap_mean` is the combined set score."""
    out = {f"{k}_mean": float(np.mean(v)) for k, v in scores.items() if k != "copy"}
    out["copy_rate"] = float(np.mean(scores["copy"]))
    out["realism_inside_rate"] = float(np.mean(scores["realism"] >= 1.0))
    return out


def score_images(
    synthetic: ImageSet,
    train: ImageSet,
    heldout: ImageSet | None,
    extractor: Extractor,
    *,
    judge: ClassifierExtractor | None = None,
    cache: FeatureCache | None = None,
    k: int = 5,
    realism_k: int = 3,
    copy_threshold: float = 0.1,
    novelty_target: float = 1.0,
    seed: int = 0,
    skip: tuple[str, ...] = (),
    names: tuple[str, str, str] = ("train", "heldout", "synthetic"),
) -> ScoreResult:
    """Everything `synth score` computes, as arrays; writing it out is the command's job.

    `train` is the training reference (the labelled images a generator saw); `heldout` are
    real images nobody trained on (unlabelled pool or a held-out labelled part), used only
    for the real-vs-real baselines and the novelty scale. Label consistency comes from
    `judge` (a classifier trained on `train`) or, if None, from the extractor itself when
    it is a classifier; with neither, the gap score omits that factor.
    """
    check_compatible(train, synthetic)
    t0 = time.perf_counter()
    f_train, _ = embed(extractor, train, cache, names[0])
    f_syn, p_syn = embed(extractor, synthetic, cache, names[2])
    if judge is not None and judge is not extractor:
        p_syn = embed(judge, synthetic, cache, names[2])[1]
    f_held = embed(extractor, heldout, cache, names[1])[0] if heldout is not None and len(heldout) else None
    t1 = time.perf_counter()
    # One sweep per ordered pair of sets, shared by per-sample and set-level scores (and the
    # train -> train sweep by the synthetic set and the real-vs-real baseline).
    real_self = real_self_distances(f_train, max(k, realism_k))
    radii = Reference.from_neighbours(f_train, real_self, None, realism_k).realism_radii()
    nb_held = neighbourhood(f_train, f_held, k, real_self, radii) if f_held is not None and len(f_held) > 1 else None
    nb_syn = neighbourhood(f_train, f_syn, k, real_self, radii) if len(f_syn) > 1 else None
    held_nn = nb_held.f2r.dist[:, 0] if nb_held is not None else None
    ref = Reference.from_neighbours(f_train, real_self, held_nn, realism_k)
    labels = synthetic.labels if (synthetic.labels >= 0).all() else None
    per_sample = score_samples(f_syn, ref, labels, p_syn, copy_threshold, novelty_target,
                               nb_syn.f2r if nb_syn is not None else None)
    baseline = score_samples(f_held, ref, None, None, copy_threshold, novelty_target,
                             nb_held.f2r if nb_held is not None else None) if f_held is not None else {}
    t2 = time.perf_counter()
    metrics = evaluate_set(f_train, f_syn, f_held, extractor.name, k=k, seed=seed, skip=skip,
                           nb_fake=nb_syn, nb_heldout=nb_held)
    t3 = time.perf_counter()
    summary = summarise(per_sample)
    if baseline:
        summary.update({f"real_vs_real_{k_}": v for k_, v in summarise(baseline).items()})
    seconds = {"features": t1 - t0, "per_sample": t2 - t1, "set_metrics": t3 - t2}
    log.info("scored %d samples: %s", len(synthetic), {k_: round(v, 2) for k_, v in seconds.items()})
    return ScoreResult(per_sample, metrics, summary, baseline, seconds)
