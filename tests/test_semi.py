"""Consistency training on the pool (synth.semi): determinism, the pool's labels never read,
the confidence mask, clear errors, and (slow) that the pool actually helps on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from synth.data import ImageSet, Splits
from synth.errors import ConfigError, DataError
from synth.semi import PseudoLabeller, SemiConfig, semi_candidates, train_semi
from synth.training import TrainConfig, accuracy, predict_proba, train_classifier

from .conftest import CONF

TINY_TRAIN = TrainConfig(steps=6, batch_size=8, width=4, hidden=16)
TINY = SemiConfig(steps=6, unlabelled_ratio=2, threshold=0.0)


@pytest.fixture(scope="module")
def pool(digits_splits: Splits) -> ImageSet:
    return digits_splits.unlabelled.subset(np.arange(120))


def weights(model: torch.nn.Module) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()]).numpy()


def test_deterministic_per_seed_and_different_across_seeds(tiny_labelled, pool):
    a = train_semi(tiny_labelled, pool, TINY_TRAIN, TINY, seed=0)
    b = train_semi(tiny_labelled, pool, TINY_TRAIN, TINY, seed=0)
    c = train_semi(tiny_labelled, pool, TINY_TRAIN, TINY, seed=1)
    np.testing.assert_array_equal(weights(a), weights(b))
    assert not np.array_equal(weights(a), weights(c))
    assert a.semi_info["steps"] == 6 and a.semi_info["pool"] == len(pool)
    assert a.semi_info["confident_share"] == 1.0  # threshold 0: every pool image counts


def with_labels(source, ids: np.ndarray) -> ImageSet:
    """The source's labelled copy of these pool images, in this order."""
    return source.pool.subset([int(np.flatnonzero(source.pool.ids == i)[0]) for i in ids])


def test_the_pools_labels_are_never_read(tiny_labelled, digits_splits, digits_source):
    hidden = digits_splits.unlabelled.subset(np.arange(120))
    by_id = with_labels(digits_source, hidden.ids)
    assert (by_id.labels >= 0).all() and (hidden.labels == -1).all()
    a = train_semi(tiny_labelled, hidden, TINY_TRAIN, TINY, seed=0)
    b = train_semi(tiny_labelled, by_id, TINY_TRAIN, TINY, seed=0)
    np.testing.assert_array_equal(weights(a), weights(b))


def test_pool_loss_counts_only_above_the_confidence_threshold(tiny_labelled, pool):
    off = train_semi(tiny_labelled, pool, TINY_TRAIN, SemiConfig(steps=6, unlabelled_ratio=2, weight=0.0), seed=0)
    on = train_semi(tiny_labelled, pool, TINY_TRAIN, SemiConfig(steps=6, unlabelled_ratio=2, threshold=0.0), seed=0)
    # a fresh tiny model is never 100 % sure: threshold 1.0 masks every pool image, as weight 0 does
    masked = train_semi(tiny_labelled, pool, TINY_TRAIN, SemiConfig(steps=6, unlabelled_ratio=2, threshold=1.0), seed=0)
    assert masked.semi_info["confident_share"] == 0.0
    np.testing.assert_array_equal(weights(masked), weights(off))
    assert not np.array_equal(weights(on), weights(off))


def test_starts_from_a_given_model_and_leaves_the_labelled_augmentation_to_the_caller(tiny_labelled, pool):
    start = train_classifier(tiny_labelled, TINY_TRAIN, seed=3)
    before = weights(start).copy()
    out = train_semi(tiny_labelled, pool, TINY_TRAIN, TINY, seed=0, model=start, augment=None)
    assert out is start and not np.array_equal(weights(out), before)
    probs = predict_proba(out, pool.images[:5])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_weak_none_leaves_the_labelled_images_and_the_weak_view_unaugmented(tiny_labelled, pool):
    plain = SemiConfig(steps=6, unlabelled_ratio=2, threshold=0.0, weak="none")
    assert plain.augmenters()[0] is None
    default_labelled_view = train_semi(tiny_labelled, pool, TINY_TRAIN, plain, seed=0)
    no_labelled_aug = train_semi(tiny_labelled, pool, TINY_TRAIN, plain, seed=0, augment=None)
    light = train_semi(tiny_labelled, pool, TINY_TRAIN, TINY, seed=0)
    np.testing.assert_array_equal(weights(default_labelled_view), weights(no_labelled_aug))
    assert not np.array_equal(weights(default_labelled_view), weights(light))
    assert default_labelled_view.semi_info["weak"] == "none"


