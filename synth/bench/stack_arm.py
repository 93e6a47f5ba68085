"""Issue-7 "stack" arm: active learning + the learner that helps here + gated pseudo-labels.

Why a new full stack: the SSL-based `full_stack` (label_arms.py) chose its head by CV on the
*actively chosen* labels (the hard cases: a biased validation set) and always offered
augmentation, so it lost to `active_aug` on digits and to real-only on Fashion-MNIST, where
augmentation hurts. This arm decides every risky lever on labels that are NOT actively chosen:

1. **Random slice.** The first `ceil(initial_fraction * n)` labelled images per class (the
   harness drew them at random) are the slice; the rest of the budget is spent by active
   learning. The labelled images outside the slice are never looked at.
2. **AL learner (augmentation or none)** by `synth.recipe.search_recipe` on the slice: presets
   only, no sources, paired k-fold CV on the Brier score, "nothing" always allowed and kept
   unless a preset beats it beyond the CV noise. It trains the selection rounds only.
3. **Active learning** (margin, `synth.active` via `run_active`) from the slice, training the
   chosen learner each round; every pool label comes through `cfg.oracle`.
4. **After-AL decision** (`pl_gate: after_al`, default; `decide_after_al`, evidence from
   `synth/bench/stack_cv.py`): k fold models per policy (none, each preset, the AL learner) train
   on the other slice folds *plus every actively chosen label* and are validated on the held-out
   random slice fold (the AL labels are the hard cases, a biased validation set; leaving them out
   of training made the teachers far weaker than the final one). From the same fold models:
   a. `augment_after_al`: the final augmentation, "none" kept unless a policy beats it beyond the
      fold noise (on digits n=5 the slice-only choice picked none on seeds whose final model then
      trailed `active_aug`); the candidates are none, the AL learner's policy and `after_al_presets`
      (`presets` when null);
   b. the pseudo-label gate: the chosen policy's held-out predictions read at each of
      `pl_thresholds`; open at the lowest threshold whose Wilson lower bound (z=`pl_z`) of
      precision is >= `min_precision` (calibration: digits 96-100 % correct and ~4x;
      Fashion-MNIST 77-91 % and harmful);
   c. `pl_benefit`: when no bound passes but the best row's point precision reaches
      `min_precision` (30 validated images cannot give a bound of 0.9 unless ~24 of 24 kept are
      right), each fold model labels the pool and a student trains on the fold's labels + those
      pseudo-labels; the gate opens when the students beat their teachers on the held-out slice
      by the same paired rule as (a) (`pl_route` says which route opened it). The students'
      pseudo-labels are capped per class (`pl_max_class_ratio`) as the final teacher's are. With
      `pl_precision_route: false` a passing bound no longer opens the gate by itself: the
      benefit test decides (on Fashion-MNIST dev draws pseudo-labels 89-97 % correct still cost
      the student 1.2-2.4 points against its teacher: precision is not benefit). It stays on by
      default: on dev splits (benchmarks/results/pl_route_check_*.md) the benefit test passed
      wherever the bound did, so no draw changed.
   d. `semi` (a synth.semi.SemiConfig dict; null: off), decided before the gate: per fold a
      student trained by consistency on the fold's labels + the pool (synth.semi) against the
      chosen policy's fold model, by the same paired rule; adopted, it replaces (b)/(c) and the
      final model (consistency training subsumes offline pseudo-labels). On a dev split of the
      digits pool it added 13 / 6 points at 2 / 5 labels per class; on Fashion-MNIST it lost 2.7
      points at 20 (docs/label_efficiency.md). With `semi_max_slice: m` (default 0: off) and at most m random
      labels in the slice's smallest class, consistency training is adopted without this CV (and without (a)-(c),
      which it replaces): its folds then validate on about one image a class. Set to 3 in `full_stack_typiclust`
      and `full_stack`, each by a rule registered before its dev-split check (benchmarks/results/
      semi_route_check_*.md): over the CV's choice, +9.2 / +0.7 points (TypiClust) and +8.8 / +0.2 (margin) on
      digits at n = 2 / 5, +1.1 on Fashion-MNIST at n = 5 for both; no draw lost.
   With `pl_gate: slice` the gate runs before step 3 on the slice alone (teachers on 2/3 of
   ceil(n/2) labels per class, far weaker than the final one: shut on digits at n=5 on 2 of 3
   seeds where the open seed reached 99.2 %, docs/label_efficiency.md) and step 2's policy is final.
5. **Final model**: the learner on all chosen labels, plus (gate open) confident
   pseudo-labels of the rest of the pool from a teacher trained on the chosen labels; with
   `semi` adopted, consistency training on the chosen labels + the rest of the pool. The
   final teacher's own CV precision is a second gate only when `final_min_precision` > 0 (it
   would be measured on the hard, actively chosen labels); at the default 0 it is not computed.

With fewer than 2 slice labels in some class the step-2 search cannot run and falls back
to `fallback_augment` (default none); the slice-only gate stays off too, the after-AL decision
needs only as many slice images as folds (classes missing from a fold's training count against
every policy alike). Meta says why.
SSL init is not part of this stack (ssl alone 1.50x on digits, 1.01x on Fashion-MNIST, and
the SSL-based full_stack was the weakest combination); see docs/label_efficiency.md.

Config (conf/bench/base.yaml, `bench.arms.stack`): target "synth.bench.stack_arm:arm_stack".
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from synth.bench.arms import HARNESS_KEYS, ArmConfig, ArmOutput
from synth.bench.label_arms import initial_labels, run_active
from synth.bench.protocol import ArmData
from synth.bench.stack_cv import choose_after_al, fold_run, pl_benefit, precision_at, semi_benefit
from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.recipe import AugPolicy, SearchBudget, SearchSpace, preset, search_recipe
from synth.recipe.evidence import wilson_lower
from synth.semi import SemiConfig, train_semi
from synth.training import TrainConfig, train_classifier

DEFAULTS: dict[str, Any] = {
    "initial_fraction": 0.5, "strategy": "margin", "batch_size": 10, "round_steps": None,
    "presets": ["light", "strong"], "after_al_presets": None, "k": 3, "max_trials": 4, "max_seconds": 600, "min_gain": 0.005,
    "search_steps": None, "fallback_augment": None,
    "pseudo_labels": True, "threshold": 0.9, "min_precision": 0.9, "pl_k_folds": 3, "pl_z": 1.0,
    "final_min_precision": 0.0, "pl_share": None, "max_pool": None, "teacher": None, "pl_gate": "after_al",
    "pl_thresholds": None, "augment_after_al": True, "pl_benefit": True, "pl_precision_route": True, "pl_max_class_ratio": 2.0,
    "semi": None, "semi_max_slice": 0,
}
PL_GATES = ("after_al", "slice")


def stack_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The arm's params over DEFAULTS; an unknown key is a config error (typos must not pass silently)."""
    unknown = {k for k in params if k not in DEFAULTS and k not in HARNESS_KEYS}
    if unknown:
        raise ConfigError(f"bench.arms.stack: unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **dict(params)}
    if not 0.0 < float(p["initial_fraction"]) <= 1.0:
        raise ConfigError(f"bench.arms.stack.initial_fraction must be in (0, 1], got {p['initial_fraction']}")
    if p["pl_gate"] not in PL_GATES:
        raise ConfigError(f"bench.arms.stack.pl_gate must be one of {list(PL_GATES)}, got {p['pl_gate']!r}")
    if p["semi"]:
        SemiConfig.from_dict(p["semi"])  # a typo in the semi settings fails before any training
        if p["pl_gate"] != "after_al":
            raise ConfigError("bench.arms.stack.semi is decided by the after-AL CV: it needs pl_gate: after_al")
    if int(p["semi_max_slice"]) < 0 or (int(p["semi_max_slice"]) and not p["semi"]):
        raise ConfigError(f"bench.arms.stack.semi_max_slice must be >= 0 and needs semi settings, "
                          f"got {p['semi_max_slice']} with semi {p['semi']!r}")
    for name in after_al_presets(p):
        preset(name)  # an unknown preset or share fails before any training
    ratio = p["pl_max_class_ratio"]
    if ratio is not None and not float(ratio) >= 1:
        raise ConfigError(f"bench.arms.stack.pl_max_class_ratio must be >= 1 or null, got {ratio}")
    if p["pseudo_labels"] and not p["pl_precision_route"] and not (p["pl_benefit"] and p["pl_gate"] == "after_al"):
        raise ConfigError("bench.arms.stack.pl_precision_route: false leaves the benefit test as the only way to open "
                          "pseudo-labels: it needs pl_benefit: true and pl_gate: after_al (or set pseudo_labels: false)")
    return p


def after_al_presets(p: Mapping[str, Any]) -> list[str]:
    """The presets the after-AL decision offers (besides none and the AL learner's own): `after_al_presets`, or
    `presets` when that is null. Apart so the final model's choice can change without changing the AL learner's,
    hence without changing which labels active learning buys (the stop-52 dev check saw that knock-on flip the
    consistency-training gate on one draw)."""
    return list(p["presets"] if p["after_al_presets"] is None else p["after_al_presets"])


# ------------------------------------------------------------------ lever decisions (slice only)
def choose_policy(slice_: ImageSet, p: Mapping[str, Any], train: TrainConfig, seed: int) -> tuple[AugPolicy, dict]:
    """Augmentation preset or none, by the recipe search on the random slice (never the AL labels)."""
    fallback = preset(p["fallback_augment"]) if p["fallback_augment"] else preset("none")
    k = min(int(p["k"]), int(slice_.class_counts().min()))
    if k < 2:
        return fallback, {"augment": fallback.name, "augment_choice": (
            f"fallback: {int(slice_.class_counts().min())} random label(s) in some class, no CV possible")}
    steps = p["search_steps"]
    fold_train = replace(train, steps=int(steps)) if steps else train
    space = SearchSpace(presets=tuple(p["presets"]), n_random_policies=0, sources=(), pl_thresholds=(), ssl=False)
    res = search_recipe(slice_, None, budget=SearchBudget(int(p["max_trials"]), float(p["max_seconds"])), seed=seed,
                        k_folds=k, space=space, train_cfg=fold_train, min_gain=float(p["min_gain"]),
                        progress=False, metric="brier")
    return res.recipe.policy, {"augment": res.recipe.policy.name, "augment_choice": res.reason,
                               "search_k": k, "search_trials": {t.recipe.name: round(t.mean, 4) for t in res.trials}}


def teacher_params(p: Mapping[str, Any], train: TrainConfig) -> dict[str, Any]:
    """The teacher's SmallCNN training: the arm's classifier recipe, overridden key by key by `teacher`.

    One place for both the final teacher (`pl_kwargs`) and the after-AL fold models, so those fold
    models are the gate's teachers for any `teacher` dict, a partial one included.
    """
    base = {"steps": train.steps, "batch_size": train.batch_size, "width": train.width, "hidden": train.hidden}
    return {**base, **dict(p["teacher"] or {})}


def pl_kwargs(p: Mapping[str, Any], policy: AugPolicy, train: TrainConfig, seed: int) -> dict[str, Any]:
    """PseudoLabelGenerator arguments: the chosen augmentation and (by default) the arm's classifier recipe."""
    return {"threshold": float(p["threshold"]), "k_folds": int(p["pl_k_folds"]),
            "augment_ops": [dict(op) for op in policy.ops], "working_size": policy.working_size,
            "resample": policy.resample, "max_pool": p["max_pool"], "seed": seed,
            "max_class_ratio": p["pl_max_class_ratio"], **teacher_params(p, train)}


def pl_gate(slice_: ImageSet, policy: AugPolicy, p: Mapping[str, Any], train: TrainConfig, seed: int) -> dict:
    """`pl_gate: slice`, before AL: open only when the CV precision (lower bound) on slice folds reaches min_precision.

    (`pl_gate: after_al` is `decide_after_al`: the same gate on fold models that also train on the AL labels.)
    """
    from generators.pseudo_label import PseudoLabelGenerator

    if not p["pseudo_labels"]:
        return {"pl_on": False, "pl_choice": "configured off"}
    k = int(p["pl_k_folds"])
    if int(slice_.class_counts().min()) < 2:
        return {"pl_on": False, "pl_choice": f"fallback off: {int(slice_.class_counts().min())} random label(s) "
                                              "in some class, precision cannot be cross-validated"}
    if len(slice_) < k:
        return {"pl_on": False, "pl_choice": f"fallback off: {len(slice_)} random labels for {k} folds"}
    gen = PseudoLabelGenerator(min_precision=float(p["min_precision"]), **pl_kwargs(p, policy, train, seed))
    est = gen.estimate_precision(slice_, thresholds=gate_thresholds(p))
    return gate_decision(est["by_threshold"], int(est["cv_validated"]), p, "slice")


def gate_thresholds(p: Mapping[str, Any]) -> list[float]:
    return sorted(float(t) for t in (p["pl_thresholds"] or [p["threshold"]]))


def gate_decision(by_threshold: list[dict], validated: int, p: Mapping[str, Any], where: str) -> dict:
    """Open at the lowest threshold whose Wilson lower bound of precision reaches min_precision.

    When none passes, the row with the best bound is kept (for the record, and for the benefit
    route of the after-AL decision).
    """
    floor, z = float(p["min_precision"]), float(p["pl_z"])
    rows = [{**r, "lower": wilson_lower(r["correct"], r["kept"], z)} for r in by_threshold]
    # the lowest threshold (most pseudo-labels) whose precision bound passes; else the best bound, for the record
    passing = [r for r in rows if r["lower"] >= floor - 1e-9]  # 24 of 25 at z=1 is 0.9 up to float rounding
    pick = passing[0] if passing else max(rows, key=lambda r: r["lower"])
    on = bool(passing)
    precision = pick["correct"] / max(pick["kept"], 1)
    why = (f"CV precision ({where}) at threshold {pick['threshold']:g}: "
           f"{precision:.3f} of {pick['kept']} kept of {validated} validated "
           f"(lower bound {pick['lower']:.3f} {'>=' if on else '<'} min_precision {floor})")
    return {"pl_on": on, "pl_choice": why, "pl_threshold": pick["threshold"], "pl_route": "precision" if on else None,
            "pl_cv_precision": precision, "pl_cv_kept": pick["kept"],
            "pl_cv_validated": validated, "pl_cv_coverage": pick["kept"] / max(validated, 1),
            "pl_lower_bound": pick["lower"], "pl_by_threshold": rows}


# ------------------------------------------------------------------ after-AL decision (stack_cv.py)
POOL_READ = "after-AL fold students (pool, unlabelled)"


def decide_after_al(slice_: ImageSet, picks: ImageSet, rest: ImageSet, pre: AugPolicy, p: Mapping[str, Any],
                    train: TrainConfig, seed: int) -> tuple[AugPolicy, dict, dict[str, list[str]]]:
    """Augmentation and the pseudo-label gate from one CV on slice folds, AL labels in every fold's training.

    Returns the policy, the decision meta and the real ids the decision read, by component (empty where it
    decided without reading any: the small-slice route and the fallbacks), for the protocol record.
    """
    from generators.pseudo_label import pool_subset

    k = int(p["pl_k_folds"])
    smallest = int(slice_.class_counts().min())
    if p["semi"] and smallest <= int(p["semi_max_slice"]):  # no fold student: the final model reads the pool
        why = (f"adopted without CV: {smallest} random label(s) in the smallest class <= semi_max_slice "
               f"{p['semi_max_slice']} (folds too small to see it)")
        return pre, {"semi_on": True, "semi": {"passes": True, "route": "small slice"}, "semi_choice": why,
                     "pl_on": False, "pl_choice": "off: consistency training adopted"}, {}
    if len(slice_) < k:
        return pre, {"pl_on": False, "pl_choice": f"fallback off: {len(slice_)} random labels for {k} folds"}, {}
    if not p["augment_after_al"] and not p["pseudo_labels"] and not p["semi"]:
        return pre, {"pl_on": False, "pl_choice": "configured off"}, {}
    labels_read = {"decision after AL (slice + AL labels)": [str(i) for i in (*slice_.ids, *picks.ids)]}
    teacher = TrainConfig(**teacher_params(p, train))
    candidates = [preset("none"), *map(preset, after_al_presets(p)), pre] if p["augment_after_al"] else [pre]
    policies = list({pol.name: pol for pol in candidates}.values())  # one per name, in first-seen order
    runs = [fold_run(slice_, picks, pol, teacher, k, seed) for pol in policies]
    if p["augment_after_al"]:
        run, meta = choose_after_al(runs, float(p["min_gain"]))
    else:
        run, meta = runs[0], {"after_al_brier": {pre.name: round(float(runs[0].trial.brier.mean()), 4)}}
    pool = pool_subset(rest, p["max_pool"], seed)
    pool_read = {**labels_read, POOL_READ: pool_ids(pool)}  # what fold students that train on the pool read
    seen = pool_read if p["semi"] else labels_read
    if p["semi"]:
        meta["semi"] = semi_benefit(run, pool, teacher, SemiConfig.from_dict(p["semi"]), float(p["min_gain"]))
        meta["semi_on"] = bool(meta["semi"]["passes"])
        if meta["semi_on"]:
            return run.policy, {**meta, "pl_on": False, "pl_choice": "off: consistency training adopted"}, seen
    if not p["pseudo_labels"]:
        return run.policy, {**meta, "pl_on": False, "pl_choice": "configured off"}, seen
    gate = gate_decision(precision_at(run, gate_thresholds(p)), len(run.conf), p,
                         f"slice, teachers + {len(picks)} AL labels, {run.policy.name}")
    gate["pl_precision_passes"] = gate["pl_on"]
    if gate["pl_on"] and not p["pl_precision_route"]:
        gate.update(pl_on=False, pl_route=None)
        gate["pl_choice"] += "; the precision route is off (pl_precision_route: false), the benefit test decides"
    if gate["pl_on"] or not p["pl_benefit"] or gate["pl_cv_precision"] < float(p["min_precision"]):
        return run.policy, {**meta, **gate}, seen
    bench = pl_benefit(run, pool, float(gate["pl_threshold"]), teacher, float(p["min_gain"]), p["pl_max_class_ratio"])
    if bench["passes"]:
        gate.update(pl_on=True, pl_route="benefit")
    gate["pl_choice"] += (f"; benefit: students with pseudo-labels {'beat' if bench['passes'] else 'do not beat'} "
                          f"their teachers (brier gain {bench['brier_gain']:+.4f} +- {bench['brier_gain_se']:.4f})")
    return run.policy, {**meta, **gate, "pl_benefit": bench}, pool_read


def pool_ids(pool: ImageSet) -> list[str]:
    return [str(i) for i in pool.ids]


# ------------------------------------------------------------------ final model
def final_model(chosen: ImageSet, rest: ImageSet, policy: AugPolicy, gate: dict, p: Mapping[str, Any],
                train: TrainConfig, seed: int) -> tuple[nn.Module, dict, list[str]]:
    """The learner on the chosen labels (+ confident pseudo-labels of `rest` when the gate is open), or
    consistency training on the chosen labels + the pool when the after-AL decision adopted it."""
    from generators.pseudo_label import PseudoLabelGenerator, pool_subset

    if gate.get("semi_on"):
        pool = pool_subset(rest, p["max_pool"], seed)  # the pool the fold students trained on
        model = train_semi(chosen, pool, train, SemiConfig.from_dict(p["semi"]), seed=seed)
        return model, {"pseudo_labelled": 0, "semi_info": model.semi_info}, pool_ids(pool)
    augment, extra, meta, seen = policy.build(), None, {"pseudo_labelled": 0}, []
    if gate["pl_on"] and len(rest):
        floor = float(p["final_min_precision"])
        kwargs = {**pl_kwargs(p, policy, train, seed), "threshold": float(gate["pl_threshold"])}
        if floor == 0:  # no second gate: skip the final teacher's k-fold estimate (k more teachers' training)
            kwargs["k_folds"] = 0
        gen = PseudoLabelGenerator(min_precision=floor, **kwargs)
        gen.fit(chosen, rest)
        seen = [str(i) for i in rest.ids]  # what the teacher labelled (all of it, max_pool or not)
        info = gen.fit_info
        meta["final_teacher_cv_precision"] = info.get("cv_precision")
        if gen.active:
            extra = gen.pseudo_labelled()
            meta.update(pseudo_labelled=len(extra), pseudo_per_class=gen.kept_counts.tolist())
        else:
            meta["pl_final_off"] = info.get("reason", "source inactive")
    if extra is None:
        model = train_classifier(chosen, train, seed=seed, augment=augment)
    elif p["pl_share"] is None:  # pseudo-labelled pool images join the real set (augmented alike)
        model = train_classifier(chosen.concat(extra), train, seed=seed, augment=augment)
    else:
        model = train_classifier(chosen, train, seed=seed, augment=augment, synthetic=extra,
                                 synthetic_share=float(p["pl_share"]))
    return model, meta, seen


# --------------------------------------------------------------------------- arm
@dataclass
class StackPlan:
    """Everything the stack decided before its final model: which labels, which levers, and why."""

    chosen: ImageSet  # the labelled images it spent its budget on (slice + AL picks)
    rest: ImageSet  # the pool minus the chosen images (unlabelled)
    policy: AugPolicy
    gate: dict  # the after-AL (or slice) decision: pl_on, pl_threshold, semi_on, ...
    meta: dict
    seen: dict[str, list[str]]
    params: dict[str, Any]  # the arm's params over DEFAULTS (`stack_params`), which the final model reads too


def decide_stack(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> StackPlan:
    """Random slice -> augmentation by CV on it -> active learning with that learner -> the after-AL decision.

    Kept apart from the final model so a design check can train the final model under two gate settings from
    one run of the (costly, deterministic) decisions.
    """
    p = stack_params(cfg.params)
    if data.unlabelled is None or cfg.oracle is None:
        raise ConfigError(f"arm {cfg.name!r} needs the unlabelled pool and its oracle: protocols: [unlabelled_pool]")
    if budget == "all":
        raise ConfigError(f"arm {cfg.name!r} cannot run at budget 'all' (nothing left to choose)")
    t0 = time.perf_counter()
    per_class = max(1, math.ceil(float(p["initial_fraction"]) * int(budget)))
    slice_ = initial_labels(data.labelled, per_class)
    policy, meta = choose_policy(slice_, p, cfg.train, seed)
    gate = pl_gate(slice_, policy, p, cfg.train, seed) if p["pl_gate"] == "slice" else {}
    meta.update(gate, decide_seconds=round(time.perf_counter() - t0, 1), slice_min=int(slice_.class_counts().min()))

    round_train = replace(cfg.train, steps=int(p["round_steps"])) if p["round_steps"] else cfg.train
    augment = policy.build()

    def train_fn(d: ImageSet, s: int) -> nn.Module:
        return train_classifier(d, round_train, seed=s, augment=augment)

    al_cfg = replace(cfg, params={**p, "initial_per_class": per_class})
    _, chosen, al_meta = run_active(data, budget, seed, al_cfg, train_fn)
    initial = al_meta.pop("initial_ids")
    rest = data.unlabelled.without_ids(chosen.ids)
    seen: dict[str, list[str]] = {"initial labels": initial, "lever search (slice)": initial}
    if p["pl_gate"] == "after_al":
        t1 = time.perf_counter()
        picks = chosen.without_ids(slice_.ids)
        meta.update(augment_before_al=policy.name, augment_before_al_choice=meta["augment_choice"])
        policy, gate, read = decide_after_al(slice_, picks, rest, policy, p, cfg.train, seed)
        meta.update(gate, gate_seconds=round(time.perf_counter() - t1, 1))
        seen.update(read)
    meta.update(al_meta)
    return StackPlan(chosen, rest, policy, gate, meta, seen, p)


def arm_stack(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """`decide_stack`, then the final model: the learner + gated pseudo-labels, or consistency training."""
    t0 = time.perf_counter()
    plan = decide_stack(data, budget, seed, cfg)
    model, final_meta, pl_seen = final_model(plan.chosen, plan.rest, plan.policy, plan.gate, plan.params, cfg.train, seed)
    meta, seen = {**plan.meta, **final_meta, "seconds": round(time.perf_counter() - t0, 1)}, dict(plan.seen)
    if pl_seen:
        final = "semi-supervised training" if plan.gate.get("semi_on") else "pseudo-label teacher"
        seen[f"{final} (pool, unlabelled)"] = pl_seen
    return ArmOutput(model, meta, seen, n_labelled=len(plan.chosen))
