"""Recipe search: never worse than real only, finds a lever that clearly helps, reruns its YAML."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from generators.base import Generator, Samples
from synth.data import DigitsSource, ImageSet
from synth.errors import ConfigError
from synth.recipe import (
    AugPolicy,
    Recipe,
    SearchBudget,
    SearchSpace,
    Trial,
    evaluate_recipes,
    load_recipe,
    preset,
    rand_policy,
    search_recipe,
    train_with,
    write_report,
)
from synth.semi import SemiConfig
from synth.training import TrainConfig, accuracy
from tests.conftest import CONF

TINY_TRAIN = TrainConfig(steps=60, batch_size=32, width=8, hidden=32)
#: Enough steps that the tiny model's probabilities mean something (the Brier decision needs them).
SMALL_TRAIN = TrainConfig(steps=100, batch_size=32, width=8, hidden=32)
#: Label-destroying augmentation: shifting by 90 % of the frame blanks every training image.
BLANK = AugPolicy("blank", ({"name": "Affine", "translate_percent": [0.9, 0.9], "p": 1.0},), working_size=16)
NO_LEVERS = dict(presets=(), n_random_policies=0, sources=(), ssl=False)


class TruthGenerator(Generator):
    """A source that clearly helps: correctly labelled extra real digits (looked up by pool id)."""

    name = "truth_for_tests"
    uses_unlabelled = True

    def _fit(self, labelled, unlabelled):
        truth = DigitsSource(test_size=500).pool
        by_id = dict(zip(truth.ids, truth.labels, strict=True))
        self._images, self._ids = unlabelled.images, unlabelled.ids
        self._labels = np.array([by_id[i] for i in unlabelled.ids])
        return {}

    def _sample(self, labels, seeds):
        picks = [np.random.default_rng(int(s)).choice(np.flatnonzero(self._labels == c)) for c, s in
                 zip(labels, seeds, strict=True)]
        return Samples(self._images[picks], labels.copy(), self._ids[picks].astype(object))


@pytest.fixture
def truth_source(monkeypatch):
    """Register the helpful source for one test only (the contract tests iterate the registry)."""
    from generators import registry

    monkeypatch.setitem(registry._REGISTRY, TruthGenerator.name, "tests.test_recipe:TruthGenerator")


@pytest.fixture(scope="module")
def small(digits_splits) -> ImageSet:
    ls = digits_splits.labelled  # 10 per class
    keep = np.concatenate([np.flatnonzero(ls.labels == c)[:4] for c in range(ls.n_classes)])
    return ls.subset(keep)


def test_nothing_is_chosen_when_every_lever_hurts(small):
    space = SearchSpace(**{**NO_LEVERS, "extra_policies": (BLANK,)})
    result = search_recipe(small, None, seed=0, k_folds=2, space=space, train_cfg=TINY_TRAIN, progress=False)
    names = [t.recipe.name for t in result.trials]
    assert names == ["nothing", "aug=blank"]
    assert result.recipe.is_nothing
    assert result.trials[1].mean < result.trials[0].mean - 0.1
    assert result.contributions["augmentation"]["adopted"] is False
    assert "real only" in result.reason


def test_a_clearly_helpful_source_is_chosen(small, digits_splits, truth_source):
    pool = digits_splits.unlabelled.subset(np.arange(400))
    space = SearchSpace(**{**NO_LEVERS, "sources": ("truth_for_tests",), "shares": (0.75,), "filter_quantiles": ()})
    result = search_recipe(small, pool, seed=0, k_folds=2, space=space, train_cfg=SMALL_TRAIN, progress=False)
    assert result.metric == "brier"
    assert result.recipe.source == "truth_for_tests", [t.to_dict(result.baseline) for t in result.trials]
    rec = result.contributions["source"]
    assert rec["adopted"] and rec["gain"] > rec["gain_se"] and rec["acc_gain"] > 0.05
    model = result.train_final(small, pool, seed=0, cfg=TINY_TRAIN)
    assert accuracy(model, digits_splits.test) > 0.5


def test_budget_limits_trials_but_nothing_always_runs(small):
    space = SearchSpace(**{**NO_LEVERS, "extra_policies": (BLANK, rand_policy(["noise"], 0.2, working_size=16))})
    result = search_recipe(small, None, budget=SearchBudget(max_trials=1, max_seconds=None), k_folds=2,
                           space=space, train_cfg=TINY_TRAIN, progress=False)
    assert [t.recipe.name for t in result.trials] == ["nothing"]
    assert len(result.skipped) == 2 and result.recipe.is_nothing


def test_summary_names_what_the_budget_cut(small):
    """The printed summary says which recipes the budget skipped or stopped, per lever, and how to score them."""
    from synth.commands.recommend import budget_cuts, budget_to_score, summary
    from synth.recipe.search import BUDGET_STOP

    noise = rand_policy(["noise"], 0.2, working_size=16)
    space = SearchSpace(**{**NO_LEVERS, "extra_policies": (BLANK, noise)})
    result = search_recipe(small, None, budget=SearchBudget(max_trials=1, max_seconds=None), k_folds=2,
                           space=space, train_cfg=TINY_TRAIN, progress=False)
    names = [f"aug={BLANK.name} (skipped)", f"aug={noise.name} (skipped)"]
    assert budget_cuts(result) == {"augmentation": names}
    text = summary(result)
    assert f"augmentation  not scored: cut by the compute budget ({', '.join(names)})" in text
    assert "cut by the compute budget: 2 recipe(s) not scored to the end" in text
    # ...and by how much to raise the budget: each skipped policy priced on the one complete trial ("nothing")
    assert [s.seconds for s in result.skipped] == [round(result.trials[0].seconds, 1)] * 2
    trials, seconds = budget_to_score(result)
    assert trials == 3 and seconds >= result.seconds + sum(s.seconds for s in result.skipped) and seconds % 10 == 0
    assert f"Scoring them needs search.max_trials >= 3 and search.max_seconds ~{seconds} " in text
    # a trial stopped mid-way by the wall clock is named too; one pruned for trailing is not a budget cut
    semi = Recipe(semi=SemiConfig())
    result.trials.append(Trial(semi, "semi", np.array([1.0]), 9.0, complete=False,
                               notes=[BUDGET_STOP]))
    result.trials.append(Trial(Recipe(policy=noise), "source", np.array([0.1]), 1.0, complete=False,
                               notes=["pruned after 1 fold(s): trails nothing"]))
    assert budget_cuts(result)["semi"] == [f"{semi.name} (stopped after 1 fold(s))"]
    result.seconds = 0.0  # a stopped trial adds its missing folds at its own pace: 1 of 2 at 9 s
    assert budget_to_score(result) == (5, int(math.ceil((sum(s.seconds for s in result.skipped) + 9.0) / 10) * 10))
    assert "source" not in budget_cuts(result)
    result.contributions["semi"] = {"tried": 0, "pruned": 1, "adopted": False, "gain": 0.0, "route": None}
    assert f"semi          not scored: cut by the compute budget ({semi.name} (stopped after 1 fold(s)))" in summary(result)
    assert summary(search_recipe(small, None, budget=SearchBudget(None, None), k_folds=2, space=SearchSpace(**NO_LEVERS),
                                 train_cfg=TINY_TRAIN, progress=False)).count("compute budget") == 0


def test_a_trial_expected_to_end_past_the_wall_clock_budget_is_not_started(small):
    """A stage's next candidate is skipped when a complete trial of that stage took longer than what is left."""
    from synth.recipe.recipe import TrainContext
    from synth.recipe.search import _Search, make_folds

    folds, _ = make_folds(small, 2, 0)
    s = _Search(small, None, folds, 0, TrainContext(train_cfg=TINY_TRAIN), SearchBudget(None, 100.0), False)
    s.trials.append(Trial(Recipe(), "baseline", np.array([0.9, 0.9]), seconds=5.0))
    s.trials.append(Trial(Recipe(semi=SemiConfig()), "semi", np.array([0.9, 0.9]), seconds=250.0))
    assert s.out_of_budget("semi") == "would not finish within the compute budget: ~250 s per semi trial"
    assert s.out_of_budget("augmentation") is None
    assert s.run(Recipe(semi=SemiConfig(weak="none")), "semi") is None
    assert [str(k) for k in s.skipped] == [
        "semi: semi(weak=none) (would not finish within the compute budget: ~250 s per semi trial)"]
    assert s.skipped[0].stage == "semi" and s.skipped[0].recipe.semi == SemiConfig(weak="none")
    assert s.skipped[0].seconds == 250.0  # what a bigger budget must cover to score it (recommend's summary)
    s.trials[1].seconds = 5.0  # a cheap stage fits in what is left
    assert s.out_of_budget("semi") is None
    # a stage's first trial: not started when even the cheapest trial so far would end past the budget
    s.started = time.perf_counter() - 97.0
    assert s.out_of_budget("source") == "would not finish within the compute budget: ~5 s expected for its first source trial"
    s.started = time.perf_counter() - 90.0
    assert s.out_of_budget("source") is None
    # ... priced by its cost: a consistency-training step trains 1 + 2 x 3 batches (steps as the folds': 60)
    tiny_semi = Recipe(semi=SemiConfig(steps=60))
    assert s.pricer.cost_factor(tiny_semi) == 7.0 and s.pricer.cost_factor(Recipe()) == 1.0
    assert s.pricer.cost_factor(Recipe(policy=preset("strong@p0.5+ls0.1+x4"))) == 4.0  # a policy trained 4x as long
    assert s.out_of_budget("ssl", tiny_semi) == "would not finish within the compute budget: ~35 s expected for its first ssl trial"
    assert s.expected_seconds("ssl", tiny_semi) == (35.0, "~35 s expected for its first ssl trial")
    s.budget = SearchBudget(None, None)
    s.trials[1].seconds = 1e9
    assert s.out_of_budget("semi") is None  # no wall-clock budget: nothing to overrun


