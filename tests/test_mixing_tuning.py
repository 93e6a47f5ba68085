"""Ratio tuning by CV inside the budget, and `synth train` (train / cv / tune modes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from synth.data import ImageSet
from synth.errors import ConfigError, DataError
from synth.mixing import from_imageset
from synth.mixing.tuning import Candidate, candidates, tune_mix
from synth.training import TrainConfig
from tests.conftest import CONF

TOY = TrainConfig(steps=50, batch_size=32, width=8, hidden=32)


@pytest.fixture(scope="module")
def toy(digits_source, digits_splits):
    """5 labelled digits per class, plus 400 other pool digits as a synthetic set whose
    labels are either true (clean, helpful: more data) or shifted by one (harmful)."""
    ls = digits_splits.labelled
    labelled = ls.subset(np.concatenate([np.flatnonzero(ls.labels == c)[:5] for c in range(10)]))
    pool = digits_source.pool
    extra = pool.subset(np.flatnonzero(~np.isin(pool.ids, ls.ids))[:400])
    wrong = ImageSet(extra.images, (extra.labels + 1) % 10, extra.ids, extra.class_names)
    return labelled, from_imageset(extra), from_imageset(wrong)


def test_tuner_finds_known_best_ratio(toy):
    labelled, clean, wrong = toy
    good = tune_mix(labelled, clean, ratios=[0, 1], k=2, train_cfg=TOY, progress=False)
    bad = tune_mix(labelled, wrong, ratios=[0, 1], k=2, train_cfg=TOY, progress=False)
    assert good.best == Candidate(1.0), good.table
    assert bad.best == Candidate(0.0), bad.table
    assert bad.table[0]["cv_accuracy"] > bad.table[1]["cv_accuracy"] + 0.2  # wrong labels hurt a lot
    assert len(good.table[0]["folds"]) == 2 and good.n_labelled == 50


def test_nothing_is_always_a_candidate():
    grid = candidates([0.5, 2.0], [None, 0.3], [True])
    assert grid[0] == Candidate(0.0, None, False)  # simplest first: wins ties
    assert Candidate(0.5, 0.3, True) in grid and len(grid) == 5
    with pytest.raises(ConfigError, match="tune.ratios"):
        candidates([-1.0])


def test_validation_images_variations_are_dropped(toy):
    labelled, clean, _ = toy
    parents = np.resize(labelled.ids, len(clean))
    syn = from_imageset(clean.images, parent_ids=parents)
    kept = syn.without_parents(labelled.ids[:5])
    assert len(kept) == len(syn) - int(np.isin(parents, labelled.ids[:5]).sum())
    assert not np.isin(kept.parent_ids, labelled.ids[:5]).any()


def test_unknown_score_column_is_a_clear_error(toy):
    labelled, clean, _ = toy
    with pytest.raises(DataError, match="no score column 'score_bogus'"):
        tune_mix(labelled, clean, ratios=[1], quantiles=[0.5], quantile_column="score_bogus", k=2, train_cfg=TOY)


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[
            "trainer=tiny", "budget.n_per_class=4", "cv.k=2", "progress=false", f"out_dir={tmp_path}",
            "data.max_test=50", *overrides,
        ])


def test_synth_train_modes(tmp_path):
    from synth.commands.train import run

    test_acc = run(_cfg(tmp_path, "mixer=real_only"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] == test_acc and metrics["n_labelled"] == 40
    cv = run(_cfg(tmp_path, "mode=cv", "mixer=augment_only"))
    assert 0.0 <= cv <= 1.0 and json.loads((tmp_path / "metrics.json").read_text())["cv_accuracy"] == cv
    best = run(_cfg(tmp_path, "mode=tune", "tune.ratios=[0]"))
    tuning = json.loads((tmp_path / "metrics.json").read_text())["tuning"]
    assert {(c["ratio"], c["augment"]) for c in tuning["candidates"]} == {(0.0, False), (0.0, True)}
    assert best == tuning["best_cv_accuracy"]


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["mixer.ratio=-1"], ConfigError, "mixer.ratio"),
        (["mixer.ratio=null", "mixer.probability=1.2"], ConfigError, "mixer.probability"),
        (["mixer.ratio=1"], ConfigError, "`synthetic`"),
        (["mode=bogus"], ConfigError, "mode"),
    ],
)
def test_synth_train_bad_values(tmp_path, overrides, error, match):
    from synth.commands.train import run

    with pytest.raises(error, match=match):
        run(_cfg(tmp_path, *overrides))


def test_synth_train_reads_synthetic_folder(tmp_path, digits_splits):
    from synth.commands.train import run
    from tests.conftest import write_image_folder

    ls = digits_splits.labelled
    write_image_folder(tmp_path / "syn", ls.images[:30], ls.labels[:30], ls.class_names)
    acc = run(_cfg(tmp_path / "out", f"synthetic={tmp_path / 'syn'}", "mixer=half"))
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n_synthetic"] == 30 and 0 <= acc <= 1
    with pytest.raises(DataError, match="no score column"):
        run(_cfg(tmp_path / "out", f"synthetic={tmp_path / 'syn'}", "mixer=half", "mixer.weight_column=score_realism"))
