"""Consistency training's restarts at the final fit (synth.semi.Restarts): the run kept is the one most
confident on the pool, run 0 is the single run, restarts stay off where they do not apply, the settings travel
through recipe.yaml, and bad values fail with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from synth.data import ImageSet, Splits
from synth.errors import ConfigError
from synth.recipe import Recipe, SearchSpace, load_restarts, preset, search_recipe, train_with, write_report
from synth.semi import RESTART_SEED_STRIDE, Restarts, SemiConfig, pool_confidence
from synth.training import TrainConfig

from .conftest import CONF

TINY_TRAIN = TrainConfig(steps=6, batch_size=8, width=4, hidden=16)
SEMI = Recipe(semi=SemiConfig(steps=6, unlabelled_ratio=2, threshold=0.0))


@pytest.fixture(scope="module")
def pool(digits_splits: Splits) -> ImageSet:
    return digits_splits.unlabelled.subset(np.arange(120))


@pytest.fixture
def result(digits_splits: Splits):
    """A search result answering "nothing" (no lever in its space); tests set its recipe."""
    labelled = digits_splits.labelled.subset(np.arange(40))
    return search_recipe(labelled, None, k_folds=2, train_cfg=TINY_TRAIN, progress=False,
                         space=SearchSpace(presets=(), n_random_policies=0, sources=(), ssl=False))


def weights(model: torch.nn.Module) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()]).numpy()


def test_restarts_keep_the_run_most_confident_on_the_pool(tiny_labelled, pool):
    restarts = Restarts(runs=3, max_labels=3)  # tiny_labelled: 3 per class
    kept = train_with(SEMI, tiny_labelled, pool, seed=7, cfg=TINY_TRAIN, restarts=restarts)
    info = kept.semi_info["restarts"]
    runs = [train_with(SEMI, tiny_labelled, pool, seed=s, cfg=TINY_TRAIN) for s in restarts.seeds(7)]
    assert restarts.seeds(7) == [7, 7 + RESTART_SEED_STRIDE, 7 + 2 * RESTART_SEED_STRIDE]  # run 0: the single run
    confidence = [pool_confidence(m, pool) for m in runs]
    assert info["pool_confidence"] == [round(c, 6) for c in confidence]
    assert len(set(info["pool_confidence"])) == 3  # the runs differ, so the choice is a real one
    assert info["picked"] == int(np.argmax(confidence)) and info["runs"] == 3
    np.testing.assert_array_equal(weights(kept), weights(runs[info["picked"]]))


def test_restarts_are_off_above_max_labels_without_semi_and_without_a_pool(tiny_labelled, pool):
    one = train_with(SEMI, tiny_labelled, pool, seed=0, cfg=TINY_TRAIN)
    above = train_with(SEMI, tiny_labelled, pool, seed=0, cfg=TINY_TRAIN, restarts=Restarts(runs=3, max_labels=2))
    np.testing.assert_array_equal(weights(above), weights(one))
    assert "restarts" not in above.semi_info
    aug = Recipe(policy=preset("light"))
    plain = train_with(aug, tiny_labelled, None, seed=0, cfg=TINY_TRAIN)
    asked = train_with(aug, tiny_labelled, pool, seed=0, cfg=TINY_TRAIN, restarts=Restarts(runs=3, max_labels=9))
    np.testing.assert_array_equal(weights(asked), weights(plain))


def test_restarts_apply_by_the_smallest_class(tiny_labelled):
    r = Restarts(runs=2, max_labels=2)
    assert not r.applies(tiny_labelled)  # 3 in every class
    drop = np.flatnonzero(tiny_labelled.labels == 4)[:1]
    fewer = tiny_labelled.subset(np.setdiff1d(np.arange(len(tiny_labelled)), drop))
    assert r.applies(fewer)  # one class down to 2
    empty = tiny_labelled.subset(np.flatnonzero(tiny_labelled.labels != 4))
    assert r.applies(empty)  # a class with none is the smallest of all
    assert not Restarts(runs=1, max_labels=9).applies(fewer) and not Restarts().applies(fewer)


@pytest.mark.parametrize("bad, match", [
    ({"runs": 0}, "runs must be an integer >= 1"),
    ({"runs": True}, "runs must be an integer >= 1"),
    ({"runs": 2.5}, "runs must be an integer >= 1"),
    ({"max_labels": -1}, "max_labels must be an integer >= 0"),
    ({"runs": 3, "max_label": 3}, r"unknown key\(s\) \['max_label'\]"),
    ([5, 3], "null or a mapping"),
])
def test_bad_restarts_settings_name_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        Restarts.from_dict(bad)


def test_restarts_travel_through_recipe_yaml_only_with_consistency_training(result, tmp_path):
    on = Restarts(runs=5, max_labels=3)
    assert Restarts.from_dict(OmegaConf.create({"runs": 5, "max_labels": 3})) == on
    plain = write_report(result, tmp_path / "plain", restarts=on)["yaml"]  # "nothing": no semi, nothing to restart
    assert "semi_restarts" not in plain.read_text() and load_restarts(plain) == Restarts()
    result.recipe = SEMI
    with_semi = write_report(result, tmp_path / "semi", restarts=on)["yaml"]
    assert load_restarts(with_semi) == on and "restarts=synth.recipe.load_restarts(path)" in with_semi.read_text()
    with pytest.raises(ConfigError, match="does not exist"):
        load_restarts(tmp_path / "missing.yaml")


def test_recommend_says_when_the_final_fit_restarts(result, tiny_labelled):
    from synth.commands.recommend import restarts_line

    on = Restarts(runs=5, max_labels=3)
    assert restarts_line(result, on, tiny_labelled) is None  # "nothing": no consistency training to restart
    result.recipe = SEMI
    line = restarts_line(result, on, tiny_labelled)
    assert line.startswith("final fit:") and "trained 5x" in line and "restarts=load_restarts(p)" in line
    assert restarts_line(result, Restarts(runs=5, max_labels=2), tiny_labelled) is None  # 3 per class: above the limit


def test_recommend_ships_restarts_and_the_bench_arm_measures_the_same():
    from synth.recipe.bench_arm import arm_params

    recommend = OmegaConf.load(CONF / "recommend.yaml").search
    shipped = Restarts.from_dict(recommend.semi_restarts)
    assert shipped.runs > 1
    base = OmegaConf.load(CONF / "bench" / "base.yaml")
    gate = OmegaConf.to_container(base.arms["auto_gate"], resolve=True)
    arm = arm_params("auto_gate_restarts", OmegaConf.to_container(base.arms["auto_gate_restarts"], resolve=True))
    assert {k: (v, arm[k]) for k, v in gate.items() if arm[k] != v} == {"semi_restarts": (None, vars(shipped))}


def test_recommend_refuses_bad_restarts_before_searching(tmp_path):
    from hydra import compose, initialize_config_dir

    from synth.commands.recommend import run

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("recommend", overrides=["search.semi_restarts={runs: 0, max_labels: 2}", "progress=false",
                                              f"out_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="semi_restarts.runs must be an integer >= 1"):
        run(cfg)
    assert not any(tmp_path.iterdir())  # nothing searched, nothing written