def test_a_consistency_training_trial_is_priced_by_timing_a_few_of_its_steps(small, digits_splits):
    """With a pool, a semi stage's first trial is priced on PROBE_STEPS timed steps, not a fixed factor.

    Why: the factor (7x a supervised trial) was 3x too low at 28 px, so semi trials started, ran one fold
    past the budget and were stopped, counting for nothing."""
    from synth.recipe.pricing import PRETRAIN_KEY, PROBE_STEPS
    from synth.recipe.recipe import TrainContext
    from synth.recipe.search import _Search, make_folds

    folds, _ = make_folds(small, 2, 0)
    pool = digits_splits.unlabelled.subset(np.arange(64))
    s = _Search(small, pool, folds, 0, TrainContext(train_cfg=TINY_TRAIN), SearchBudget(None, 1e6), False)
    s.trials.append(Trial(Recipe(), "baseline", np.array([0.9, 0.9]), seconds=5.0))
    semi = Recipe(semi=SemiConfig(steps=600, weak="none"))
    guess, what = s.expected_seconds("semi", semi)
    assert what == f"~{guess:.0f} s expected for its first semi trial (timed on {PROBE_STEPS} steps)"
    assert guess == s.pricer.step_seconds[semi.name] * 600 * len(folds) > 0 and len(s.trials) == 1  # the probe is no trial
    assert guess < 5.0 * s.pricer.cost_factor(semi)  # the factor's 350 s: a tiny model's steps are far cheaper
    assert s.expected_seconds("semi", semi)[0] == guess and len(s.pricer.step_seconds) == 1  # timed once per recipe
    s.budget = SearchBudget(None, 2 * guess)  # the factor would skip it; the timed steps fit
    assert s.out_of_budget("semi", semi) is None
    s.budget = SearchBudget(None, guess / 2)
    assert s.out_of_budget("semi", semi) == f"would not finish within the compute budget: {what}"
    assert s.run(semi, "semi") is None and s.skipped[0].seconds == round(guess, 1)
    assert s.expected_seconds("augmentation", Recipe(policy=BLANK))[0] == 5.0  # supervised trials: as before
    # SSL init on top: the semi probe times its steps alone, and the encoder's pretraining (300 steps) is priced
    # on 8 timed steps of its own, once, without keeping an encoder
    with_ssl = semi.with_(ssl=True)
    guess, what = s.expected_seconds("ssl", with_ssl)
    steps = s.pricer.step_seconds
    assert sorted(steps) == sorted([semi.name, PRETRAIN_KEY])  # the semi steps' timing is reused, not redone
    assert guess == pytest.approx(steps[semi.name] * 600 * len(folds) + steps[PRETRAIN_KEY] * 300)
    assert what.endswith(f"(timed on {PROBE_STEPS} steps)") and s.ctx.encoder is None
    s.ctx.encoder = object()  # once an encoder is trained, later SSL trials do not pay for it
    assert s.expected_seconds("ssl", with_ssl)[0] == pytest.approx(steps[semi.name] * 600 * len(folds))


