"""Active learning: determinism, never re-selecting labelled (or test) ids, strategy behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from synth.active import STRATEGIES, SimulatedOracle, active_learning, budget_rounds, pixel_features, select
from synth.data import ImageSet, Splits
from synth.errors import ConfigError, DataError
from synth.training import TrainConfig, train_classifier

TINY = TrainConfig(steps=15, batch_size=32, width=4, hidden=16)


class FixedModel(nn.Module):
    """A hand-built 'classifier' whose uncertainty and features are known per image.

    Each 1x2 image stores (p, f) in its two pixels: p/255 is the probability of class 0
    (the rest on class 1), f is a 1-d feature. Lets a test know exactly which images are
    the uncertain ones and which are far from the labelled set.
    """

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, 1:2] * 255.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x[:, 0, 0, 0].clamp(1e-4, 1 - 1e-4)
        return torch.stack([p.log(), (1 - p).log()], dim=1)


def _constructed(p_values, f_values, prefix="u", labels=None) -> ImageSet:
    images = np.zeros((len(p_values), 1, 2, 1), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 1, 0] = p_values, f_values
    labels = np.full(len(p_values), -1) if labels is None else labels
    return ImageSet.build(images, labels, [f"{prefix}{i}" for i in range(len(p_values))], ["a", "b"])


@pytest.fixture(scope="module")
def tiny_model(tiny_labelled: ImageSet) -> nn.Module:
    return train_classifier(tiny_labelled, TINY, seed=0)


@pytest.fixture(scope="module")
def al_pool(digits_splits: Splits) -> ImageSet:
    """Labelled + unlabelled images with all labels hidden: overlaps the labelled ids on purpose."""
    return digits_splits.pool.without_labels().subset(np.arange(300))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_deterministic_k_respected_and_never_labelled(strategy, tiny_model, al_pool, digits_splits):
    labelled = digits_splits.labelled
    a = select(tiny_model, al_pool, labelled, 12, strategy, seed=3)
    b = select(tiny_model, al_pool, labelled, 12, strategy, seed=3)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 12 and len(np.unique(a)) == 12
    chosen = al_pool.ids[a]
    assert not np.isin(chosen, labelled.ids).any()
    assert not np.isin(chosen, digits_splits.test.ids).any()


def test_random_depends_on_seed(al_pool, digits_splits):
    a = select(None, al_pool, digits_splits.labelled, 10, "random", seed=0)
    b = select(None, al_pool, digits_splits.labelled, 10, "random", seed=1)
    assert set(a) != set(b)


def test_uncertainty_strategies_prefer_uncertain_items():
    # items 3 and 7 sit at p = 0.5 (maximally uncertain); the rest are confident.
    p = np.array([250, 5, 240, 128, 10, 245, 3, 127, 252, 8])
    pool = _constructed(p, np.zeros(10))
    labelled = _constructed([255], [0], prefix="l", labels=[0])
    for strategy in ("entropy", "margin"):
        assert set(select(FixedModel(), pool, labelled, 2, strategy, seed=0)) == {3, 7}


def test_balanced_margin_gives_each_pick_to_the_predicted_class_with_fewest_labels():
    # predicted class 0 (p > 0.5): items 0-2 (the most uncertain overall), 5, 7; class 1: 3, 4, 6.
    # Two class-0 labels already: plain margin takes 0-2 (all class 0); balanced fills class 1
    # up to the tie (its two most uncertain, 3 then 4), then the most uncertain class-0 item.
    p = np.array([129, 130, 131, 100, 50, 250, 5, 240])
    pool = _constructed(p, np.zeros(8))
    labelled = _constructed([255, 250], [0, 0], prefix="l", labels=[0, 0])
    assert set(select(FixedModel(), pool, labelled, 3, "margin", seed=0)) == {0, 1, 2}
    assert list(select(FixedModel(), pool, labelled, 3, "margin_balanced", seed=0)) == [3, 4, 0]


def test_kcenter_prefers_items_far_from_labelled():
    # labelled features at 0 and 10; pool features cluster there except items 4 (200) and 8 (120).
    f = np.array([1, 2, 9, 11, 200, 0, 10, 3, 120, 12])
    pool = _constructed(np.full(10, 128), f)
    labelled = _constructed([255, 255], [0, 10], prefix="l", labels=[0, 1])
    picks = select(FixedModel(), pool, labelled, 2, "kcenter", seed=0)
    assert list(picks) == [4, 8]  # farthest first, then the next farthest from {0, 10, 200}


def test_hybrid_takes_diverse_items_among_the_uncertain():
    # uncertain: items 0-3 (p~0.5); among them 0 and 1 are near the labelled feature 0, 2 and 3 far.
    # item 9 is far but confident: the margin shortlist (2 * k = 4) must exclude it.
    p = np.array([128, 127, 126, 129, 250, 250, 250, 250, 250, 255])
    f = np.array([1, 2, 100, 180, 0, 0, 0, 0, 0, 250])
    pool = _constructed(p, f)
    labelled = _constructed([255], [0], prefix="l", labels=[0])
    picks = select(FixedModel(), pool, labelled, 2, "margin_kcenter", seed=0, shortlist_factor=2)
    assert set(picks) == {2, 3}


def test_typiclust_takes_the_most_typical_member_of_each_unlabelled_cluster():
    # three tight 4x4 blobs (dark, mid, bright) of 8 images each, each with one outlier-ish
    # member; one labelled image sits in the dark blob. Two picks must come from the mid and
    # bright blobs (not the covered dark one), and each must be its blob's densest member.
    rng = np.random.default_rng(0)
    images, centre = [], {}
    for b, level in enumerate((30, 130, 230)):
        for j in range(8):
            img = np.full((4, 4, 1), level, np.int64)
            img[0, :, 0] += (j - 1) * 2 if j else 0  # j = 1 is the exact blob centre
            img[1:, :, 0] += rng.integers(-2, 3, (3, 4)) if j != 1 else 0
            if j == 7:
                img[:, :2, 0] += 20  # the blob's outlier
            images.append(np.clip(img, 0, 255).astype(np.uint8))
        centre[b] = b * 8 + 1
    pool = ImageSet.build(np.stack(images), np.full(24, -1), [f"u{i}" for i in range(24)], ["a", "b", "c"])
    labelled = ImageSet.build(np.full((1, 4, 4, 1), 30, np.uint8), [0], ["l0"], ["a", "b", "c"])
    picks = select(None, pool, labelled, 2, "typiclust", seed=0)
    assert {int(i) // 8 for i in picks} == {1, 2}  # one per uncovered blob
    assert not {7, 15, 23} & set(picks.tolist())  # never an outlier
    np.testing.assert_array_equal(picks, select(None, pool, labelled, 2, "typiclust", seed=0))


def test_pixel_features_of_large_rgb_images_agree_with_the_small_originals():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    big = np.repeat(np.repeat(np.repeat(small, 32, 1), 32, 2), 3, 3)  # 256x256 RGB copies
    f_small, f_big = pixel_features(small, dim=16), pixel_features(big, dim=16)
    assert f_small.shape == f_big.shape == (40, 16)
    # the same images at any size cluster alike: pairwise distances agree up to scale
    dist = lambda f: np.linalg.norm(f[:, None] - f[None], axis=2).ravel()  # noqa: E731
    assert np.corrcoef(dist(f_small), dist(f_big))[0, 1] > 0.99


def test_typiclust_margin_is_typiclust_at_cold_start_then_margin(al_pool, digits_splits, tiny_model):
    labelled = digits_splits.labelled  # fixture: >= 2 labels per class, so past the cold start
    one_each = labelled.subset(np.array([np.flatnonzero(labelled.labels == c)[0] for c in range(labelled.n_classes)]))
    cold = select(None, al_pool, one_each, 8, "typiclust_margin", seed=1)  # no model needed yet
    np.testing.assert_array_equal(cold, select(None, al_pool, one_each, 8, "typiclust", seed=1))
    warm = select(tiny_model, al_pool, labelled, 8, "typiclust_margin", seed=1)
    np.testing.assert_array_equal(warm, select(tiny_model, al_pool, labelled, 8, "margin", seed=1))
    with pytest.raises(ConfigError, match="needs a model"):
        select(None, al_pool, labelled, 8, "typiclust_margin", seed=1)


def test_select_rejects_bad_input(tiny_model, al_pool, digits_splits):
    with pytest.raises(DataError, match="labels hidden"):
        select(tiny_model, digits_splits.labelled, digits_splits.labelled.subset([0]), 2, "margin")
    with pytest.raises(ConfigError, match="unknown"):
        select(tiny_model, al_pool, digits_splits.labelled, 2, "bald")
    with pytest.raises(ConfigError, match="batch_size"):
        select(tiny_model, al_pool, digits_splits.labelled, 10_000, "margin")


def test_loop_labels_only_selected_ids_and_is_deterministic(digits_source, digits_splits):
    pool_truth = digits_source.pool.subset(np.arange(400))
    initial = digits_splits.labelled.subset(np.arange(0, 100, 10))  # 1 per class
    synthetic = initial  # stands in for synthetic images mixed into every batch

    def train_fn(data: ImageSet, seed: int) -> nn.Module:
        return train_classifier(data, TINY, seed=seed, synthetic=synthetic, synthetic_share=0.25)

    runs = []
    for _ in range(2):
        oracle = SimulatedOracle(pool_truth)
        res = active_learning(initial, pool_truth.without_labels(), oracle, rounds=2, batch_size=5,
                              train_fn=train_fn, strategy="margin_kcenter", seed=7)
        runs.append((res, oracle))
    (res, oracle), (res2, _) = runs
    assert len(res.labelled) == len(initial) + 10
    np.testing.assert_array_equal(res.labelled.ids, res2.labelled.ids)
    new_ids = res.labelled.ids[len(initial):]
    assert list(new_ids) == oracle.queried and len(set(new_ids)) == 10
    assert not np.isin(new_ids, initial.ids).any()
    assert not np.isin(new_ids, digits_splits.test.ids).any()
    truth = dict(zip(pool_truth.ids, pool_truth.labels, strict=True))
    assert all(truth[i] == lab for i, lab in zip(new_ids, res.labelled.labels[len(initial):], strict=True))
    assert [h["n_labelled"] for h in res.history] == [15, 20]


def test_loop_spends_exactly_the_budget_when_the_batch_does_not_divide_it(digits_source, digits_splits):
    # 10 initial labels, budget 25, batches of 10: two full rounds would overshoot, one would
    # leave 5 labels unspent; the last round must take a partial batch of 5.
    pool_truth = digits_source.pool.subset(np.arange(400))
    initial = digits_splits.labelled.subset(np.arange(0, 100, 10))
    oracle = SimulatedOracle(pool_truth)
    rounds = budget_rounds(len(initial), 25, 10)
    res = active_learning(initial, pool_truth.without_labels(), oracle, rounds=rounds, batch_size=10,
                          max_labels=25, train_fn=lambda d, s: None, strategy="random", seed=0)
    assert rounds == 2 and [h["n_labelled"] for h in res.history] == [20, 25]
    assert len(res.labelled) == 25 and len(set(res.labelled.ids)) == 25
    assert len(oracle.queried) == 15
    assert not np.isin(res.labelled.ids, digits_splits.test.ids).any()


def test_budget_rounds_and_the_label_cap():
    assert budget_rounds(10, 10, 10) == 0 and budget_rounds(10, 30, 10) == 2 and budget_rounds(10, 31, 10) == 3
    with pytest.raises(ConfigError, match="below the 10 initial labels"):
        budget_rounds(10, 9, 10)
    with pytest.raises(ConfigError, match="batch_size"):
        budget_rounds(10, 20, 0)
    one = _constructed([255], [0], prefix="l", labels=[0])
    with pytest.raises(ConfigError, match="below the 1 initial labels"):
        active_learning(one, _constructed([128], [0]), SimulatedOracle(one), rounds=1, batch_size=1,
                        max_labels=0, train_fn=lambda d, s: None)


@pytest.mark.parametrize("strategy, trainings", [("typiclust", 1), ("random", 1), ("margin", 3)])
def test_model_free_selectors_train_only_the_final_model(digits_source, digits_splits, strategy, trainings):
    pool_truth = digits_source.pool.subset(np.arange(300))
    initial = digits_splits.labelled.subset(np.arange(0, 100, 10))
    seen: list[int] = []

    def train_fn(data: ImageSet, seed: int) -> nn.Module:
        seen.append(len(data))
        return train_classifier(data, TINY, seed=seed)

    res = active_learning(initial, pool_truth.without_labels(), SimulatedOracle(pool_truth), rounds=2, batch_size=5,
                          train_fn=train_fn, strategy=strategy, seed=3)
    assert len(seen) == trainings and seen[-1] == len(res.labelled) == 20  # the returned model saw every label
    again = train_classifier(res.labelled, TINY, seed=3)
    for a, b in zip(res.model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
