"""The recipe search's second routes for levers whose CV gain is noise: the semi precision gate and the
default augmentation policy."""

from __future__ import annotations

import numpy as np
import pytest

from synth.data import ImageSet
from synth.errors import ConfigError
from synth.recipe import AugPolicy, Recipe, SearchBudget, SearchSpace, search_recipe
from synth.recipe.candidates import default_names
from synth.recipe.evidence import Trial, confident_precision, no_harm, wilson_lower
from synth.recipe.recipe import TrainContext
from synth.recipe.search import DEFAULT_REASON, _Search, make_folds
from synth.semi import SemiConfig
from tests.test_recipe import BLANK, NO_LEVERS, SMALL_TRAIN


@pytest.fixture(scope="module")
def small(digits_splits) -> ImageSet:
    """4 labelled digits per class."""
    ls = digits_splits.labelled
    return ls.subset(np.concatenate([np.flatnonzero(ls.labels == c)[:4] for c in range(ls.n_classes)]))


SEMI = Recipe(semi=SemiConfig(steps=20, unlabelled_ratio=1, threshold=0.9))


def _incumbent(kept_right: int, kept_wrong: int, unsure: int = 10) -> Trial:
    """"nothing" with held-out predictions: `kept_*` at confidence 0.97, `unsure` at 0.5."""
    conf = np.r_[np.full(kept_right + kept_wrong, 0.97), np.full(unsure, 0.5)]
    right = np.r_[np.ones(kept_right, bool), np.zeros(kept_wrong, bool), np.ones(unsure, bool)]
    return Trial(Recipe(), "baseline", np.array([0.9, 0.9, 0.95]), 0.0, brier=np.array([0.10, 0.12, 0.08]),
                 confidence=conf, correct=right)


def _semi(brier: list[float], acc: list[float]) -> Trial:
    return Trial(SEMI, "semi", np.array(acc), 0.0, brier=np.array(brier))


def test_confident_precision_counts_only_predictions_at_or_above_the_threshold():
    p = confident_precision(np.array([0.99, 0.95, 0.94, 0.5]), np.array([True, False, True, True]), 0.95)
    assert (p["kept"], p["correct"], p["precision"]) == (2, 1, 0.5)
    assert p["lower"] == pytest.approx(wilson_lower(1, 2)) and p["lower"] < 0.5
    assert confident_precision(np.zeros(3), np.ones(3, bool), 0.9)["kept"] == 0
    assert wilson_lower(40, 40) > 0.97 > wilson_lower(39, 40) > 0.9 > wilson_lower(30, 40)


def test_no_harm_rejects_a_loss_beyond_its_noise_in_the_metric_or_in_accuracy():
    base = _incumbent(40, 0)
    assert no_harm(_semi([0.11, 0.11, 0.09], [0.9, 0.9, 0.95]), base, "brier")  # within the noise
    assert not no_harm(_semi([0.13, 0.15, 0.11], [0.9, 0.9, 0.95]), base, "brier")  # worse on every fold
    assert not no_harm(_semi([0.10, 0.12, 0.08], [0.85, 0.86, 0.9]), base, "brier")  # same Brier, lost accuracy
    assert not no_harm(Trial(SEMI, "semi", np.array([0.9]), 0.0, complete=False), base, "brier")


@pytest.mark.parametrize(("right", "wrong", "brier", "adopted"), [
    (40, 0, [0.11, 0.11, 0.09], True),    # precise confident predictions, gain within the noise: adopt
    (39, 1, [0.11, 0.11, 0.09], True),    # 39 / 40: Wilson lower bound 0.94 >= 0.9
    (30, 10, [0.11, 0.11, 0.09], False),  # 75 % precise: the gate stays shut
    (40, 0, [0.13, 0.15, 0.11], False),   # precise, but the CV shows harm
    (5, 0, [0.11, 0.11, 0.09], False),    # 5 / 5 right is too few to bound precision above 0.9
])
def test_the_precision_gate_needs_precise_confident_predictions_and_no_harm(small, right, wrong, brier, adopted):
    folds, _ = make_folds(small, 3, 0)
    s = _Search(small, None, folds, 0, TrainContext(train_cfg=SMALL_TRAIN), SearchBudget(None, None), False,
                metric="brier", semi_min_precision=0.9)
    g = s.precision_gate(_semi(brier, [0.9, 0.9, 0.95]), _incumbent(right, wrong))
    assert g["adopted"] is adopted and g["route"] == ("precision gate" if adopted else None)
    assert (g["gate"]["kept"], g["gate"]["correct"], g["gate"]["threshold"]) == (right + wrong, right, 0.9)