def test_one_label_per_class_falls_back_to_real_only(small):
    one = small.subset([np.flatnonzero(small.labels == c)[0] for c in range(small.n_classes)])
    result = search_recipe(one, None, k_folds=3, train_cfg=TINY_TRAIN, progress=False)
    assert result.recipe.is_nothing and "cross-validat" in result.reason


def test_report_yaml_reruns_and_json_holds_the_evidence(small, tmp_path):
    space = SearchSpace(**{**NO_LEVERS, "extra_policies": (BLANK,)})
    result = search_recipe(small, None, k_folds=2, space=space, train_cfg=TINY_TRAIN, progress=False)
    result.recipe = Recipe(policy=BLANK)  # write a non-trivial recipe to prove the round trip
    paths = write_report(result, tmp_path, {"overrides": "data=digits"})
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    evidence = json.loads(paths["json"].read_text())
    assert [c["name"] for c in evidence["candidates"]] == ["nothing", "aug=blank"]
    assert evidence["candidates"][1]["gain_vs_nothing"] < 0
    loaded = load_recipe(paths["yaml"])
    assert loaded.to_dict() == Recipe(policy=BLANK).to_dict()
    rerun = evaluate_recipes(small, [loaded], k_folds=2, train_cfg=TINY_TRAIN)
    assert rerun.recipe.is_nothing  # the blanking recipe does not beat real only when re-scored
    assert np.allclose(rerun.trials[1].scores, result.trials[1].scores)  # same folds and seeds
    blanked = train_with(loaded, small, seed=0, cfg=TINY_TRAIN)
    assert accuracy(blanked, small) < 0.5  # the loaded recipe really trains with its (label-destroying) policy


