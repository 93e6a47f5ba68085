"""Pseudo-label source: only pool ids come out, and it switches itself off when labels are unreliable."""

from __future__ import annotations

import numpy as np
import pytest

from generators import Generator
from generators.pseudo_label import PseudoLabelGenerator, PseudoLabelsDisabled
from synth.data import ImageSet
from synth.errors import ConfigError, DataError

FAST = dict(k_folds=2, steps=120, batch_size=32, width=8, hidden=32)


@pytest.fixture(scope="module")
def pool(digits_splits) -> ImageSet:
    return digits_splits.unlabelled.subset(np.arange(300))


@pytest.fixture(scope="module")
def fitted(tiny_labelled, pool) -> PseudoLabelGenerator:
    return PseudoLabelGenerator(threshold=0.6, min_precision=0.5, **FAST).fit(tiny_labelled, pool)


def test_samples_come_only_from_the_pool(fitted, tiny_labelled, pool, digits_splits):
    assert fitted.active, fitted.fit_info
    classes = np.flatnonzero(fitted.kept_counts > 0)
    assert len(classes) >= 8, fitted.fit_info
    out = fitted.sample(labels=np.repeat(classes, 20), seed=1)
    ids = set(out.parent_ids)
    assert ids <= set(pool.ids)
    assert not ids & set(tiny_labelled.ids)
    assert not ids & set(digits_splits.test.ids)
    # every sample is its parent pool image, unchanged, with the predicted label
    by_id = {i: k for k, i in enumerate(pool.ids)}
    for img, pid in zip(out.images, out.parent_ids, strict=True):
        assert np.array_equal(img, pool.images[by_id[pid]])


def test_precision_is_estimated_and_confident_labels_are_mostly_right(fitted, digits_source, pool):
    info = fitted.fit_info
    assert 0.5 <= info["cv_precision"] <= 1.0 and 0 < info["cv_coverage"] <= 1.0
    kept = fitted.pseudo_labelled()
    # true labels of the kept pool images, looked up in the full source (never used by the generator)
    full = digits_source.pool
    truth = dict(zip(full.ids, full.labels, strict=True))
    acc = np.mean([truth[i] == lab for i, lab in zip(kept.ids, kept.labels, strict=True)])
    assert acc > 0.6


def test_switches_off_when_labels_are_shuffled(tiny_labelled, pool, tmp_path):
    rng = np.random.default_rng(0)
    shuffled = ImageSet(tiny_labelled.images, rng.permutation(tiny_labelled.labels), tiny_labelled.ids,
                        tiny_labelled.class_names)
    gen = PseudoLabelGenerator(threshold=0.0, min_precision=0.6, **FAST).fit(shuffled, pool)
    assert not gen.active
    assert gen.fit_info["cv_precision"] < 0.6
    assert "min_precision" in gen.fit_info["reason"]
    assert gen.kept_counts.sum() == 0
    with pytest.raises(PseudoLabelsDisabled, match="switched off"):
        gen.sample(1, seed=0)
    with pytest.raises(DataError):  # catchable as an ordinary data error
        gen.pseudo_labelled()
    loaded = Generator.load(gen.save(tmp_path / "off"))
    assert not loaded.active and loaded.fit_info["reason"] == gen.fit_info["reason"]


def test_always_train_joins_every_teacher_but_is_never_validated(tiny_labelled, digits_splits, digits_source):
    # 200 more images with every label shifted by one class: if they join the fold teachers, those
    # teachers learn the shifted labels and the held-out (correct) labels disagree with them
    extra = digits_splits.unlabelled.subset(np.arange(300, 500))
    truth = dict(zip(digits_source.pool.ids, digits_source.pool.labels, strict=True))
    wrong = ImageSet(extra.images, (np.array([truth[i] for i in extra.ids]) + 1) % 10, extra.ids,
                     extra.class_names)
    gen = PseudoLabelGenerator(threshold=0.0, min_precision=0.0, **FAST)
    plain = gen.estimate_precision(tiny_labelled)
    shifted = gen.estimate_precision(tiny_labelled, always_train=wrong)
    assert plain["cv_validated"] == shifted["cv_validated"] == len(tiny_labelled)  # only its own folds
    assert plain["cv_precision"] > 0.5 > shifted["cv_precision"]