def test_search_routes_semi_through_the_gate_and_says_so(small, digits_splits):
    """Wiring: the same trials with the gate off, shut (floor 1.0) and open (floor 0: no-harm alone decides).

    Here semi's CV gain is far inside its noise (-0.03 +- 0.09 Brier on 4-image-per-class folds), so
    the gain route declines it and only the gate can adopt it.
    """
    semi = SemiConfig(steps=100, unlabelled_ratio=1, threshold=0.9)
    pool = digits_splits.unlabelled.subset(np.arange(200))
    kw = dict(budget=SearchBudget(None, None), k_folds=3, space=SearchSpace(**NO_LEVERS, semi=(semi,)),
              train_cfg=SMALL_TRAIN, progress=False)
    off, shut, open_ = (search_recipe(small, pool, semi_min_precision=f, **kw) for f in (None, 1.0, 0.0))
    assert [t.brier.tolist() for t in off.trials] == [t.brier.tolist() for t in open_.trials]  # same evidence
    assert off.contributions["semi"]["route"] is None and "gate" not in off.contributions["semi"]
    assert off.recipe.is_nothing and shut.recipe.is_nothing
    assert shut.contributions["semi"]["gate"]["opens"] is False
    g = open_.contributions["semi"]
    assert g["route"] == "precision gate" and g["adopted"] and g["gate"]["kept"] == len(open_.trials[0].confidence[
        open_.trials[0].confidence >= 0.9])
    assert open_.recipe.semi == semi and "adopted by the precision gate" in open_.reason
    from synth.commands.recommend import summary

    assert "(adopted by the precision gate, 1 tried)" in summary(open_)
    assert "(not adopted, 1 tried)" in summary(shut)
    with pytest.raises(ConfigError, match="semi_min_precision"):
        search_recipe(small, pool, semi_min_precision=1.5, **kw)


# ------------------------------------------------------------------ default augmentation policy
def _policy_trial(name: str, brier: list[float], acc: list[float]) -> Trial:
    return Trial(Recipe(policy=BLANK.with_prob(0.5) if name.endswith("@p0.5") else BLANK), "augmentation",
                 np.array(acc), 0.0, brier=np.array(brier))


@pytest.mark.parametrize(("brier", "acc", "adopted"), [
    ([0.11, 0.11, 0.09], [0.9, 0.9, 0.95], True),    # gain within the noise: the default is adopted
    ([0.13, 0.15, 0.11], [0.9, 0.9, 0.95], False),   # worse Brier on every fold: harm, not adopted
    ([0.10, 0.12, 0.08], [0.85, 0.86, 0.9], False),  # same Brier, lost accuracy: harm
])
def test_the_default_policy_is_adopted_unless_its_cv_shows_harm(small, brier, acc, adopted):
    folds, _ = make_folds(small, 3, 0)
    s = _Search(small, None, folds, 0, TrainContext(train_cfg=SMALL_TRAIN), SearchBudget(None, None), False,
                metric="brier", default_policy="blank@p0.5")
    default, other = _policy_trial("blank@p0.5", brier, acc), _policy_trial("blank", [0.0, 0.0, 0.0], [1, 1, 1])
    assert (s.default_route([other, default], _incumbent(40, 0)) is default) is adopted
    assert s.default_route([other], _incumbent(40, 0)) is None  # the default did not run (or was pruned)
    s.default_policy = None
    assert s.default_route([other, default], _incumbent(40, 0)) is None


