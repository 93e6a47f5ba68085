"""Search the recipe (augmentation, semi, sources, ratio, filter, SSL) that helps this dataset; print and report it."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from synth.config import load_splits
from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.recipe import RecipeResult, SearchBudget, SearchSpace, evaluate_recipes, load_recipe, search_recipe
from synth.recipe.candidates import default_names
from synth.recipe.evidence import Trial
from synth.recipe.report import RECIPE_YAML, write_report
from synth.recipe.search import BUDGET_STOP
from synth.seeding import rng_for
from synth.semi import Restarts, semi_candidates
from synth.training import TrainConfig

log = logging.getLogger("synth.recommend")
_POOL_STREAM = 41


def search_pool(cfg: DictConfig, unlabelled: ImageSet) -> ImageSet | None:
    """The pool the search may read: none when `use_unlabelled` is off, else a seeded subset of at most
    `max_unlabelled` images (pseudo-labelling, SSL and consistency training scale with it)."""
    if not cfg.use_unlabelled or len(unlabelled) == 0:
        return None
    cap = cfg.get("max_unlabelled")
    if cap is None or len(unlabelled) <= int(cap):
        return unlabelled
    idx = np.sort(rng_for(int(cfg.seed), _POOL_STREAM).choice(len(unlabelled), int(cap), replace=False))
    return unlabelled.subset(idx)


def _space(search: DictConfig, pool: ImageSet | None) -> SearchSpace:
    return SearchSpace(
        presets=tuple(search.presets), aug_probs=_aug_probs(search),
        n_random_policies=int(search.n_random_policies),
        sources=tuple(search.sources), shares=tuple(float(s) for s in search.shares),
        filter_quantiles=tuple(float(q) for q in search.filter_quantiles),
        pl_thresholds=tuple(float(t) for t in search.pl_thresholds), ssl=search.ssl,
        semi=semi_candidates(search.get("semi")), batch_mixes=_batch_mixes(search, pool),
    )


def _aug_probs(search: DictConfig) -> tuple[float, ...]:
    """search.aug_probs, checked here so a bad share fails before any CV fold is trained."""
    probs = tuple(float(q) for q in search.aug_probs)
    bad = [q for q in probs if not 0.0 < q <= 1.0]
    if bad:
        raise ConfigError(f"search.aug_probs must be shares of draws in (0, 1], got {bad}; "
                          "e.g. search.aug_probs=[0.5], or [] to try each preset on every draw only")
    return probs


def _measured_route(search: DictConfig, pool: ImageSet | None) -> bool:
    """Whether the default route (default policy, then batch mixes) applies: without a pool, or with one
    when `default_policy_with_pool` is true. Why a switch: with a pool the semi stage builds on the chosen
    policy and must beat it, so the route changes what consistency training is held to; off, as measured
    (conf/recommend.yaml, benchmarks/results/pool_route_check_*.md)."""
    return pool is None or bool(search.get("default_policy_with_pool", False))


def _batch_mixes(search: DictConfig, pool: ImageSet | None) -> tuple[str, ...]:
    """`search.batch_mixes` where the default route applies (bench arm `auto_default_mix`), else none."""
    return tuple(search.batch_mixes) if _measured_route(search, pool) else ()


def _default_policy(search: DictConfig, pool: ImageSet | None) -> tuple[str, ...] | None:
    """`search.default_policy` (a name or fallbacks in order) where the default route applies, else None."""
    names = default_names(search.get("default_policy"))
    return names if names and _measured_route(search, pool) else None


_ROUTE_WORDS = {"precision gate": " by the precision gate", "default policy": " as the default policy (CV: no harm)"}


def summary(result: RecipeResult) -> str:
    """The recipe, its CV estimate and what each lever contributed, as a person reads it."""
    chosen, base = result.chosen, result.baseline
    folds = f"{result.k_folds}-fold" if result.repeats == 1 else f"{result.repeats}x{result.k_folds}-fold"
    lines = [
        f"recipe:       {result.recipe.name}",
        f"CV estimate:  accuracy {chosen.mean:.3f} +- {chosen.se:.3f}  (real only {base.mean:.3f} +- {base.se:.3f}; "
        f"{folds} CV inside the labelled budget)",
    ]
    if len(chosen.brier) and len(base.brier):
        lines.append(f"              Brier {chosen.brier.mean():.4f}  (real only {base.brier.mean():.4f}; lower is better)")
    lines += [
        f"why:          {result.reason}",
        f"levers (paired gain in {result.metric} over the previous step [accuracy points]; decided by {result.metric}):",
    ]
    cuts = budget_cuts(result)
    for lever, rec in result.contributions.items():
        if not rec.get("tried"):
            cut = cuts.get(lever)
            lines.append(f"  {lever:<13} " + (f"not scored: cut by the compute budget ({', '.join(cut)})" if cut
                                               else "not tried"))
            continue
        verdict = ("adopted" + _ROUTE_WORDS.get(rec.get("route"), "") if rec["adopted"] else "not adopted")
        acc = f"[{100 * rec['acc_gain']:+.1f} +- {100 * rec['acc_gain_se']:.1f}]" if "acc_gain" in rec else ""
        unneeded = sum(k.stage == lever for k in result.unneeded)
        lines.append(f"  {lever:<13} {rec['gain']:+.4f} +- {rec['gain_se']:.4f} {acc}  best: {rec['best']}"
                     f"  ({verdict}, {rec['tried']} tried" + (f", {unneeded} not needed after it" if unneeded else "") + ")")
    if cuts:
        names = [name for stage in cuts.values() for name in stage]
        trials, seconds = budget_to_score(result)
        lines.append(f"cut by the compute budget: {len(names)} recipe(s) not scored to the end: {'; '.join(names)}. "
                     f"Scoring them needs search.max_trials >= {trials} and search.max_seconds ~{seconds} "
                     "(a rough guess: priced on the trials that ran and a few timed steps; a stage that adopts a "
                     "recipe may add trials)")
    lines.append(f"search time:  {result.seconds:.0f}s, {len(result.trials)} recipes x {result.k_folds * result.repeats} folds")
    return "\n".join(lines)


def restarts_line(result: RecipeResult, restarts: Restarts, labelled: ImageSet) -> str | None:
    """What the final fit will do beyond the recipe, when restarts apply to it (None otherwise): a user training
    with the recipe needs to pass them on, and to expect `runs` x the consistency-training time."""
    if result.recipe.semi is None or not restarts.applies(labelled):
        return None
    return (f"final fit:    consistency training trained {restarts.runs}x, the run most confident on the pool kept "
            f"(<= {restarts.max_labels} labelled images in the smallest class; ~{restarts.runs}x its time): "
            f"train_with(load_recipe(p), labelled, unlabelled, restarts=load_restarts(p)) with p = {RECIPE_YAML}")


def budget_cuts(result: RecipeResult) -> dict[str, list[str]]:
    """Per stage, the recipes the compute budget kept from a complete score: skipped, or stopped mid-trial.

    Why a user needs them by name: on 28x28 images with a pool the 600 s default budget cut consistency
    training (the strongest lever measured on digits) in every benchmark cell (docs/recipe.md, glyphs); a
    bare count did not say that the answer was decided without it.
    """
    cuts: dict[str, list[str]] = {}
    for skip in result.skipped:
        cuts.setdefault(skip.stage, []).append(f"{skip.recipe.name} (skipped)")
    for t in stopped_by_budget(result):
        cuts.setdefault(t.stage, []).append(f"{t.recipe.name} (stopped after {len(t.scores)} fold(s))")
    return cuts


def stopped_by_budget(result: RecipeResult) -> list[Trial]:
    """Trials the wall clock stopped between folds (incomplete, so they count for nothing); not pruned ones."""
    return [t for t in result.trials if not t.complete and BUDGET_STOP in t.notes]


def budget_to_score(result: RecipeResult) -> tuple[int, int]:
    """(max_trials, max_seconds) that would have scored every recipe the budget cut, rounded up to 10 s.

    Why: "raise the budget" alone left a user guessing by how much; at 28x28 with a pool one consistency-
    training trial costs ~20x a supervised one (~11 min at one thread), several times the default 600 s.
    Seconds: this search's, plus each skipped trial's expected cost (`Skip.seconds`) and the missing folds of
    trials stopped mid-way at their own pace per fold.
    """
    folds = result.k_folds * result.repeats
    more = sum(s.seconds for s in result.skipped) + sum(
        t.seconds / max(len(t.scores), 1) * (folds - len(t.scores)) for t in stopped_by_budget(result))
    return len(result.trials) + len(result.skipped), int(math.ceil((result.seconds + more) / 10.0) * 10)


def run(cfg: DictConfig) -> RecipeResult:
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    _, splits = load_splits(cfg)  # the test split is loaded by the source but never passed on
    pool = search_pool(cfg, splits.unlabelled)
    search = cfg.search
    restarts = Restarts.from_dict(search.get("semi_restarts"))  # read first: a bad value fails before the search
    train_cfg = TrainConfig(**OmegaConf.to_container(cfg.train))
    if cfg.get("recipe"):
        recipe = load_recipe(cfg.recipe)
        result = evaluate_recipes(splits.labelled, [recipe], pool, seed=int(cfg.seed), k_folds=int(search.k_folds),
                                  train_cfg=train_cfg, min_gain=float(search.min_gain), metric=str(search.metric),
                                  repeats=int(search.repeats))
    else:
        result = search_recipe(splits.labelled, pool, seed=int(cfg.seed), train_cfg=train_cfg,
                               progress=bool(cfg.progress), **search_settings(search, pool))
    overrides = f"data={cfg.data.name} budget.n_per_class={cfg.budget.n_per_class} seed={cfg.seed}"
    run_info = {"data": cfg.data.name, "n_labelled": len(splits.labelled), "n_unlabelled": 0 if pool is None else len(pool),
                "overrides": overrides}
    paths = write_report(result, Path(cfg.out_dir), run_info, restarts=restarts)
    print(summary(result))
    final = restarts_line(result, restarts, splits.labelled)
    if final:
        print(final)
    print(f"report:       {paths['png']}  (evidence {paths['json'].name}, rerunnable {paths['yaml'].name})")
    return result


def search_settings(search: DictConfig, pool: ImageSet | None) -> dict:
    """`search_recipe`'s keyword arguments (all but the data, seed, trainer and progress) from
    conf/recommend.yaml's `search` section and whether a pool is given: the one reading of that section, which
    `run` and the design checks that ask what recommend would choose (benchmarks/) share."""
    if int(search.k_folds) < 2:
        raise ConfigError(f"search.k_folds must be >= 2, got {search.k_folds}")
    return {
        "budget": SearchBudget(search.max_trials, search.max_seconds), "k_folds": int(search.k_folds),
        "space": _space(search, pool), "min_gain": float(search.min_gain), "metric": str(search.metric),
        "repeats": int(search.repeats), "z": float(search.get("z", 1.0)),
        "semi_min_precision": _optional_float(search.get("semi_min_precision")),
        "default_policy": _default_policy(search, pool), "batch_mix_metric": search.get("batch_mix_metric"),
        "prune_default": bool(search.get("prune_default", False)),
        "settle_default": bool(search.get("settle_default", False)),
    }


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)
