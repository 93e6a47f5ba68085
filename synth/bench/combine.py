"""The "combined" arm: pick the recipe (augmentation x synthetic source x share) by CV inside the budget.

Each candidate is scored by k-fold cross-validation on the arm's labelled images only
(synth.cv): for every fold the candidate's generator is refitted on the fold's training
part, so validation images never reach a generator. The test set is not involved. The
winner is retrained on all labelled images. Candidates are listed simplest first and ties
go to the earlier one, so "plain real" wins unless something measurably helps in CV.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from synth.bench.arms import (
    ArmConfig,
    ArmOutput,
    availability,
    generator_uses_unlabelled,
    obtain_generator,
    online_augmenter,
    synthetic_set,
    synthetic_with_parents,
)
from synth.bench.protocol import ArmData
from synth.cv import cross_validate
from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.training import accuracy, train_classifier


def sources_of(params: Mapping[str, Any]) -> list[str]:
    return sorted({c["source"] for c in params.get("candidates", []) if c.get("source")})


def uses_unlabelled(params: Mapping[str, Any]) -> bool:
    """True if any candidate source's generator learns from the unlabelled pool."""
    sources = params.get("_sources", {})
    return any(generator_uses_unlabelled(sources.get(s, {})) for s in sources_of(params))


def usable_candidates(params: Mapping[str, Any], arms: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict], list[str]]:
    cands, dropped = [], []
    for c in params.get("candidates", []):
        src = c.get("source")
        why = None if not src else (f"unknown arm {src!r}" if src not in arms else availability(src, arms[src]))
        if why:
            dropped.append(f"{c.get('name', src)}: {why}")
        else:
            cands.append(dict(c))
    if not cands:
        raise ConfigError("bench.arms.combined.candidates: no usable candidate; add {name: real} at least")
    return cands, dropped


def _synthetic(cand: dict, data: ArmData, budget: Any, seed: int, cfg: ArmConfig, cache_arm: str):
    src = cand.get("source")
    if not src:
        return None, [], {}
    src_params = cfg.arms[src]
    sub = replace(cfg, name=cache_arm, params=src_params)
    gen, info = obtain_generator(cache_arm, src_params, data, budget, seed, sub)
    return synthetic_set(gen, data.labelled, src_params, seed), list(gen.seen_ids), info


def _train(cand: dict, labelled: ImageSet, syn: ImageSet | None, cfg, seed: int):
    share = float(cand.get("share", 0.5)) if syn is not None else 0.0
    return train_classifier(
        labelled, cfg, seed=seed, augment=online_augmenter(cand), synthetic=syn, synthetic_share=share
    )


def choose_and_train(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    if cfg.params.get("tuner", "cv") == "mixing":
        return tune_with_mixer(data, budget, seed, cfg)
    params = cfg.params
    cands, dropped = usable_candidates(params, cfg.arms)
    cv_train = replace(cfg.train, steps=int(params.get("cv_steps", max(1, cfg.train.steps // 2))))
    k = min(int(params.get("k", 3)), int(data.labelled.class_counts().min()))
    seen: set[str] = set()
    scores: dict[str, list[float]] = {}
    if k >= 2 and len(cands) > 1:
        for cand in cands:
            def score(train: ImageSet, val: ImageSet, fold_seed: int, cand=cand) -> float:
                fold = ArmData(train, data.unlabelled, data.protocol)
                src = cand.get("source") or "none"
                syn, ids, _ = _synthetic(cand, fold, budget, fold_seed, cfg, f"{src}-cv")
                seen.update(ids)
                return accuracy(_train(cand, train, syn, cv_train, fold_seed), val)

            scores[cand["name"]] = cross_validate(data.labelled, score, k=k, seed=seed).tolist()
        best = int(np.argmax([np.mean(scores[c["name"]]) for c in cands]))
        how = f"{k}-fold CV inside the budget"
    else:
        best, how = 0, "not tuned (fewer than 2 labelled images per class or one candidate): first candidate"
    chosen = cands[best]
    syn, ids, info = _synthetic(chosen, data, budget, seed, cfg, chosen.get("source") or "none")
    seen.update(ids)
    model = _train(chosen, data.labelled, syn, cfg.train, seed)
    meta = {"chosen": chosen, "selection": how, "cv_scores": scores, "dropped_candidates": dropped,
            "synthetic": 0 if syn is None else len(syn), **({"generator": info} if info else {})}
    return ArmOutput(model, meta, {"cv+final generators": sorted(seen)} if seen else {})


def tune_with_mixer(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """`tuner: mixing`: synth.mixing.tune_mix picks ratio x online augmentation for one `source`.

    The source's generator is fitted once on the arm's data; tune_mix drops, per fold, the
    samples derived from validation images (exact for procedural sources; a learned
    generator still saw the fold's images, which makes its CV score optimistic).
    """
    from synth.mixing.sources import SyntheticData
    from synth.mixing.tuning import tune_mix

    params = cfg.params
    src = params.get("source")
    if src not in cfg.arms:
        raise ConfigError(f"bench.arms.{cfg.name}.source must name a generator arm, got {src!r}")
    src_params = cfg.arms[src]
    gen, info = obtain_generator(src, src_params, data, budget, seed, replace(cfg, name=src, params=src_params))
    syn, parents = synthetic_with_parents(gen, data.labelled, src_params, seed)
    augment = online_augmenter(params)
    k = min(int(params.get("k", 3)), int(data.labelled.class_counts().min()))
    cv_train = replace(cfg.train, steps=int(params.get("cv_steps", max(1, cfg.train.steps // 2))))
    if k >= 2:
        result = tune_mix(data.labelled, SyntheticData(syn, parent_ids=parents, origin=src),
                          ratios=list(params.get("ratios", [0.0, 0.5, 1.0])), augment=augment,
                          train_cfg=cv_train, k=k, seed=seed, progress=False)
        best, table = result.best, result.to_dict()
    else:
        from synth.mixing.tuning import Candidate

        best, table = Candidate(0.0, None, augment is not None), {"note": "not tuned: < 2 labelled images per class"}
    use_syn = syn if best.ratio > 0 else None
    model = train_classifier(data.labelled, cfg.train, seed=seed, augment=augment if best.augment else None,
                             synthetic=use_syn, mix={"ratio": best.ratio})
    meta = {"tuner": "synth.mixing.tune_mix", "source": src, "chosen": {"ratio": best.ratio, "augment": best.augment},
            "tuning": table, "generator": info}
    return ArmOutput(model, meta, {f"generator:{src}": list(gen.seen_ids)})