def test_precision_by_threshold_reads_the_same_held_out_predictions(tiny_labelled):
    gen = PseudoLabelGenerator(threshold=0.6, min_precision=0.0, **FAST)
    est = gen.estimate_precision(tiny_labelled, thresholds=[0.0, 0.6, 0.99])
    lo, own, hi = est["by_threshold"]
    assert lo["kept"] == est["cv_validated"] == len(tiny_labelled)  # threshold 0 keeps every prediction
    assert (own["kept"], own["correct"]) == (est["cv_kept"], est["cv_correct"])  # the generator's own threshold
    assert hi["kept"] <= own["kept"] <= lo["kept"] and hi["correct"] <= own["correct"] <= lo["correct"]


def test_without_pool_it_is_off_with_a_reason(tiny_labelled):
    gen = PseudoLabelGenerator(**FAST).fit(tiny_labelled, None)
    assert not gen.active and "no unlabelled pool" in gen.fit_info["reason"]


def test_missing_class_is_a_clear_error(tiny_labelled, pool):
    gen = PseudoLabelGenerator(threshold=0.999999, min_precision=0.0, **FAST).fit(tiny_labelled, pool)
    empty = np.flatnonzero(gen.kept_counts == 0)
    if gen.active and len(empty):
        with pytest.raises(PseudoLabelsDisabled, match="no confident pseudo-labels"):
            gen.sample(labels=[int(empty[0])])
    assert gen.kept_counts.sum() < 300


def test_k_folds_zero_skips_the_estimate_and_labels_like_the_gated_teacher(fitted, tiny_labelled, pool):
    ungated = PseudoLabelGenerator(threshold=0.6, min_precision=0.0, **{**FAST, "k_folds": 0}).fit(tiny_labelled, pool)
    assert ungated.fit_info["cv_precision"] is None and "skipped" in ungated.fit_info["estimate"]
    # the final teacher does not depend on the estimate: same kept images and labels as the gated one
    assert ungated.pseudo_labelled().ids.tolist() == fitted.pseudo_labelled().ids.tolist()
    assert ungated.pseudo_labelled().labels.tolist() == fitted.pseudo_labelled().labels.tolist()
    with pytest.raises(ConfigError, match="needs generator.k_folds >= 2"):
        ungated.estimate_precision(tiny_labelled)


def test_a_class_with_one_label_is_off_only_when_precision_must_be_estimated(tiny_labelled, pool):
    # the stack's final teacher (k_folds 0) after active learning left one class with a single label
    keep = np.flatnonzero(tiny_labelled.labels != 0)
    one = tiny_labelled.subset(np.concatenate([keep, np.flatnonzero(tiny_labelled.labels == 0)[:1]]))
    assert int(one.class_counts().min()) == 1
    gated = PseudoLabelGenerator(threshold=0.6, min_precision=0.5, **FAST).fit(one, pool)
    assert not gated.active and "fewer than 2 labelled images" in gated.fit_info["reason"]
    ungated = PseudoLabelGenerator(threshold=0.6, min_precision=0.0, **{**FAST, "k_folds": 0}).fit(one, pool)
    assert ungated.active and ungated.fit_info["kept"] > 0


def test_bad_config():
    with pytest.raises(ConfigError, match="threshold"):
        PseudoLabelGenerator(threshold=1.5)
    with pytest.raises(ConfigError, match="k_folds"):
        PseudoLabelGenerator(k_folds=1)
    with pytest.raises(ConfigError, match="min_precision=0.9 needs a precision estimate"):
        PseudoLabelGenerator(k_folds=0, min_precision=0.9)