def test_default_policies_are_fallbacks_in_order(small):
    """The second default is adopted only where the first shows harm; a harmless first wins even if the
    second scores better."""
    folds, _ = make_folds(small, 3, 0)
    first = Trial(Recipe(policy=BLANK.with_loss(smoothing=0.1)), "augmentation", np.array([0.9, 0.9, 0.95]), 0.0,
                  brier=np.array([0.11, 0.11, 0.09]))
    second = _policy_trial("blank", [0.0, 0.0, 0.0], [1, 1, 1])
    harmful = Trial(first.recipe, "augmentation", np.array([0.85, 0.86, 0.9]), 0.0, brier=np.array([0.13, 0.15, 0.11]))
    s = _Search(small, None, folds, 0, TrainContext(train_cfg=SMALL_TRAIN), SearchBudget(None, None), False,
                metric="brier", default_policy=["blank+ls0.1", "blank"])
    assert s.default_route([second, first], _incumbent(40, 0)) is first
    assert s.default_route([second, harmful], _incumbent(40, 0)) is second
    assert s.default_route([harmful], _incumbent(40, 0)) is None
    for bad in ([], ["blank", "blank"]):
        with pytest.raises(ConfigError, match="default_policy"):
            default_names(bad)


def test_search_adopts_a_harmless_default_policy_and_never_a_harmful_one(small):
    """Wiring on real trials: `quiet` is BLANK on a 1e-9 share of draws, i.e. never applied, so its folds
    are real only's exactly (gain 0: the gain rule declines it, no harm: the default route adopts it);
    BLANK itself destroys the labels, so as the default it is refused and the gain rule decides."""
    quiet = BLANK.with_prob(1e-9)
    kw = dict(budget=SearchBudget(None, None), k_folds=3, space=SearchSpace(**{**NO_LEVERS, "extra_policies": (
        BLANK, quiet)}), train_cfg=SMALL_TRAIN, progress=False)
    off, on, harmful = (search_recipe(small, None, default_policy=d, **kw) for d in (None, quiet.name, "blank"))
    by_name = [{t.recipe.name: t.brier.tolist() for t in r.trials} for r in (off, on)]
    assert by_name[0] == by_name[1]  # same evidence...
    assert on.trials[1].recipe.policy == quiet  # ...but the default runs first (a spent budget never skips it)
    assert np.array_equal(off.trials[0].brier, off.trials[2].brier)  # quiet's folds are real only's
    assert off.recipe.is_nothing and harmful.recipe.is_nothing
    assert harmful.contributions["augmentation"]["route"] is None
    aug = on.contributions["augmentation"]
    assert on.recipe.policy == quiet and aug["route"] == "default policy" and aug["best"] == f"aug={quiet.name}"
    assert on.reason.startswith(DEFAULT_REASON)
    from synth.commands.recommend import summary

    assert "(adopted as the default policy (CV: no harm), 1 tried)" in summary(on)  # BLANK was pruned
    # a default that is not among the candidates (e.g. one with batch mixing) is added to them and runs first
    added = search_recipe(small, None, default_policy="blank+ls0.1", **kw)
    assert added.trials[1].recipe.policy.name == "blank+ls0.1" and added.trials[1].recipe.policy.smoothing == 0.1
    assert len(added.trials) == len(off.trials) + 1
    with pytest.raises(ConfigError, match="unknown augmentation preset"):
        search_recipe(small, None, default_policy="strongest@p0.5", **kw)
    # fallbacks: BLANK (harmful) is asked first and refused, then quiet is adopted by the same route
    fallback = search_recipe(small, None, default_policy=["blank", quiet.name], **kw)
    assert [t.recipe.policy.name for t in fallback.trials[1:3]] == ["blank", quiet.name]  # both run first, in order
    assert fallback.recipe.policy == quiet and fallback.contributions["augmentation"]["default"] == quiet.name
    assert fallback.reason.startswith(f"{DEFAULT_REASON} ({quiet.name})")