def test_clear_errors(tiny_labelled, pool):
    with pytest.raises(DataError, match="pool is empty"):
        train_semi(tiny_labelled, pool.subset([]), TINY_TRAIN, TINY)
    with pytest.raises(ConfigError, match="zero labelled"):
        train_semi(tiny_labelled.subset([]), pool, TINY_TRAIN, TINY)
    rgb = ImageSet.build(np.repeat(pool.images[:4], 3, axis=-1), [-1] * 4, ["a", "b", "c", "d"], pool.class_names)
    with pytest.raises(DataError, match="image shape"):
        train_semi(tiny_labelled, rgb, TINY_TRAIN, TINY)
    for bad in ({"steps": 0}, {"unlabelled_ratio": 0}, {"threshold": 1.5}, {"weight": -1.0}, {"strong": "none"}):
        with pytest.raises(ConfigError):
            SemiConfig(**bad)
    with pytest.raises(ConfigError, match="unknown key"):
        SemiConfig.from_dict({"treshold": 0.9})
    with pytest.raises(ConfigError, match="thresholds must be one of"):
        SemiConfig(thresholds="adaptive")
    with pytest.raises(ConfigError, match="align must be true or false"):
        SemiConfig(align="yes")
    with pytest.raises(ConfigError, match="unknown augmentation preset"):
        train_semi(tiny_labelled, pool, TINY_TRAIN, SemiConfig(steps=2, strong="no_such_preset"))


def logits_for(probs: list[list[float]]) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float32))


def test_fixed_thresholds_count_a_pool_image_only_at_or_above_the_threshold():
    pseudo = PseudoLabeller(SemiConfig(threshold=0.9), n_pool=4, n_classes=3)
    target, mask = pseudo(logits_for([[0.95, 0.03, 0.02], [0.2, 0.7, 0.1], [0.05, 0.05, 0.9]]), np.arange(3))
    assert target.tolist() == [0, 1, 2] and mask.tolist() == [1.0, 0.0, 1.0]
    np.testing.assert_allclose(pseudo.class_thresholds(), 0.9)


def test_a_smoothed_model_s_confidence_is_read_on_the_labels_scale_before_the_threshold():
    """Trained with label smoothing 0.1 on 10 classes, a model is at most ~0.91 sure: its sure answers must
    still pass a 0.95 threshold, and an unsure one must not."""
    sure = [[0.91] + [0.01] * 9]  # the smoothed optimum for an image of class 0: p = 1 on the labels' scale
    unsure = [[0.5, 0.41] + [0.01125] * 8]
    logits = logits_for(sure + unsure)
    _, plain = PseudoLabeller(SemiConfig(threshold=0.95), n_pool=2, n_classes=10)(logits, np.arange(2))
    target, mask = PseudoLabeller(SemiConfig(threshold=0.95), 2, 10, smoothing=0.1)(logits, np.arange(2))
    assert plain.tolist() == [0.0, 0.0] and mask.tolist() == [1.0, 0.0] and target.tolist() == [0, 0]


def test_flex_thresholds_start_at_zero_and_rise_with_each_class_s_confident_share():
    pseudo = PseudoLabeller(SemiConfig(threshold=0.9, thresholds="flex"), n_pool=10, n_classes=3)
    np.testing.assert_allclose(pseudo.class_thresholds(), 0.0)  # nothing learned yet: every pool image counts
    _, mask = pseudo(logits_for([[0.4, 0.3, 0.3]]), np.array([9]))
    assert mask.tolist() == [1.0]
    pseudo.selected[:] = [0, 0, 0, 0, 1, 1, -1, -1, -1, -1]  # 4 unused, class 0: 4, class 1: 2, class 2: 0
    beta = np.array([1.0, 0.5, 0.0])
    np.testing.assert_allclose(pseudo.class_thresholds(), 0.9 * beta / (2 - beta))
    # a confident prediction records the image's class; an unsure one leaves the record alone
    target, mask = pseudo(logits_for([[0.02, 0.03, 0.95], [0.5, 0.45, 0.05]]), np.array([6, 7]))
    assert pseudo.selected[6] == 2 and pseudo.selected[7] == -1
    assert mask.tolist() == [1.0, 0.0]  # class 0's threshold is the full 0.9