def test_balance_kept_caps_each_class_at_ratio_times_the_smallest_keeping_the_most_confident():
    from generators.pseudo_label import balance_kept

    pred = np.array([0] * 10 + [1] * 2 + [2] * 5)
    conf = np.linspace(0.9, 1.0, len(pred))
    keep = np.arange(len(pred))
    out = balance_kept(keep, pred, conf, 3, 2.0)
    assert np.bincount(pred[out], minlength=3).tolist() == [4, 2, 4]
    assert set(out[pred[out] == 0]) == {6, 7, 8, 9}  # class 0's four most confident
    assert np.all(np.diff(out) > 0)
    assert np.array_equal(balance_kept(keep, pred, conf, 3, 5.0), keep)  # a cap that does not bind changes nothing
    # a class with no confident label counts as 1: the others keep at most ceil(ratio)
    assert np.bincount(pred[balance_kept(keep, pred, conf, 4, 1.5)], minlength=4).tolist() == [2, 2, 2, 0]


def test_max_class_ratio_caps_the_kept_set_and_survives_save_load(tiny_labelled, pool, tmp_path):
    kwargs = dict(threshold=0.6, min_precision=0.5, **FAST)
    every = PseudoLabelGenerator(max_class_ratio=None, **kwargs).fit(tiny_labelled, pool)
    capped = PseudoLabelGenerator(max_class_ratio=1.0, **kwargs).fit(tiny_labelled, pool)
    counts = capped.kept_counts
    assert capped.fit_info["confident_per_class"] == every.kept_counts.tolist()  # the same teacher, before the cap
    assert counts.max() == max(int(every.kept_counts.min()), 1) < every.kept_counts.max()
    assert set(capped.pseudo_labelled().ids) < set(every.pseudo_labelled().ids)
    capped.save(tmp_path / "pl")
    assert Generator.load(tmp_path / "pl").config["max_class_ratio"] == 1.0


def test_the_default_cap_is_two_and_a_checkpoint_from_before_it_keeps_every_label(fitted, tmp_path):
    import json

    assert PseudoLabelGenerator().config["max_class_ratio"] == 2.0
    counts = fitted.kept_counts
    assert counts.max() <= 2 * max(int(counts.min()), 1)
    fitted.save(tmp_path / "old")
    meta_path = next(p for p in (tmp_path / "old").iterdir() if p.suffix == ".json" and "max_class_ratio" in p.read_text())
    meta = json.loads(meta_path.read_text())
    del meta["config"]["max_class_ratio"]
    meta_path.write_text(json.dumps(meta))
    assert Generator.load(tmp_path / "old").config["max_class_ratio"] is None


class _Recording(PseudoLabelGenerator):
    """A real source that also records what each teacher round trained on beyond the labelled images."""

    def _teacher(self, labelled, extra, seed):
        self.extras.append(None if extra is None else np.bincount(extra.labels, minlength=len(labelled.class_names)))
        return super()._teacher(labelled, extra, seed)


@pytest.mark.parametrize("ratio", [1.0, None])
def test_later_rounds_train_on_the_capped_set(tiny_labelled, pool, ratio):
    gen = _Recording(threshold=0.6, min_precision=0.0, rounds=2, max_class_ratio=ratio, **{**FAST, "k_folds": 0})
    gen.extras = []
    gen.fit(tiny_labelled, pool)
    first, second = gen.extras
    assert first is None and second.sum() > 0
    if ratio is None:
        assert second.max() > max(int(second.min()), 1)  # the tiny teacher's confident labels are skewed...
    else:
        assert second.max() <= max(int(second.min()), 1)  # ...and the cap evens them before round 2 trains


@pytest.mark.parametrize("ratio", [0.5, -1.0, float("nan")])
def test_max_class_ratio_below_one_is_a_config_error(ratio):
    with pytest.raises(ConfigError, match="max_class_ratio"):
        PseudoLabelGenerator(max_class_ratio=ratio)
