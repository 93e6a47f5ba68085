"""Benchmark arm "auto": the recipe search run inside each arm's labelled budget and seed.

Why an arm: the issue's goal is that "auto" is never worse than real only on any dataset,
measured by the same harness and test set as the fixed arms. The arm searches with
`synth.recipe.search_recipe` on exactly the data the harness hands it (the labelled budget,
plus the unlabelled pool under the unlabelled-pool protocol only), trains the final
classifier the chosen recipe prescribes with the benchmark's TrainConfig, and reports every
real id the search and the final training saw, so the harness's protocol check applies.

Register it by config alone: conf/bench/base.yaml holds the `auto` entry with every search
setting (a preset adds it to its run list, `bench.run=[real,auto]`, and may override any key).

Every search key in `SEARCH_KEYS` must be in the arm's params; there are no code-side defaults.
Why: the harness caches a cell by a hash of the arm's YAML params, so a default kept in code
could change without recomputing the cells it shaped. A second auto-like arm (another name,
same target) copies the keys from base.yaml's `auto` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from synth.bench.arms import HARNESS_KEYS
from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.recipe.candidates import default_names
from synth.recipe.result import SearchBudget, SearchSpace
from synth.recipe.search import search_recipe
from synth.seeding import rng_for
from synth.semi import Restarts, semi_candidates
from synth.training import TrainConfig

_POOL_STREAM = 43

#: Settings arm_auto reads from the arm's params; their values live in conf/bench/base.yaml `arms.auto`.
SEARCH_KEYS: tuple[str, ...] = (
    "k_folds", "repeats", "metric", "min_gain", "z", "max_trials", "max_seconds", "presets", "aug_probs",
    "n_random_policies", "sources", "shares", "filter_quantiles", "pl_thresholds", "ssl", "max_unlabelled",
    "search_train", "source_configs", "semi", "semi_min_precision", "default_policy", "batch_mixes",
    "batch_mix_metric", "prune_default", "settle_default", "semi_restarts",
)


def arm_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The arm's params, checked: every search key set (no hidden code default), none unknown."""
    known = set(SEARCH_KEYS) | set(HARNESS_KEYS)
    unknown = sorted(k for k in params if k not in known and not str(k).startswith("_"))
    if unknown:
        raise ConfigError(f"bench.arms.{name}: unknown key(s) {unknown}; known: {sorted(known)}")
    missing = [k for k in SEARCH_KEYS if k not in params]
    if missing:
        raise ConfigError(f"bench.arms.{name}: missing key(s) {missing}; the auto arm has no code defaults. "
                          "Copy them from the `auto` entry of conf/bench/base.yaml (or override that entry).")
    return dict(params)


def _pool(unlabelled: ImageSet | None, cap: int | None, seed: int) -> ImageSet | None:
    """The pool the search may use (a seeded subset of at most `cap` images, to bound cost)."""
    if unlabelled is None or len(unlabelled) == 0:
        return None
    if cap is None or len(unlabelled) <= int(cap):
        return unlabelled
    idx = np.sort(rng_for(seed, _POOL_STREAM).choice(len(unlabelled), int(cap), replace=False))
    return unlabelled.subset(idx)


def search_settings(p: Mapping[str, Any], train: TrainConfig) -> dict[str, Any]:
    """search_recipe keyword arguments from the arm's params."""
    space = SearchSpace(
        presets=tuple(p["presets"]), aug_probs=tuple(float(q) for q in p["aug_probs"]),
        n_random_policies=int(p["n_random_policies"]), sources=tuple(p["sources"]),
        shares=tuple(float(s) for s in p["shares"]), filter_quantiles=tuple(float(q) for q in p["filter_quantiles"]),
        pl_thresholds=tuple(float(t) for t in p["pl_thresholds"]), ssl=p["ssl"],
        source_configs={k: dict(v) for k, v in dict(p["source_configs"]).items()},
        semi=semi_candidates(p["semi"]), batch_mixes=tuple(p["batch_mixes"]),
    )
    fold_train = TrainConfig(**{**vars(train), **dict(p["search_train"])}) if p["search_train"] else train
    return {"budget": SearchBudget(p["max_trials"], p["max_seconds"]), "space": space, "k_folds": int(p["k_folds"]),
            "repeats": int(p["repeats"]), "metric": str(p["metric"]), "min_gain": float(p["min_gain"]), "z": float(p["z"]),
            "train_cfg": fold_train,
            "semi_min_precision": None if p["semi_min_precision"] is None else float(p["semi_min_precision"]),
            "default_policy": default_names(p["default_policy"]) or None,
            "batch_mix_metric": None if p["batch_mix_metric"] is None else str(p["batch_mix_metric"]),
            "prune_default": bool(p["prune_default"]), "settle_default": bool(p["settle_default"])}


def arm_auto(data, budget: Any, seed: int, cfg) -> Any:
    """Search the recipe inside the arm's data, train the final classifier with it, report what was seen."""
    from synth.bench.arms import ArmOutput

    p = arm_params(cfg.name, cfg.params)
    restarts = Restarts.from_dict(p["semi_restarts"])  # read first: a bad value fails before the search
    pool = _pool(data.unlabelled, p["max_unlabelled"], seed)
    result = search_recipe(data.labelled, pool, seed=seed, progress=cfg.progress, **search_settings(p, cfg.train))
    model = result.train_final(data.labelled, pool, seed=seed, cfg=cfg.train, restarts=restarts)
    seen = [str(i) for i in data.labelled.ids]
    if pool is not None and _uses_pool(result):
        seen += [str(i) for i in pool.ids]
    d = result.to_dict()
    meta = {"recipe": result.recipe.name, "recipe_config": d["recipe"], "reason": result.reason,
            "cv_estimate": d["cv_estimate"], "real_only_cv": d["nothing"], "cv_brier": d["cv_brier"],
            "search_seconds": d["search_seconds"], "trials": len(result.trials), "skipped": len(result.skipped),
            "skipped_candidates": d["skipped"],
            "pool": 0 if pool is None else len(pool), "candidates": _evidence(d),
            **({"restarts": model.semi_info["restarts"]} if "restarts" in getattr(model, "semi_info", {}) else {})}
    return ArmOutput(model, meta, {"recipe_search": seen})


def _evidence(d: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per candidate: CV accuracy, the paired gain over real only and its seconds, so a cell says why it
    chose and what each trial cost (the figure a search budget for larger images is sized from)."""
    out = {}
    for c in d["candidates"]:
        row = {"cv_acc": round(c["cv_mean"], 4), "stage": c["stage"], "complete": c["complete"],
               "seconds": c["seconds"]}
        metric = d["decision_metric"]
        for key in (f"{metric}_gain_vs_nothing", f"{metric}_gain_se", "gain_vs_nothing", "gain_se"):
            if key in c:
                row[key] = round(float(c[key]), 5)
        out[c["name"]] = row
    return out


def _uses_pool(result) -> bool:
    """Whether any candidate could have read the pool (pseudo-labels, SSL, semi). Conservative: any tried."""
    return any(t.recipe.source == "pseudo_label" or t.recipe.ssl or t.recipe.semi is not None for t in result.trials)