def test_recommend_command_writes_a_recipe_that_reruns(tmp_path, capsys):
    from synth.commands.recommend import run

    common = ["budget.n_per_class=3", "train.steps=30", "train.width=8", "train.hidden=16", "search.k_folds=2",
              "search.presets=[]", "search.n_random_policies=1", "search.sources=[]", "search.ssl=false",
              "search.semi=null", "max_unlabelled=50", "progress=false", f"out_dir={tmp_path}/a"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        first = run(compose("recommend", overrides=common))
        out = capsys.readouterr().out
        assert "recipe:" in out and "CV estimate:" in out and "augmentation" in out
        again = run(compose("recommend", overrides=[*common[:-1], f"recipe={tmp_path}/a/recipe.yaml",
                                                    f"out_dir={tmp_path}/b"]))
    assert [t.stage for t in again.trials] == ["baseline", "rerun"][: len(again.trials)]
    assert again.trials[0].scores.tolist() == first.trials[0].scores.tolist()
    assert (tmp_path / "b" / "recipe.png").is_file()


def test_recommend_config_passes_aug_probs_semi_and_batch_mixes_to_the_search_space(tmp_path, monkeypatch):
    from synth.commands import recommend

    class Searched(Exception):
        """Stops the command once the search is called: only its SearchSpace is under test."""

    spaces = []

    floors, defaults, prunes = [], [], []

    def fake_search(*args, space: SearchSpace, **kwargs):
        spaces.append(space)
        floors.append(kwargs["semi_min_precision"])
        defaults.append(kwargs["default_policy"])
        prunes.append((kwargs["prune_default"], kwargs["batch_mix_metric"]))
        raise Searched

    monkeypatch.setattr(recommend, "search_recipe", fake_search)
    recommend_default = tuple(OmegaConf.load(CONF / "recommend.yaml").search.default_policy)
    common = ["budget.n_per_class=3", "max_unlabelled=50", "progress=false", f"out_dir={tmp_path}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        default = compose("recommend", overrides=common)
        assert list(default.search.aug_probs) == [0.5]  # the yaml keeps the search's earlier default
        with pytest.raises(Searched):
            recommend.run(compose("recommend", overrides=[*common, "search.aug_probs=[0.25,0.75]"]))
        assert spaces[-1].aug_probs == (0.25, 0.75)
        with pytest.raises(Searched):
            recommend.run(compose("recommend", overrides=[*common, "search.aug_probs=[]"]))
        assert spaces[-1].aug_probs == ()
        with pytest.raises(ConfigError, match=r"search.aug_probs must be shares of draws in \(0, 1\]"):
            recommend.run(compose("recommend", overrides=[*common, "search.aug_probs=[1.5]"]))
        # consistency training: on by default with the shipped settings, off with null, typos refused
        assert [(c.weak, c.steps, c.align) for c in spaces[0].semi] == [("light", 600, True), ("none", 600, True)]
        with pytest.raises(Searched):
            recommend.run(compose("recommend", overrides=[*common, "search.semi=null"]))
        assert spaces[-1].semi == ()
        with pytest.raises(Searched):
            recommend.run(compose("recommend", overrides=[*common, "search.semi=[{steps: 5}]"]))
        assert spaces[-1].semi == (SemiConfig(steps=5),)
        with pytest.raises(ConfigError, match="unknown key"):
            recommend.run(compose("recommend", overrides=[*common, "search.semi=[{treshold: 0.9}]"]))
        with pytest.raises(ConfigError, match="listed twice"):
            recommend.run(compose("recommend", overrides=[*common, "search.semi=[{steps: 5},{steps: 5}]"]))
        # the semi precision gate: on at the shipped floor, off with null
        with pytest.raises(Searched):
            recommend.run(compose("recommend", overrides=[*common, "search.semi_min_precision=null"]))
        # the default augmentation policy: without a pool only, unless asked for with one too
        for extra in (["use_unlabelled=false"], ["search.default_policy_with_pool=true"],
                      ["use_unlabelled=false", "search.default_policy=null"]):
            with pytest.raises(Searched):
                recommend.run(compose("recommend", overrides=[*common, *extra]))
    assert len(spaces) == 8 and floors == [0.95, 0.95, 0.95, 0.95, None, 0.95, 0.95, 0.95]
    assert defaults == [None] * 5 + [recommend_default] * 2 + [None]  # the first 5 ran with a pool
    # the batch-mix stage follows the same rule as the default policy: without a pool, or with one when asked
    assert [s.batch_mixes for s in spaces] == [()] * 5 + [("mixup",)] * 3
    assert prunes == [(False, None)] * 8  # the defaults run every fold; the stage decides on the search's metric


def test_bad_recipe_input(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown recipe key"):
        Recipe.from_dict({"colour": "blue"})
    with pytest.raises(ConfigError, match="filter_quantile"):
        Recipe(filter_quantile=1.5)
    with pytest.raises(ConfigError, match="unknown augmentation op"):
        rand_policy(["teleport"], 0.5)


def test_a_policy_name_the_search_prints_builds_that_policy():
    half = preset("strong").with_prob(0.5)
    assert half.name == "strong@p0.5" and preset(half.name) == half  # same ops, share and name
    assert preset("light@p1").name == "light" and preset("light@p1").prob == 1.0
    with pytest.raises(ConfigError, match="expected <preset>@p<share>"):
        preset("strong@phalf")
    with pytest.raises(ConfigError, match="prob must be in"):
        preset("strong@p1.5")
    with pytest.raises(ConfigError, match="unknown augmentation preset"):
        preset("sparkle@p0.5")


def test_evaluate_recipes_against_another_baseline(small):
    """A policy as the baseline: its fold models' held-out predictions come back, and a recipe is
    judged against it (here "nothing" against a label-destroying policy: nothing wins)."""
    res = evaluate_recipes(small, [Recipe()], k_folds=2, train_cfg=TINY_TRAIN, baseline=Recipe(policy=BLANK))
    base, rerun = res.trials
    assert base.recipe.policy == BLANK and rerun.recipe.is_nothing
    assert len(base.confidence) == len(base.correct) == len(small)  # every labelled image held out once
    assert base.correct.mean() < rerun.correct.mean()
    assert res.recipe.is_nothing and "beats aug=blank" in res.reason
    plain = evaluate_recipes(small, [], k_folds=2, train_cfg=TINY_TRAIN)
    assert np.allclose(plain.trials[0].scores, rerun.scores)  # same folds and seeds as the default baseline


def test_a_win_on_one_fold_only_is_noise():
    from synth.recipe.evidence import beats

    base = Trial(Recipe(), "baseline", np.array([0.97, 0.94, 1.0]), 0.0)
    one_fold = Trial(Recipe(policy=BLANK), "x", np.array([0.97, 0.97, 1.0]), 0.0)  # mean gain == SE
    every_fold = Trial(Recipe(policy=BLANK), "x", np.array([0.99, 0.97, 1.01]), 0.0)
    assert not beats(one_fold, base, 0.005)
    assert beats(every_fold, base, 0.005)


def test_brier_sees_a_gain_that_accuracy_cannot():
    """Same accuracy on every fold, but the challenger's probabilities are better on every fold."""
    from synth.recipe.evidence import beats

    base = Trial(Recipe(), "baseline", np.array([0.97, 0.97, 1.0]), 0.0, brier=np.array([0.08, 0.07, 0.05]))
    sharper = Trial(Recipe(policy=BLANK), "x", np.array([0.97, 0.97, 1.0]), 0.0, brier=np.array([0.05, 0.05, 0.03]))
    assert not beats(sharper, base, 0.005, "accuracy")
    assert beats(sharper, base, 0.005, "brier")
    assert not beats(sharper, base, 0.005, "brier", z=10.0)  # gain 0.023 +- 0.0033 is 7 SE, not 10
    # better calibrated but clearly less accurate: not adopted ("never worse" in accuracy too)
    worse = Trial(Recipe(policy=BLANK), "x", np.array([0.90, 0.91, 0.92]), 0.0, brier=np.array([0.05, 0.05, 0.03]))
    assert not beats(worse, base, 0.005, "brier")


def test_fold_metrics_and_repeated_folds(small):
    from synth.recipe.evidence import fold_metrics, paired_gain
    from synth.recipe.search import make_folds

    model = train_with(Recipe(), small, seed=0, cfg=TINY_TRAIN)
    acc, brier, loss = fold_metrics(model, small)
    assert acc == accuracy(model, small) and 0.0 <= brier <= 2.0 and loss > 0.0
    folds, ratio = make_folds(small, 2, seed=0, repeats=3)
    assert len(folds) == 6 and ratio == 1.0
    for r in range(3):  # each repeat is a partition of the labelled set
        assert sorted(np.concatenate(folds[2 * r: 2 * r + 2]).tolist()) == list(range(len(small)))
    assert not np.array_equal(folds[0], folds[2])
    a = Trial(Recipe(policy=BLANK), "x", np.array([0.9, 0.8, 0.85, 0.9, 0.8, 0.9]), 0.0)
    b = Trial(Recipe(), "baseline", np.array([0.8, 0.8, 0.8, 0.8, 0.8, 0.8]), 0.0)
    (g, se_plain), (g2, se_nb) = paired_gain(a, b), paired_gain(a, b, "accuracy", ratio)
    assert g == g2 and se_nb > 2 * se_plain  # overlapping folds: the corrected SE is much wider
    with pytest.raises(ConfigError, match="search.metric"):
        search_recipe(small, None, metric="f1", train_cfg=TINY_TRAIN, progress=False)


def test_semi_recipe_serialises_only_when_on_and_excludes_a_source(tmp_path):
    from synth.semi import SemiConfig

    semi = Recipe(policy=BLANK, semi=SemiConfig(steps=5))
    assert semi.name == "aug=blank + semi(steps=5)" and not semi.is_nothing
    assert Recipe(semi=SemiConfig()).name == "semi" and Recipe(semi=SemiConfig(weak="none")).name == "semi(weak=none)"
    assert Recipe.from_dict(semi.to_dict()) == semi
    assert "semi" not in Recipe().to_dict()  # recipes written before the lever serialise (and reload) unchanged
    assert Recipe.from_dict(Recipe().to_dict()).semi is None
    with pytest.raises(ConfigError, match="semi"):
        Recipe(source="pseudo_label", synthetic_share=None, semi=SemiConfig())
    # semi trains for semi.steps: a policy's training length beside it would be silently ignored, so it is refused
    with pytest.raises(ConfigError, match=r"'strong@p0.5\+ls0.1\+x4'.*semi.steps"):
        Recipe(policy=preset("strong@p0.5+ls0.1+x4"), semi=SemiConfig())
    assert Recipe(policy=preset("strong@p0.5+ls0.1"), semi=SemiConfig()).policy.smoothing == 0.1  # the rest joins it


def test_search_tries_semi_only_with_a_pool_and_trains_what_it_scored(small, digits_splits):
    from synth.errors import DataError
    from synth.semi import SemiConfig

    tiny = SemiConfig(steps=None, unlabelled_ratio=1, threshold=0.5)  # the folds' 60 steps
    pool = digits_splits.unlabelled.subset(np.arange(100))
    space = SearchSpace(**{**NO_LEVERS, "semi": tiny})
    with_pool = search_recipe(small, pool, k_folds=2, space=space, train_cfg=TINY_TRAIN, progress=False)
    assert with_pool.contributions["semi"]["tried"] == 1
    assert [t.recipe.name for t in with_pool.trials] == ["nothing", "semi(steps=None,unlabelled_ratio=1,threshold=0.5)"]
    assert with_pool.trials[1].recipe.semi == tiny and with_pool.trials[1].complete
    strict = search_recipe(small, None, k_folds=2, space=space, train_cfg=TINY_TRAIN, progress=False)
    assert "semi" not in strict.contributions and len(strict.trials) == 1
    with pytest.raises(DataError, match="unlabelled pool"):
        train_with(Recipe(semi=tiny), small, None, cfg=TINY_TRAIN)
    model = train_with(Recipe(semi=tiny), small, pool, cfg=TINY_TRAIN)
    assert model.semi_info["steps"] == TINY_TRAIN.steps and model.semi_info["pool"] == 100