# ------------------------------------------------------------------ batch-mix stage
def test_the_batch_mix_stage_tries_mixup_on_the_adopted_policy_and_adopts_it_only_by_the_gain_rule(small):
    """One trial: the adopted default with mixup, its label smoothing kept; the stage's record and the answer
    follow the gain rule over the adopted policy (a huge min_gain refuses it); no policy: nothing to mix."""
    from synth.recipe.evidence import beats

    quiet = BLANK.with_prob(1e-9).with_loss(smoothing=0.1)
    space = {**NO_LEVERS, "extra_policies": (quiet,), "batch_mixes": ("mixup",)}
    kw = dict(budget=SearchBudget(None, None), k_folds=3, train_cfg=SMALL_TRAIN, progress=False,
              default_policy=quiet.name)
    res = search_recipe(small, None, space=SearchSpace(**space), **kw)
    default, mixed = res.trials[1], res.trials[-1]
    assert default.recipe.policy == quiet and mixed.stage == "batch_mix" and len(res.trials) == 3
    assert mixed.recipe.policy.name == "blank@p1e-09+mixup+ls0.1"
    assert (mixed.recipe.policy.batch_mix, mixed.recipe.policy.smoothing, mixed.recipe.policy.ops) == (
        "mixup", 0.1, quiet.ops)
    record, wins = res.contributions["batch_mix"], beats(mixed, default, 0.005, "brier")
    assert record["tried"] == 1 and record["adopted"] is wins and record["route"] == ("gain" if wins else None)
    assert res.recipe.policy == (mixed.recipe.policy if wins else quiet)
    assert ("mixup on top of the policy by the gain rule" in res.reason) is wins
    refused = search_recipe(small, None, space=SearchSpace(**space), min_gain=10.0, **kw)
    assert refused.recipe.policy == quiet and not refused.contributions["batch_mix"]["adopted"]
    plain = search_recipe(small, None, space=SearchSpace(**{**space, "batch_mixes": ()}), **kw)
    assert "batch_mix" not in plain.contributions and len(plain.trials) == 2
    bare = search_recipe(small, None, space=SearchSpace(**{**space, "extra_policies": ()}), **{
        **kw, "default_policy": None})
    assert bare.contributions["batch_mix"]["tried"] == 0 and len(bare.trials) == 1  # real only: nothing to mix


def test_search_space_refuses_an_unknown_batch_mix():
    with pytest.raises(ConfigError, match="search.batch_mixes: unknown batch mix 'mixin'"):
        SearchSpace(batch_mixes=("mixin",))


# ------------------------------------------------------------------ tempered Brier (the batch-mix stage's metric)
def _calibrated_folds(rng: np.random.Generator, k: int = 3, n: int = 300, classes: int = 5):
    """Per fold, probabilities and labels drawn from them: a calibrated model (its best temperature ~1)."""
    proba, labels = [], []
    for _ in range(k):
        logits = rng.normal(0, 2.5, (n, classes))
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        proba.append(p)
        labels.append(np.array([rng.choice(classes, p=row) for row in p]))
    return proba, labels


def test_temper_keeps_the_predicted_class_and_softens_or_sharpens():
    from synth.recipe.evidence import temper

    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    soft, sharp = temper(p, 2.0), temper(p, 0.5)
    assert np.allclose(temper(p, 1.0), p) and np.allclose(soft.sum(1), 1.0) and np.allclose(sharp.sum(1), 1.0)
    assert (soft.argmax(1) == p.argmax(1)).all() and (sharp.argmax(1) == p.argmax(1)).all()
    assert (soft.max(1) < p.max(1)).all() and (sharp.max(1) > p.max(1)).all()


def test_tempered_brier_forgives_an_underconfident_model_that_plain_brier_charges():
    """The same predictions with their logits halved (a model as right, less sure): the plain Brier decision
    calls it worse, the tempered one scores it the same on every fold (temperature 2 is on the grid)."""
    from synth.recipe.evidence import beats, paired_gain, temper

    proba, labels = _calibrated_folds(np.random.default_rng(0))
    base = _scored(Recipe(), proba, labels)
    soft = _scored(Recipe(policy=BLANK), [temper(p, 2.0) for p in proba], labels)
    assert paired_gain(soft, base, "brier")[0] < -0.01 and not beats(soft, base, 0.005, "brier")
    assert np.allclose(soft.values("brier_t"), base.values("brier_t"), atol=1e-9)
    assert (soft.values("brier_t") > soft.values("brier")).all()  # the tempering recovered what softening cost