def test_distribution_alignment_moves_pseudo_labels_off_a_class_the_model_over_predicts():
    semi = SemiConfig(threshold=0.0, align=True)
    skewed = logits_for([[0.6, 0.2, 0.2]] * 8)
    pseudo = PseudoLabeller(semi, n_pool=8, n_classes=3)
    for _ in range(1000):  # the running mean of pool predictions settles on the skew
        pseudo(skewed, np.arange(8))
    np.testing.assert_allclose(pseudo.p_model.numpy(), [0.6, 0.2, 0.2], atol=1e-3)
    target, _ = pseudo(logits_for([[0.5, 0.4, 0.1]]), np.array([0]))
    assert target.tolist() == [1]  # 0.5 / 0.6 < 0.4 / 0.2
    plain, _ = PseudoLabeller(SemiConfig(threshold=0.0), 8, 3)(logits_for([[0.5, 0.4, 0.1]]), np.array([0]))
    assert plain.tolist() == [0]


# flex at threshold 0.5: its thresholds start at 0, so pool images count that the fixed 0.5 masks;
# alignment at threshold 0 (every image counts): it changes which class some pool images are taught
@pytest.mark.parametrize("base,change", [({"steps": 6, "threshold": 0.5}, {"thresholds": "flex"}),
                                         ({"steps": 30, "threshold": 0.0}, {"align": True})])
def test_flex_and_alignment_train_deterministically_and_change_the_model(tiny_labelled, pool, base, change):
    semi = SemiConfig(unlabelled_ratio=2, **base, **change)
    a = train_semi(tiny_labelled, pool, TINY_TRAIN, semi, seed=0)
    b = train_semi(tiny_labelled, pool, TINY_TRAIN, semi, seed=0)
    fixed = train_semi(tiny_labelled, pool, TINY_TRAIN, SemiConfig(unlabelled_ratio=2, **base), seed=0)
    np.testing.assert_array_equal(weights(a), weights(b))
    assert not np.array_equal(weights(a), weights(fixed))
    assert len(a.semi_info["class_thresholds"]) == len(tiny_labelled.class_names)
    assert semi.label.endswith(",".join(f"{k}={v}" for k, v in change.items()) + ")")


def test_semi_candidates_read_null_one_mapping_or_a_list_and_name_what_differs():
    light, none = {"steps": 600}, {"steps": 600, "weak": "none"}
    assert semi_candidates(None) == ()
    assert semi_candidates(OmegaConf.create(light)) == (SemiConfig(),)
    got = semi_candidates(OmegaConf.create([light, none]))
    assert got == (SemiConfig(), SemiConfig(weak="none"))
    assert [c.label for c in got] == ["semi", "semi(weak=none)"]
    assert SemiConfig(steps=50, threshold=0.9).label == "semi(steps=50,threshold=0.9)"
    cfg = OmegaConf.create({"steps": 50, "semi": [{"steps": "${steps}"}]})
    assert semi_candidates(cfg.semi) == (SemiConfig(steps=50),)  # a Hydra node's interpolations are resolved
    with pytest.raises(ConfigError, match="listed twice"):
        semi_candidates([light, {"weak": "light"}])  # the same settings spelled two ways
    with pytest.raises(ConfigError, match="unknown key"):
        semi_candidates([{"treshold": 0.9}])
    with pytest.raises(ConfigError, match="list entry must be a mapping"):
        semi_candidates([light, "none"])
    with pytest.raises(ConfigError, match="null, a mapping"):
        semi_candidates(3)


def test_the_shipped_config_loads():
    cfg = SemiConfig.from_dict(OmegaConf.to_container(OmegaConf.load(CONF / "semi" / "default.yaml")))
    assert cfg == SemiConfig()


@pytest.mark.slow
def test_the_pool_helps_on_digits_with_two_labels_per_class(digits_source):
    """The lever's reason to exist: at 2 labels per class the pool lifts accuracy on held-out pool images."""
    splits = digits_source.splits(n_per_class=2, seed=0)
    held, pool = splits.unlabelled.subset(np.arange(300)), splits.unlabelled.subset(np.arange(300, 1277))
    truth = with_labels(digits_source, held.ids)
    train = TrainConfig()
    base = accuracy(train_classifier(splits.labelled, train, seed=0), truth)
    semi = accuracy(train_semi(splits.labelled, pool, train, SemiConfig(steps=300), seed=0), truth)
    assert semi >= base + 0.05, (base, semi)
