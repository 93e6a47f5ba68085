"""Augmentation applied to a share of draws (AugPolicy.prob): behaviour, serialisation, search space."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from synth.errors import ConfigError
from synth.recipe import AugPolicy, Recipe, SearchSpace, train_with
from synth.recipe.bench_arm import search_settings
from synth.recipe.candidates import policy_recipes
from synth.recipe.policy import Sometimes
from synth.seeding import rng_for
from synth.training import TrainConfig, accuracy
from tests.conftest import CONF

#: Label-destroying augmentation: shifting by 90 % of the frame blanks the image.
BLANK = AugPolicy("blank", ({"name": "Affine", "translate_percent": [0.9, 0.9], "p": 1.0},), working_size=16)
SMALL_TRAIN = TrainConfig(steps=100, batch_size=32, width=8, hidden=32)


def _blanked(policy: AugPolicy, image: np.ndarray, draws: int = 200) -> np.ndarray:
    augment = policy.build()
    return np.array([not np.array_equal(augment(image, rng_for(0, 1, i)), image) for i in range(draws)])


def test_prob_applies_the_policy_to_that_share_of_draws(digits_splits):
    image = digits_splits.labelled.images[0]
    assert _blanked(BLANK, image).all()
    half = BLANK.with_prob(0.5)
    changed = _blanked(half, image)
    assert 0.35 < changed.mean() < 0.65
    assert np.array_equal(changed, _blanked(half, image))  # deterministic per draw rng
    assert isinstance(half.build(), Sometimes) and not isinstance(BLANK.build(), Sometimes)
    assert BLANK.with_prob(0.25).with_prob(1.0).name == "blank" and half.name == "blank@p0.5"


def test_prob_round_trips_and_old_dicts_still_load():
    half = BLANK.with_prob(0.25)
    d = Recipe(policy=half).to_dict()
    assert d["policy"]["prob"] == 0.25
    assert Recipe.from_dict(d).policy == half
    old = Recipe(policy=BLANK).to_dict()
    assert "prob" not in old["policy"]  # a recipe written before prob existed serialises unchanged
    assert Recipe.from_dict(old).policy.prob == 1.0
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ConfigError, match="prob"):
            BLANK.with_prob(bad)


def test_resample_is_recorded_and_a_recipe_written_before_it_reads_as_bilinear(digits_splits):
    """A saved recipe must rebuild the augmenter it was scored with: old files had the bilinear round trip."""
    d = Recipe(policy=BLANK.with_prob(0.5)).to_dict()
    assert d["policy"]["resample"] == "exact" and Recipe.from_dict(d).policy.resample == "exact"
    old = {k: v for k, v in d["policy"].items() if k != "resample"}
    legacy = Recipe.from_dict({**d, "policy": old}).policy
    assert legacy.resample == "bilinear" and legacy.with_prob(1.0).resample == "bilinear"
    assert legacy.build().augment.to_dict()["resample"] == "bilinear"
    image = digits_splits.labelled.images[0]
    untouched = AugPolicy("untouched", ({"name": "GaussNoise", "p": 0.0},))
    assert np.array_equal(untouched.build()(image, rng_for(0, 1)), image)
    assert not np.array_equal(AugPolicy.from_dict({**untouched.to_dict(), "resample": "bilinear"}).build()(
        image, rng_for(0, 1)), image)
    with pytest.raises(ConfigError, match="resample must be one of"):
        AugPolicy("x", resample="cubic")


def test_training_with_a_share_of_clean_draws_keeps_the_label_signal(small_labelled):
    always = train_with(Recipe(policy=BLANK), small_labelled, seed=0, cfg=SMALL_TRAIN)
    sometimes = train_with(Recipe(policy=BLANK.with_prob(0.5)), small_labelled, seed=0, cfg=SMALL_TRAIN)
    assert accuracy(sometimes, small_labelled) > accuracy(always, small_labelled) + 0.3


def test_search_space_tries_every_draw_presets_first_then_the_shares():
    space = SearchSpace(presets=("light", "strong"), aug_probs=(0.5, 1.0), n_random_policies=0)
    names = [r.policy.name for r in policy_recipes(space, seed=0, working_size=32)]
    assert names == ["light", "strong", "light@p0.5", "strong@p0.5"]
    assert [r.policy.name for r in policy_recipes(SearchSpace(presets=("light",), aug_probs=(), n_random_policies=0),
                                              0, 32)] == ["light"]


def test_a_preset_that_names_its_share_is_tried_at_that_share_only():
    """`strong@p0.5` listed as a preset must not bring `strong` on every draw back in (stop 51: the stack's
    half-share presets were re-shared to p = 1 by the search)."""
    def names(*presets):
        return [r.policy.name for r in policy_recipes(SearchSpace(presets=presets, n_random_policies=0), 0, 32)]

    assert names("light@p0.5", "strong@p0.5") == ["light@p0.5", "strong@p0.5"]
    assert names("strong", "strong@p0.5") == ["strong", "strong@p0.5"]  # not twice
    assert names("strong@p0.5+ls0.1", "light") == ["strong@p0.5+ls0.1", "light", "light@p0.5"]


def test_bench_arm_passes_aug_probs_and_z():
    auto = OmegaConf.to_container(OmegaConf.load(CONF / "bench" / "base.yaml").arms.auto)
    s = search_settings({**auto, "aug_probs": [0.25, 0.5], "z": 2.0}, TrainConfig())
    assert s["space"].aug_probs == (0.25, 0.5) and s["z"] == 2.0 and s["repeats"] == auto["repeats"]


@pytest.fixture(scope="module")
def small_labelled(digits_splits):
    ls = digits_splits.labelled
    keep = np.concatenate([np.flatnonzero(ls.labels == c)[:4] for c in range(ls.n_classes)])
    return ls.subset(keep)


def test_pruning_margin_is_at_least_three_images_of_the_smallest_fold(small_labelled):
    from synth.recipe.recipe import TrainContext
    from synth.recipe.search import SearchBudget, _Search, make_folds

    folds, _ = make_folds(small_labelled, 3, seed=0)  # 40 images -> folds of 13-14
    s = _Search(small_labelled, None, folds, 0, TrainContext(SMALL_TRAIN), SearchBudget(), False)
    assert s.prune_margin == pytest.approx(3.0 / min(len(f) for f in folds))
    big = [np.arange(100), np.arange(100, 200)]
    assert _Search(small_labelled, None, big, 0, TrainContext(SMALL_TRAIN), SearchBudget(), False).prune_margin == 0.05


def test_a_source_built_on_a_policy_augments_with_its_round_trip():
    """Offline variations and the pseudo-label teacher must use the policy's resample, or an old recipe re-scores
    with a different augmenter than it was chosen with."""
    from generators.procedural import ProceduralGenerator
    from generators.pseudo_label import PseudoLabelGenerator
    from synth.recipe.candidates import sources_on

    old = AugPolicy.from_dict({"name": "old", "ops": [{"name": "GaussNoise", "p": 1.0}], "backend": "torch"})
    (src,) = sources_on(SearchSpace(sources=("procedural",)), Recipe(policy=old), False, ["procedural"])
    assert src.source_config["resample"] == "bilinear"
    assert ProceduralGenerator(**src.source_config).augmenter.to_dict()["resample"] == "bilinear"
    teacher = PseudoLabelGenerator(augment_ops=list(old.ops), resample=old.resample)
    assert teacher.augmenter.to_dict()["resample"] == "bilinear" and teacher.config["resample"] == "bilinear"