def test_tempered_brier_fits_each_folds_temperature_on_the_other_folds_only():
    from synth.recipe.evidence import _brier, fit_temperature, temper, tempered_brier

    proba, labels = _calibrated_folds(np.random.default_rng(1))
    scores = tempered_brier(proba, labels)
    for i in range(3):
        others = [j for j in range(3) if j != i]
        t = fit_temperature(np.concatenate([proba[j] for j in others]), np.concatenate([labels[j] for j in others]))
        assert scores[i] == pytest.approx(_brier(temper(proba[i], t), labels[i]))
    overconfident = [temper(p, 0.5) for p in proba]  # sharpened x2: the fitted temperature undoes it
    assert fit_temperature(np.concatenate(overconfident), np.concatenate(labels)) > 1.4
    lone = tempered_brier(proba[:1], labels[:1])  # a pruned trial: no other fold, temperature 1
    assert lone[0] == pytest.approx(_brier(proba[0], labels[0]))


def _scored(recipe: Recipe, proba, labels) -> Trial:
    from synth.recipe.evidence import proba_metrics

    m = np.array([proba_metrics(p, y) for p, y in zip(proba, labels, strict=True)])
    return Trial(recipe, "x", m[:, 0], 0.0, brier=m[:, 1], log_loss=m[:, 2], held_proba=list(proba),
                 held_labels=list(labels))


def test_the_batch_mix_stage_decides_on_its_own_metric_when_set(small):
    from synth.recipe.evidence import beats

    quiet = BLANK.with_prob(1e-9).with_loss(smoothing=0.1)
    space = SearchSpace(**{**NO_LEVERS, "extra_policies": (quiet,), "batch_mixes": ("mixup",)})
    kw = dict(budget=SearchBudget(None, None), k_folds=3, train_cfg=SMALL_TRAIN, progress=False,
              default_policy=quiet.name)
    res = search_recipe(small, None, space=space, batch_mix_metric="brier_t", **kw)
    default, mixed = res.trials[1], res.trials[-1]
    record, wins = res.contributions["batch_mix"], beats(mixed, default, 0.005, "brier_t")
    assert record["metric"] == "brier_t" and res.contributions["augmentation"]["metric"] == "brier"
    assert record["adopted"] is wins and res.recipe.policy == (mixed.recipe.policy if wins else quiet)
    assert all(len(t.held_proba) == 3 and len(t.confidence) == len(small) for t in res.trials)
    with pytest.raises(ConfigError, match="search.batch_mix_metric must be one of"):
        search_recipe(small, None, space=space, batch_mix_metric="brierr", **kw)


def test_a_default_policy_runs_every_fold_unless_prune_default(small):
    """A default is judged by no harm over all folds, so with prune_default off it is not pruned after the first
    fold (here a label-destroying default: every fold runs, then no harm refuses it); other candidates still are."""
    other = AugPolicy("blank2", BLANK.ops, working_size=16)
    space = SearchSpace(**{**NO_LEVERS, "extra_policies": (BLANK, other)})
    kw = dict(budget=SearchBudget(None, None), k_folds=3, train_cfg=SMALL_TRAIN, progress=False,
              default_policy=BLANK.name)
    full = search_recipe(small, None, space=space, prune_default=False, **kw)
    pruned = search_recipe(small, None, space=space, prune_default=True, **kw)
    folds = [{t.recipe.policy.name: len(t.scores) for t in res.trials[1:]} for res in (full, pruned)]
    assert folds == [{"blank": 3, "blank2": 1}, {"blank": 1, "blank2": 1}]
    assert full.recipe.is_nothing and pruned.recipe.is_nothing  # the whole-CV evidence shows harm: refused
    assert full.trials[0].scores.tolist() == pruned.trials[0].scores.tolist()  # same folds, same baseline


