"""Scoring library: metrics near their ideal for real-vs-real, copies and wrong labels caught,
chunked distances equal unchunked, clear errors, filtering, generate-until-N."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generators.base import Samples
from synth.errors import CheckpointError, ConfigError, DataError
from synth.scoring.features import (
    ClassifierExtractor,
    FeatureCache,
    judge_augment,
    load_extractor,
    save_extractor,
    train_extractor,
)
from synth.scoring.filtering import accept_mask, generate_until
from synth.scoring.per_sample import Reference, gap_score, score_samples
from synth.scoring.pipeline import score_images
from synth.scoring.set_metrics import (
    alpha_beta_authenticity,
    ball_stats,
    c2st_auc,
    compute_set_metrics,
    evaluate_set,
    nearest,
    prdc,
)
from synth.training import TrainConfig


def gaussian(n: int, d: int = 16, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, d)) + shift).astype(np.float32)


# ------------------------------------------------------------------ set-level metrics
def test_real_vs_real_sits_near_ideal_and_shift_moves_away():
    real, other, shifted = gaussian(400, seed=0), gaussian(400, seed=1), gaussian(400, seed=2, shift=1.5)
    same = compute_set_metrics(real, other, "x", k=5)
    far = compute_set_metrics(real, shifted, "x", k=5)
    assert same["FD_x"] < 1.0 < far["FD_x"]
    assert abs(same["KID_x"]) < 0.05 < far["KID_x"]
    for m in ("precision", "recall", "coverage"):
        assert same[m] > 0.85 and far[m] < same[m], m
    assert 0.8 < same["density"] < 1.2
    assert abs(same["c2st_auc"] - 0.5) < 0.07 and far["c2st_auc"] > 0.9
    assert same["alpha_precision"] > 0.85 and same["beta_recall"] > 0.4  # synthcity definition: ~0.5 for real
    assert 0.3 < same["authenticity"] < 0.8  # fresh real data is mostly "authentic"


def test_exact_copies_have_zero_authenticity_but_best_fd():
    real = gaussian(300)
    copies = real[np.random.default_rng(3).integers(0, 300, 300)]
    fresh = gaussian(300, seed=4)
    assert alpha_beta_authenticity(real, copies)["authenticity"] == 0.0
    assert compute_set_metrics(real, copies, "x", skip=("kid", "prdc", "alpha", "c2st"))["FD_x"] < \
        compute_set_metrics(real, fresh, "x", skip=("kid", "prdc", "alpha", "c2st"))["FD_x"]


def test_chunked_distances_equal_unchunked():
    q, c = gaussian(257, seed=5), gaussian(301, seed=6)
    radii = np.random.default_rng(7).uniform(3, 6, 301).astype(np.float32)
    n1, r1 = ball_stats(q, c, radii, chunk=10_000)
    n2, r2 = ball_stats(q, c, radii, chunk=16)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_allclose(r1, r2, rtol=1e-5)
    d_full = np.linalg.norm(q[:, None] - c[None], axis=2)
    np.testing.assert_array_equal(n1, (d_full <= radii).sum(1))
    d, i = nearest(q, c, chunk=7)
    np.testing.assert_array_equal(i, d_full.argmin(1))
    np.testing.assert_allclose(d, d_full.min(1), rtol=1e-4)


def test_empty_and_mismatched_sets_raise_clear_errors():
    real = gaussian(50)
    with pytest.raises(DataError, match="empty"):
        compute_set_metrics(real, real[:0], "x")
    with pytest.raises(DataError, match="empty"):
        compute_set_metrics(real[:0], real, "x")
    with pytest.raises(DataError, match="feature shapes differ"):
        compute_set_metrics(real, gaussian(50, d=8), "x")


def test_small_n_warns_and_baseline_is_reported():
    real, fake, held = gaussian(40), gaussian(30, seed=1), gaussian(20, seed=2)
    res = evaluate_set(real, fake, held, "x", skip=("c2st",))
    assert any("FD/KID" in w for w in res.warnings)
    assert any("baseline uses 20" in w for w in res.warnings)
    assert res.n_baseline == 20 and set(res.baseline) == set(res.values)
    assert {r["metric"] for r in res.rows()} >= {"FD_x", "precision", "authenticity"}


def test_prdc_density_counts_balls():
    real = gaussian(200)
    assert prdc(real, real + 1e-4)["density"] > 0.99


def test_c2st_separates_distributions():
    assert c2st_auc(gaussian(200), gaussian(200, seed=9, shift=2.0)) > 0.95


def test_shared_neighbourhood_equals_brute_force_and_standalone_scores():
    """The single-sweep path (pipeline) must give what the per-metric definitions give."""
    from synth.scoring.set_metrics import neighbourhood, real_self_distances

    real, fake = gaussian(120, d=6, seed=11), gaussian(90, d=6, seed=12, shift=0.3)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=2) + np.diag(np.full(90, np.inf))
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=2) + np.diag(np.full(120, np.inf))
    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=2)
    r_real, r_fake = np.sort(d_rr, 1)[:, 4], np.sort(d_ff, 1)[:, 4]
    brute = {"precision": (d_fr <= r_real).any(1).mean(), "recall": (d_fr.T <= r_fake).any(1).mean(),
             "density": (d_fr <= r_real).sum(1).mean() / 5, "coverage": (d_fr.min(0) <= r_real).mean()}
    got = prdc(real, fake, k=5)
    for key, value in brute.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key

    ref = Reference.fit(real, None, k=3)
    nb = neighbourhood(real, fake, 5, real_self_distances(real, 5), ref.realism_radii())
    shared = score_samples(fake, ref, to_train=nb.f2r)
    alone = score_samples(fake, ref)
    for key in ("realism", "novelty", "gap"):
        np.testing.assert_allclose(shared[key], alone[key], rtol=1e-5)
    with_nb = compute_set_metrics(real, fake, "x", skip=("c2st", "kid"), nb=nb)
    assert with_nb == pytest.approx(compute_set_metrics(real, fake, "x", skip=("c2st", "kid")))


# ------------------------------------------------------------------ per-sample scores
def test_per_sample_copies_flagged_and_wrong_labels_score_negative():
    train, held = gaussian(200, seed=0), gaussian(200, seed=1)
    ref = Reference.fit(train, held, k=3)
    copies = train[:50]
    s_copy = score_samples(copies, ref)
    s_fresh = score_samples(gaussian(50, seed=2), ref)
    assert s_copy["copy"].all() and not s_fresh["copy"].any()
    assert np.all(s_copy["gap"] < 0.01)  # float32 features: copies sit at ~1e-4, not exactly 0
    assert 0.5 < np.median(s_fresh["novelty"]) < 2.0
    assert gap_score(np.ones(2), np.ones(2), np.array([0.0, 1.0])).tolist() == [-1.0, 1.0]


@pytest.fixture(scope="module")
def judge(digits_splits):
    torch.set_num_threads(1)
    return train_extractor(digits_splits.labelled, TrainConfig(steps=100), seed=0, augment=judge_augment())


def test_digits_end_to_end_copies_wrong_labels_and_real(judge, digits_splits):
    labelled, pool = digits_splits.labelled, digits_splits.unlabelled
    held, fresh_unl = pool.subset(np.arange(200)), pool.subset(np.arange(200, 400))
    from synth.data import DigitsSource

    src = DigitsSource(test_size=500)
    by_id = {i: k for k, i in enumerate(src.pool.ids)}
    fresh = src.pool.subset([by_id[i] for i in fresh_unl.ids])  # pool images with true labels
    rng = np.random.default_rng(0)
    wrong = fresh.subset(np.arange(len(fresh)))
    wrong = type(fresh)(fresh.images, (fresh.labels + rng.integers(1, 10, len(fresh))) % 10, fresh.ids, fresh.class_names)
    copies = labelled

    r_fresh = score_images(fresh, labelled, held, judge, skip=("c2st", "kid"))
    r_copy = score_images(copies, labelled, held, judge, skip=("c2st", "kid"))
    r_wrong = score_images(wrong, labelled, held, judge, skip=("c2st", "kid"))
    assert r_copy.summary["copy_rate"] == 1.0 and r_fresh.summary["copy_rate"] < 0.05
    assert r_copy.set_metrics.values["authenticity"] == 0.0 < r_fresh.set_metrics.values["authenticity"]
    assert r_fresh.summary["label_consistency_mean"] > 0.7 > 0.3 > r_wrong.summary["label_consistency_mean"]
    assert r_wrong.summary["gap_mean"] < 0 < r_fresh.summary["gap_mean"]
    assert r_copy.summary["gap_mean"] < r_fresh.summary["gap_mean"]
    # real-vs-real (held-out pool vs labelled) sits near the metrics' ideal
    fd = r_fresh.set_metrics.values["FD_smallcnn"]
    assert fd < 2 * r_fresh.set_metrics.baseline["FD_smallcnn"] + 1
    assert r_fresh.set_metrics.baseline["coverage"] > 0.8


def test_score_images_rejects_mismatched_shapes(judge, digits_splits):
    from synth.data import ImageSet

    odd = ImageSet.build(np.zeros((4, 10, 10, 1), np.uint8), [0, 1, 2, 3], list("abcd"), digits_splits.labelled.class_names)
    with pytest.raises(DataError, match="synthetic images are"):
        score_images(odd, digits_splits.labelled, None, judge)
    with pytest.raises(DataError, match="empty"):
        score_images(odd.subset([]), digits_splits.labelled, None, judge)


def test_local_extractor_roundtrip_and_cache(judge, tmp_path, digits_splits):
    save_extractor(judge, tmp_path / "ext")
    again = load_extractor(tmp_path / "ext" / "model.safetensors", tmp_path / "ext" / "config.json")
    x = digits_splits.labelled.images[:8]
    np.testing.assert_allclose(again(x), judge(x), rtol=1e-5)
    assert again.fingerprint() == judge.fingerprint()
    with pytest.raises(CheckpointError, match="not found"):
        load_extractor(tmp_path / "nope.safetensors", {})
    cache = FeatureCache(tmp_path / "cache")
    calls = []
    f1 = cache.get("d", judge, x, None, "feat", lambda: calls.append(1) or judge(x))
    f2 = cache.get("d", judge, x, None, "feat", lambda: calls.append(1) or judge(x))
    assert calls == [1] and np.array_equal(f1, f2)
    assert isinstance(judge, ClassifierExtractor) and judge.num_features == 128


# ------------------------------------------------------------------ filtering
def test_accept_mask_threshold_quantile_and_errors():
    scores = {"gap": np.array([0.1, 0.5, np.nan, 0.9, -0.2])}
    assert accept_mask(scores, "gap", threshold=0.5).tolist() == [False, True, False, True, False]
    assert accept_mask(scores, "score_gap", threshold=0.0, keep="below").tolist() == [False, False, False, False, True]
    assert accept_mask(scores, "gap", quantile=0.5).sum() == 2
    with pytest.raises(ConfigError, match="unknown score column 'nope'"):
        accept_mask(scores, "nope", threshold=0.0)
    with pytest.raises(ConfigError, match="exactly one"):
        accept_mask(scores, "gap")
    with pytest.raises(ConfigError, match="quantile"):
        accept_mask(scores, "gap", quantile=1.5)


def test_generate_until_reaches_target_and_reports_rate():
    def sample(start: int, n: int) -> Samples:
        idx = np.arange(start, start + n)
        return Samples(np.zeros((n, 2, 2, 1), np.uint8), idx % 3, np.array([None] * n, dtype=object))

    def score(s: Samples) -> dict[str, np.ndarray]:
        return {"gap": (s.labels == 0).astype(float)}

    res = generate_until(sample, score, lambda s: s["gap"] > 0.5, 50, batch_size=16)
    assert res.accepted == 50 and len(res.samples) == 50 and (res.samples.labels == 0).all()
    assert 0.2 < res.acceptance_rate < 0.5
    with pytest.raises(DataError, match="acceptance rate"):
        generate_until(sample, score, lambda s: s["gap"] > 2, 10, batch_size=8, max_generated=40)
