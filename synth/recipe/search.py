"""Per-dataset recipe search by k-fold cross-validation inside the labelled budget.

Why a search: no lever wins everywhere (digits: augmentation ~2x, pseudo-labels ~4x;
Fashion-MNIST: both hurt from 20 labels per class). Why greedy stages instead of a joint
sweep: the budget is minutes on 2 cores, and stages make each lever's contribution
readable — augmentation policy first, then a batch mix on top of it (`batch_mix`, when
configured), then consistency training on the pool (`semi`, when
configured: it labels the pool itself, so once adopted sources are tried only as its
challengers), then a source on top of the winning policy, then that source's share /
filter / threshold, then SSL init.

Never worse: "nothing" (real only, no augmentation) is always trial 0, and a challenger
replaces the incumbent only if its mean *paired* fold gain exceeds the gain's standard
error and `min_gain`. All recipes share folds and training seeds (common random numbers),
so the paired differences cancel most of the fold-to-fold noise.

Why the decision metric is the validation Brier score, not accuracy: inside 10 labels per
class a fold holds ~33 images, so accuracy moves in 3-point steps and sits near 97 % while
the test accuracy is ~92 %; it cannot see a lever worth 2x labels. The Brier score (squared
error of the predicted class probabilities) is continuous and proper, so every held-out image
contributes evidence. Accuracy is still recorded, and a lever must not lose accuracy beyond
its noise either. With `repeats > 1` the folds are redrawn with other seeds (repeated k-fold);
those folds overlap, so the standard error uses the Nadeau-Bengio correction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from synth.cv import stratified_folds
from synth.data.imageset import ImageSet
from synth.errors import ConfigError, SynthError
from synth.recipe.candidates import (
    batch_mix_recipes,
    default_names,
    mix_recipes,
    named_policy,
    policy_recipes,
    source_recipes,
)
from synth.recipe.evidence import METRICS, Trial, beats, confident_precision, held_out, no_harm, paired_gain
from synth.recipe.pricing import TrialPricer
from synth.recipe.recipe import Recipe, TrainContext, fit_and_train
from synth.recipe.result import RecipeResult, SearchBudget, SearchSpace, Skip
from synth.training import TrainConfig

#: how a recipe adopted through the semi precision gate starts its reason (synth.bench.decisions reads it)
GATE_REASON = "consistency training adopted by the precision gate"
#: ... and one adopted through the default-policy route
DEFAULT_REASON = "default augmentation policy adopted: CV shows no harm"
#: note on a trial the wall-clock budget stopped between folds (incomplete: it counts for nothing)
BUDGET_STOP = "stopped: compute budget spent mid-trial"
#: why an augmentation candidate was not run once a default policy had been adopted (`settle_default`)
SETTLED = "not needed: a default policy was adopted on no-harm evidence, so no other policy's score could change the answer"
LEVERS = ("augmentation", "batch_mix", "semi", "source", "mix", "ssl")


class _Search:
    """Runs trials on shared folds under the compute budget."""

    def __init__(self, labelled, unlabelled, folds, seed, ctx, budget, progress, prune_margin=0.05,
                 metric="accuracy", test_train_ratio=None, z=1.0, semi_min_precision=None, default_policy=None,
                 prune_default=False, settle_default=False):
        # a fold of f images moves accuracy in 1/f steps: at 2 labels per class (7-image folds) a
        # flat 5-point margin pruned every augmentation after one unlucky image, so the margin is
        # at least 3 images' worth of the smallest fold
        smallest = min((len(f) for f in folds), default=1)
        prune_margin = max(prune_margin, 3.0 / max(smallest, 1))
        self.prune_margin, self.metric, self.ratio, self.z = prune_margin, metric, test_train_ratio, z
        self.semi_min_precision, self.default_policy = semi_min_precision, default_policy
        self.prune_default, self.settle_default = prune_default, settle_default
        self.labelled, self.unlabelled, self.folds, self.seed, self.ctx = labelled, unlabelled, folds, seed, ctx
        self.has_pool = unlabelled is not None and len(unlabelled) > 0
        self.budget, self.started, self.trials, self.skipped, self.unneeded = budget, time.perf_counter(), [], [], []
        self.pricer = TrialPricer(labelled, unlabelled, folds, seed, ctx)
        self.bar = tqdm(desc="recipe search", unit="trial", disable=not progress, leave=False)

    def out_of_budget(self, stage: str, recipe: Recipe | None = None) -> str | None:
        """Why a new `stage` trial must not start (as the skipped list says it), or None.

        Besides a spent budget: a trial expected to end past `max_seconds` (synth.recipe.pricing: the mean
        of this stage's complete trials; for a stage's first trial, timed steps of consistency training and
        SSL pretraining, else the cheapest complete trial so far times the recipe's `cost_factor`). Why: a
        trial started just inside the budget runs its folds past it (a semi trial is ~5 min on digits and
        ~11 min on 28x28 images at one thread), so the search overran its wall-clock budget
        by a whole trial that then stopped incomplete and counted for nothing; a stage's first trial started
        19 s before the end ran the digits search to 631 s of its 600, and on a loaded machine the
        first semi trial, started at 451 s, stopped incomplete at 784 s.
        """
        b, elapsed = self.budget, time.perf_counter() - self.started
        if (b.max_trials is not None and len(self.trials) >= b.max_trials) or (
                b.max_seconds is not None and elapsed > b.max_seconds):
            return "compute budget spent"
        if b.max_seconds is None:
            return None
        guess, what = self.expected_seconds(stage, recipe)
        if elapsed + guess > b.max_seconds:
            return f"would not finish within the compute budget: {what}"
        return None

    def expected_seconds(self, stage: str, recipe: Recipe | None = None) -> tuple[float, str]:
        """A `stage` trial's expected wall clock and how it was guessed (`TrialPricer.expected_seconds`)."""
        return self.pricer.expected_seconds(stage, recipe, self.trials)

    def run(self, recipe: Recipe, stage: str, force: bool = False, against: Trial | None = None) -> Trial | None:
        """Score `recipe` fold by fold; stop early (pruned) once it trails `against` by `prune_margin`."""
        why = None if force else self.out_of_budget(stage, recipe)
        if why is not None:
            self.skipped.append(Skip(stage, recipe, why, round(self.expected_seconds(stage, recipe)[0], 1)))
            return None
        t0, scores, briers, losses, notes_before = time.perf_counter(), [], [], [], len(self.ctx.notes)
        proba, labels = [], []
        for i, val in enumerate(self.folds):
            # stop before a fold expected to end well past the budget: an incomplete trial counts for nothing
            fold_guess = (time.perf_counter() - t0) / i if i else 0.0
            if not force and i and self.budget.max_seconds is not None and \
                    time.perf_counter() - self.started + fold_guess > self.budget.max_seconds * 1.1:
                self.ctx.notes.append(BUDGET_STOP)
                break
            train_idx = np.setdiff1d(np.arange(len(self.labelled)), val)
            train, held = self.labelled.subset(train_idx), self.labelled.subset(val)
            try:
                model = fit_and_train(recipe, train, self.unlabelled, self.seed * 1000 + i, self.ctx, fold=i)
            except SynthError as exc:  # a source that cannot work here is evidence, not a crash
                self.ctx.notes.append(f"failed: {exc}")
                break
            if recipe.is_nothing:
                self.ctx.teacher_cache[i] = model
            (acc, brier, loss), p = held_out(model, held, recipe.policy.smoothing)
            proba.append(p)
            labels.append(held.labels)
            scores.append(acc)
            briers.append(brier)
            losses.append(loss)
            if against is not None and i + 1 < len(self.folds) and \
                    np.mean(scores) < against.scores[: i + 1].mean() - self.prune_margin:
                self.ctx.notes.append(f"pruned after {i + 1} fold(s): trails {against.recipe.name}")
                break
        trial = Trial(recipe, stage, np.asarray(scores), time.perf_counter() - t0,
                      complete=len(scores) == len(self.folds), notes=sorted(set(self.ctx.notes[notes_before:])),
                      brier=np.asarray(briers), log_loss=np.asarray(losses), held_proba=proba, held_labels=labels)
        self.trials.append(trial)
        self.bar.update(1)
        self.bar.set_postfix_str(f"{recipe.name[:40]}: {trial.mean:.3f}")
        return trial

    def stage(self, name: str, incumbent: Trial, recipes: Sequence[Recipe], min_gain: float,
              metric: str | None = None) -> tuple[Trial, dict]:
        """Try `recipes`; return the new incumbent and this lever's contribution record.

        `metric`: this stage's decision metric when it is not the search's (the batch-mix stage's)."""
        metric = metric or self.metric
        ran: list[Trial] = []
        for i, r in enumerate(recipes):
            trial = self.run(r, name, against=None if self.unpruned(name, r) else incumbent)
            ran += [trial] if trial is not None else []
            if name == "augmentation" and self.settled(ran, incumbent):
                self.unneeded += [Skip(name, rest, SETTLED) for rest in recipes[i + 1:]]
                break
        done = [t for t in ran if t.complete]
        if not done:
            return incumbent, {"tried": 0, "pruned": len(ran), "adopted": False, "gain": 0.0, "route": None}
        default = self.default_route(done, incumbent) if name == "augmentation" else None
        best = default or max(done, key=lambda t: paired_gain(t, incumbent, metric)[0])
        gain, se = paired_gain(best, incumbent, metric, self.ratio)
        acc_gain, acc_se = paired_gain(best, incumbent, "accuracy", self.ratio)
        adopted = default is not None or self.beats(best, incumbent, min_gain, metric)
        record = {"tried": len(done), "pruned": len(ran) - len(done), "best": best.recipe.name, "metric": metric,
                  "gain": gain, "gain_se": se, "acc_gain": acc_gain, "acc_gain_se": acc_se, "adopted": adopted,
                  "route": ("default policy" if default is not None else "gain") if adopted else None}
        if default is not None:
            record["default"] = default.recipe.policy.name
        if not adopted and name == "semi" and self.semi_min_precision is not None:
            record.update(self.precision_gate(best, incumbent))
            adopted = record["adopted"]
        return (best if adopted else incumbent), record

    def unpruned(self, stage: str, recipe: Recipe) -> bool:
        """Whether `recipe` is a default policy that must run every fold (`prune_default` off).

        Why: a default is adopted unless its CV shows harm beyond z SE over all folds, and one fold
        cannot show that: on a Fashion-MNIST harness cell at 20 labels per class (~67 held-out images
        a fold) both defaults trailed real only by 6-7.5 points on the first fold, were pruned, and
        the search kept real only, while strong@p0.5 scored above real only on the dev split in all
        18 digits and Fashion-MNIST draws (benchmarks/results/aug_rule_check_*.md).
        """
        return (not self.prune_default and stage == "augmentation"
                and recipe.policy.name in default_names(self.default_policy))

    def settled(self, ran: Sequence[Trial], incumbent: Trial) -> bool:
        """Whether the augmentation stage's answer is decided before its other candidates run (`settle_default`).

        Why: a default policy adopted on no-harm evidence is adopted "whatever the other policies score", and
        without a pool nothing else reads their scores (with one, the runner-up is the pseudo-label source's
        second base), so running them only spent budget: on Fashion-MNIST at 20 labels per class the x4
        default's folds took 258-271 s of the 600 s and the three policies after it left the batch-mix trial
        "would not finish within the compute budget" (docs/recipe.md). Defaults run first, in order, so the
        answer is settled as soon as one of them has run to the end and shows no harm.
        """
        if not self.settle_default or self.has_pool:
            return False
        return self.default_route([t for t in ran if t.complete], incumbent) is not None

    def default_route(self, done: Sequence[Trial], incumbent: Trial) -> Trial | None:
        """The first default augmentation policy whose trial ran to the end and whose CV shows no harm.

        Why: at 2-50 labels per class the CV's paired gain is dominated by which few images are
        held out, so it ranks policies by noise (benchmarks/results/aug_rule_check_*.md: on the
        digits dev split strong augmentation gained on new images in draws where its CV gain was
        negative), while strong@p0.5 gained on dev in all 18 digits and Fashion-MNIST draws. A
        policy known to help on most data is adopted unless the CV shows harm beyond z SE (in the
        decision metric or in accuracy): that refuses what CV can see, e.g. every policy on one
        Fashion-MNIST draw at 5 labels per class. Several defaults are fallbacks in order: the
        next is asked only when the one before shows harm (a smoothed default refused on a draw
        where its plain policy is not). None: the gain rule decides, as without a default.
        """
        for name in default_names(self.default_policy):
            trial = next((t for t in done if t.recipe.policy.name == name), None)
            if trial is not None and no_harm(trial, incumbent, self.metric, self.ratio, self.z):
                return trial
        return None

    def precision_gate(self, semi: Trial, incumbent: Trial) -> dict[str, Any]:
        """Second route for consistency training when its CV gain is within the noise.

        Why: at 5-20 labels per class the held-out folds hold only a few errors of the model semi
        starts from (digits n = 10: real only scores ~98 % on its 99 held-out images), so a lever
        worth several points on new images often cannot clear one SE there. Consistency training
        trusts predictions above its threshold as labels; whether *those* are right is measured
        on the same held-out images by the incumbent's fold models. Adopt when that precision's
        Wilson lower bound reaches `semi_min_precision` and the CV shows no harm (gain >= -z SE in
        the decision metric and in accuracy). Digits and Fashion-MNIST dev splits:
        benchmarks/results/semi_gate_check_*.md.
        """
        prec = confident_precision(incumbent.confidence, incumbent.correct, semi.recipe.semi.threshold)
        opens = prec["lower"] >= self.semi_min_precision and len(incumbent.confidence) > 0
        ok = opens and no_harm(semi, incumbent, self.metric, self.ratio, self.z)
        return {"adopted": ok, "route": "precision gate" if ok else None,
                "gate": {**prec, "min_precision": self.semi_min_precision, "opens": opens}}

    def beats(self, challenger: Trial, incumbent: Trial, min_gain: float, metric: str | None = None) -> bool:
        return beats(challenger, incumbent, min_gain, metric or self.metric, self.ratio, self.z)


def _check(labelled: ImageSet, k_folds: int, metric: str = "brier", repeats: int = 1) -> str | None:
    if k_folds < 2:
        raise ConfigError(f"search k_folds must be >= 2, got {k_folds}")
    if metric not in METRICS:
        raise ConfigError(f"search.metric must be one of {METRICS}, got {metric!r}")
    if repeats < 1:
        raise ConfigError(f"search.repeats must be >= 1, got {repeats}")
    if int(labelled.class_counts().min()) < 2:
        return "fewer than 2 labelled images in some class: cross-validation cannot score any lever"
    if len(labelled) < k_folds:
        return f"{len(labelled)} labelled images cannot be split into {k_folds} folds"
    return None


def _best_policy(trials: Sequence[Trial], stage: str, incumbent: Trial, metric: str) -> Trial | None:
    """The best complete trial of `stage` if it is not the incumbent (a base worth stacking a source on)."""
    done = [t for t in trials if t.stage == stage and t.complete]
    best = max(done, key=lambda t: float(t.values(metric).mean()), default=None)
    return None if best is None or best is incumbent else best


def search_recipe(
    labelled: ImageSet,
    unlabelled: ImageSet | None = None,
    *,
    budget: SearchBudget | None = None,
    seed: int = 0,
    k_folds: int = 3,
    space: SearchSpace | None = None,
    train_cfg: TrainConfig | None = None,
    min_gain: float = 0.005,
    progress: bool = True,
    ssl_cfg: Any = None,
    metric: str = "brier",
    repeats: int = 1,
    z: float = 1.0,
    semi_min_precision: float | None = None,
    default_policy: str | Sequence[str] | None = None,
    batch_mix_metric: str | None = None,
    prune_default: bool = False,
    settle_default: bool = False,
) -> RecipeResult:
    """Search the lever space by k-fold CV inside `labelled`; the test set is never seen.

    Args:
        unlabelled: the pool (enables pseudo_label and SSL); None = strict protocol.
        budget: compute budget; "nothing" always runs, whatever the budget.
        train_cfg: classifier training inside folds; default: the final classifier's TrainConfig,
            so what the folds score is what `train_final` trains (augmentation needs the steps).
        min_gain: smallest mean gain in `metric` worth a lever (accuracy: 0.005 = half a point;
            Brier: 0.005 of a per-image score in [0, 2]).
        metric: decision metric: "brier" (default), "log_loss" or "accuracy".
        repeats: k-fold repeated with this many fold seeds (more folds, finer evidence, more cost).
        z: a gain must exceed z standard errors (1: ~20 % false adoptions with 3 folds; 2: stricter).
        semi_min_precision: when set, consistency training whose CV gain is within the noise is still
            adopted if the CV shows no harm and the held-out precision of the incumbent's confident
            predictions (Wilson lower bound, z = 1) reaches this (`_Search.precision_gate`); None: off.
        default_policy: a policy name `preset` reads (e.g. "strong@p0.5", "strong@p0.5+ls0.1"), tried first
            (added to the candidates if it is not one) and adopted whenever its CV shows no harm, whatever
            the other policies score (`_Search.default_route`); a list: fallbacks, each adopted only if
            those before it show harm; None: the gain rule picks the policy.
        batch_mix_metric: the batch-mix stage's decision metric (None: `metric`). "brier_t" reads the
            held-out Brier score after one temperature per recipe fitted on the other folds
            (`evidence.tempered_brier`); on the dev splits it decided as "brier" did (docs/recipe.md).
        prune_default: True: a default policy's trial is pruned after a fold like any other (the
            harness's earlier `auto` arms); False: it runs every fold (`_Search.unpruned`).
        settle_default: True: without a pool, once a default policy is adopted the other policy candidates
            are not run (listed in `RecipeResult.unneeded`): their scores cannot change the answer
            (`_Search.settled`); the budget goes to the stages after it.
    """
    started = time.perf_counter()
    budget, space = budget or SearchBudget(), space or SearchSpace()
    ctx = TrainContext(train_cfg=train_cfg or default_search_train(), ssl_cfg=ssl_cfg)
    problem = _check(labelled, k_folds, metric, repeats)
    if batch_mix_metric is not None and batch_mix_metric not in METRICS:
        raise ConfigError(f"search.batch_mix_metric must be one of {METRICS} or null, got {batch_mix_metric!r}")
    if semi_min_precision is not None and not 0.0 <= semi_min_precision <= 1.0:
        raise ConfigError(f"search.semi_min_precision must be in [0, 1] or null, got {semi_min_precision}")
    policies = _policy_candidates(labelled, space, seed, default_policy)
    if problem is not None:
        return _real_only(problem, k_folds, seed, ctx, started)
    folds, ratio = make_folds(labelled, k_folds, seed, repeats)
    s = _Search(labelled, unlabelled, folds, seed, ctx, budget, progress, metric=metric, test_train_ratio=ratio, z=z,
                semi_min_precision=semi_min_precision, default_policy=default_policy, prune_default=prune_default,
                settle_default=settle_default)
    nothing = s.run(Recipe(), "baseline", force=True)
    inc, contributions = _run_stages(s, nothing, space, policies, min_gain, batch_mix_metric)
    inc, route, beats_nothing = _hold_to_nothing(s, inc, nothing, contributions, min_gain)
    s.bar.close()
    reason = _route_reason(route, contributions, beats_nothing, _reason(inc, nothing, metric, ratio, k_folds, repeats),
                           inc.recipe)
    return RecipeResult(inc.recipe, s.trials, contributions, time.perf_counter() - started, k_folds, seed,
                        ctx.train_cfg, reason=reason,
                        skipped=s.skipped, metric=metric, repeats=repeats, test_train_ratio=ratio, unneeded=s.unneeded)


def _policy_candidates(labelled: ImageSet, space: SearchSpace, seed: int,
                       default_policy: str | Sequence[str] | None) -> list[Recipe]:
    """The augmentation stage's candidates, the default policies among them and first, in order: a spent
    budget then skips the other candidates, not them."""
    policies = policy_recipes(space, seed, max(32, labelled.image_shape[0]))
    defaults = default_names(default_policy)
    for name in defaults:
        if name not in [r.policy.name for r in policies]:  # e.g. strong@p0.5+ls0.1: a candidate too
            policies.append(Recipe(policy=named_policy(name, policies)))
    policies.sort(key=lambda r: defaults.index(r.policy.name) if r.policy.name in defaults else len(defaults))
    return policies


def _run_stages(s: _Search, nothing: Trial, space: SearchSpace, policies: Sequence[Recipe], min_gain: float,
                batch_mix_metric: str | None) -> tuple[Trial, dict[str, dict[str, Any]]]:
    """The greedy stages in order, each against the incumbent the one before left: (final incumbent,
    each stage's contribution)."""
    from generators.registry import available

    contributions: dict[str, dict[str, Any]] = {}
    inc, contributions["augmentation"] = s.stage("augmentation", nothing, policies, min_gain)
    if space.batch_mixes:
        inc, contributions["batch_mix"] = s.stage("batch_mix", inc, batch_mix_recipes(space, inc.recipe), min_gain,
                                                  batch_mix_metric)
    if space.semi and s.has_pool:  # before sources: when adopted it replaces them
        # consistency training has its own length (semi.steps), so the policy joins it without its `+x` scale
        semis = [Recipe(policy=inc.recipe.policy.with_steps(1.0), semi=c) for c in space.semi]
        inc, contributions["semi"] = s.stage("semi", inc, semis, min_gain)
    bases = [inc.recipe] if inc.recipe.semi is None else []
    runner_up = _best_policy(s.trials, "augmentation", inc, s.metric)
    if runner_up is not None and s.has_pool:  # pseudo-labels gain most with an augmented teacher
        bases.append(runner_up.recipe)
    srcs = source_recipes(space, bases, s.has_pool, available())
    inc, contributions["source"] = s.stage("source", inc, srcs, min_gain)
    inc, contributions["mix"] = s.stage("mix", inc, mix_recipes(space, inc.recipe), min_gain)
    ssl_ok = space.ssl if space.ssl is not None else (s.has_pool and _ssl_module_available())
    if ssl_ok and s.has_pool:
        inc, contributions["ssl"] = s.stage("ssl", inc, [inc.recipe.with_(ssl=True)], min_gain)
    return inc, contributions


def _hold_to_nothing(s: _Search, inc: Trial, nothing: Trial, contributions: dict[str, dict[str, Any]],
                     min_gain: float) -> tuple[Trial, str | None, bool]:
    """Each step beat its predecessor, but the chain must beat "nothing" too; a chain adopted on no-harm
    evidence (the precision gate or the default-policy route) is held to no harm against it instead.

    Returns (the answer, the route it was adopted by: "gate", "default" or None, whether it beats nothing).
    """
    gated = inc.recipe.semi is not None and contributions.get("semi", {}).get("route") == "precision gate"
    defaulted = contributions["augmentation"].get("route") == "default policy" and not gated
    route = "gate" if gated else "default" if defaulted else None
    beats_nothing = inc is not nothing and s.beats(inc, nothing, min_gain)
    if inc is not nothing and not (beats_nothing or (route and no_harm(inc, nothing, s.metric, s.ratio, s.z))):
        return nothing, None, False
    return inc, route, beats_nothing


def _route_reason(route: str | None, contributions: dict[str, dict[str, Any]], beats_nothing: bool, reason: str,
                  recipe: Recipe) -> str:
    """The summary's reason: the CV evidence against real only, prefixed by the route that adopted the
    recipe (synth.bench.decisions reads the prefixes) and followed by a batch mix's own evidence."""
    if route == "default":
        reason = f"{DEFAULT_REASON} ({contributions['augmentation']['default']}); " + (
            reason if beats_nothing else reason.replace("beats real only: ", "vs real only: "))
    mixed = contributions.get("batch_mix", {})
    if mixed.get("adopted") and recipe.policy.batch_mix is not None:
        reason += (f"; {recipe.policy.batch_mix} on top of the policy by the gain rule: {mixed['metric']} "
                   f"{mixed['gain']:+.4f} +- {mixed['gain_se']:.4f} over it")
    if route == "gate":
        g = contributions["semi"]["gate"]
        reason = (f"{GATE_REASON}: {g['correct']} of {g['kept']} held-out "
                  f"predictions at confidence >= {g['threshold']} were right (Wilson lower bound {g['lower']:.3f} >= "
                  f"{g['min_precision']}) and CV shows no harm; " + reason.replace("beats real only: ", "vs real only: "))
    return reason


def _reason(inc: Trial, nothing: Trial, metric: str, ratio: float | None, k: int, repeats: int) -> str:
    if inc is nothing:
        return f"real only: no lever beat it by more than the CV noise ({metric})"
    gain, se = paired_gain(inc, nothing, metric, ratio)
    acc, acc_se = paired_gain(inc, nothing, "accuracy", ratio)
    folds = f"{k}-fold" if repeats == 1 else f"{repeats}x{k}-fold"
    return (f"beats real only: {metric} {gain:+.4f} +- {se:.4f}, accuracy {100 * acc:+.1f} +- {100 * acc_se:.1f} "
            f"points (paired {folds} CV)")


def make_folds(labelled: ImageSet, k_folds: int, seed: int, repeats: int = 1) -> tuple[list[np.ndarray], float | None]:
    """k stratified folds per repeat (repeat r uses fold seed `seed + r`), and n_val/n_train when repeated."""
    folds = [f for r in range(repeats) for f in stratified_folds(labelled.labels, k_folds, seed + r)]
    return folds, (1.0 / (k_folds - 1) if repeats > 1 else None)


def evaluate_recipes(
    labelled: ImageSet, recipes: Sequence[Recipe], unlabelled: ImageSet | None = None, *, seed: int = 0,
    k_folds: int = 3, train_cfg: TrainConfig | None = None, min_gain: float = 0.005, metric: str = "brier",
    repeats: int = 1, baseline: Recipe | None = None,
) -> RecipeResult:
    """Score given recipes beside "nothing" (or `baseline`) on the same folds, no search: reruns a saved recipe.

    `baseline` replaces "nothing" as the trial every recipe is compared with (and `trials[0]`):
    e.g. an augmentation policy, to read its fold models' held-out predictions or to ask whether
    a lever helps on top of it; it is then the answer when no recipe beats it.
    """
    started = time.perf_counter()
    ctx = TrainContext(train_cfg=train_cfg or default_search_train())
    problem = _check(labelled, k_folds, metric, repeats)
    if problem is not None:
        return _real_only(problem, k_folds, seed, ctx, started)
    folds, ratio = make_folds(labelled, k_folds, seed, repeats)
    s = _Search(labelled, unlabelled, folds, seed, ctx, SearchBudget(None, None), False, metric=metric,
                test_train_ratio=ratio)
    base = baseline if baseline is not None else Recipe()
    first = s.run(base, "baseline", force=True)
    best, record = s.stage("rerun", first, list(recipes), min_gain)
    against = "real only" if base.is_nothing else base.name
    reason = "rerun of a saved recipe: " + (
        f"it beats {against}" if best is not first else f"it does not beat {against} here; {against} is used")
    return RecipeResult(best.recipe, s.trials, {"rerun": record}, time.perf_counter() - started, k_folds, seed,
                        ctx.train_cfg, reason=reason, metric=metric, repeats=repeats, test_train_ratio=ratio)


def default_search_train() -> TrainConfig:
    """Classifier training inside folds: the final classifier's TrainConfig.

    Why not a smaller one: with 300 steps and width 16 online augmentation scored -4 points in
    CV on digits while the final classifier gains ~2x labels from it (augmentation needs
    enough steps to pay off), so the small fold models biased the search towards "nothing".
    """
    return TrainConfig()


def _real_only(problem: str, k_folds: int, seed: int, ctx: TrainContext, started: float) -> RecipeResult:
    trial = Trial(Recipe(), "baseline", np.zeros(0), 0.0, complete=False, notes=[problem])
    return RecipeResult(Recipe(), [trial], {}, time.perf_counter() - started, k_folds, seed, ctx.train_cfg,
                        reason=f"real only: {problem}")


def _ssl_module_available() -> bool:
    try:
        from synth.ssl import train_encoder  # noqa: F401
    except ImportError:
        return False
    return True

__all__ = ["BUDGET_STOP", "DEFAULT_REASON", "GATE_REASON", "RecipeResult", "SearchBudget", "SearchSpace", "Skip", "Trial", "evaluate_recipes", "search_recipe"]