def test_a_longer_default_keeps_its_length_under_batch_mixing_and_leaves_it_to_semi_steps(small, digits_splits):
    """A default policy that trains 2x the steps (`+x2`) is tried at that length, the batch-mix stage keeps it,
    and the semi candidates take the policy at its own length: consistency training has its own `semi.steps`."""
    quiet = BLANK.with_prob(1e-9)
    longer = quiet.with_loss(smoothing=0.1, steps_scale=2.0)
    semi = SemiConfig(steps=20, unlabelled_ratio=1, threshold=0.9)
    space = SearchSpace(**{**NO_LEVERS, "extra_policies": (quiet,), "batch_mixes": ("mixup",), "semi": (semi,)})
    res = search_recipe(small, digits_splits.unlabelled.subset(np.arange(100)), space=space,
                        budget=SearchBudget(None, None), k_folds=3, train_cfg=SMALL_TRAIN, progress=False,
                        default_policy=longer.name)
    by_stage: dict = {}
    for t in res.trials:  # each stage's first trial: the default runs first in its stage
        by_stage.setdefault(t.stage, t.recipe.policy)
    assert by_stage["augmentation"] == longer and longer.name == f"{quiet.name}+ls0.1+x2"
    assert by_stage["batch_mix"].steps_scale == 2.0 and by_stage["batch_mix"].batch_mix == "mixup"
    assert by_stage["semi"].steps_scale == 1.0 and by_stage["semi"].smoothing == 0.1


def test_once_a_default_is_adopted_settle_default_runs_no_other_policy_without_a_pool(small, digits_splits):
    """The default route adopts a harmless default whatever the other policies score, so with `settle_default`
    they are not run (listed as not needed, not as cut by the budget): same answer and same evidence for what
    ran, fewer trials. A harmful first default is not settled on: its fallback runs next. With a pool the
    runner-up policy is the pseudo-label source's second base, so every policy still runs."""
    from synth.commands.recommend import budget_cuts, summary
    from synth.recipe.search import SETTLED

    quiet, other = BLANK.with_prob(1e-9), AugPolicy("blank2", BLANK.ops, working_size=16)
    space = SearchSpace(**{**NO_LEVERS, "extra_policies": (BLANK, other, quiet)})
    kw = dict(budget=SearchBudget(None, None), k_folds=3, space=space, train_cfg=SMALL_TRAIN, progress=False,
              default_policy=quiet.name, prune_default=False)
    full, settled = (search_recipe(small, None, settle_default=s, **kw) for s in (False, True))
    assert [t.recipe.policy.name for t in settled.trials] == ["none", quiet.name]
    assert len(full.trials) == 4 and settled.recipe == full.recipe and settled.recipe.policy == quiet
    assert [t.brier.tolist() for t in settled.trials] == [t.brier.tolist() for t in full.trials[:2]]
    assert [(k.stage, k.recipe.policy.name, k.why) for k in settled.unneeded] == [
        ("augmentation", "blank", SETTLED), ("augmentation", "blank2", SETTLED)]
    assert settled.skipped == [] and budget_cuts(settled) == {} and full.unneeded == []
    assert "1 tried, 2 not needed after it)" in summary(settled) and "cut by the compute budget" not in summary(settled)
    assert settled.to_dict()["unneeded"] == [str(k) for k in settled.unneeded] and "unneeded" not in full.to_dict()
    # a harmful first default settles nothing: its fallback (quiet) is asked next, then the rest is not needed
    chain = search_recipe(small, None, settle_default=True, **{**kw, "default_policy": ["blank", quiet.name]})
    assert [t.recipe.policy.name for t in chain.trials] == ["none", "blank", quiet.name]
    assert chain.recipe.policy == quiet and [k.recipe.policy.name for k in chain.unneeded] == ["blank2"]
    # with a pool every policy runs
    pooled = search_recipe(small, digits_splits.unlabelled.subset(np.arange(50)), settle_default=True, **kw)
    assert len(pooled.trials) == 4 and pooled.unneeded == []
