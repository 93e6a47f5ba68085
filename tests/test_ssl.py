"""Self-supervised encoder: training changes features, save/load round trip, probe and fine-tune."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.data import ImageSet, Splits
from synth.errors import CheckpointError, ConfigError
from synth.ssl import (
    FeatureExtractor,
    SSLConfig,
    fine_tune,
    linear_probe,
    load_encoder,
    load_ssl_config,
    make_encoder,
    nt_xent,
    save_encoder,
    train_encoder,
)
from synth.training import TrainConfig, accuracy, predict_proba

from .conftest import CONF

TINY = SSLConfig(steps=6, batch_size=32, width=4, hidden=16, proj_dim=8, working_size=16)


@pytest.fixture(scope="module")
def pool(digits_splits: Splits) -> ImageSet:
    return digits_splits.pool.without_labels().subset(np.arange(200))


@pytest.fixture(scope="module")
def encoder(pool: ImageSet):
    return train_encoder(pool, TINY, seed=0, progress=False)


def test_nt_xent_low_when_views_agree_high_when_not():
    z = torch.eye(8)
    assert nt_xent(z, z, 0.1) < 0.01
    assert nt_xent(z, z.roll(1, dims=0), 0.1) > 5.0


def test_training_changes_features_and_is_deterministic(encoder, pool):
    fresh = make_encoder(pool.image_shape, pool.n_classes, TINY, seed=0)
    images = pool.images[:20]
    before, after = FeatureExtractor(fresh)(images), FeatureExtractor(encoder)(images)
    assert after.shape == (20, 16) and FeatureExtractor(encoder).num_features == 16
    assert np.abs(after - before).max() > 1e-3
    again = train_encoder(pool, TINY, seed=0, progress=False)
    np.testing.assert_allclose(FeatureExtractor(again)(images), after, rtol=1e-5, atol=1e-6)
    assert encoder.pretrain_info["steps"] == 6 and len(encoder.seen_ids) == len(pool)


def test_save_load_round_trip(encoder, pool, tmp_path):
    save_encoder(encoder, tmp_path / "enc")
    loaded = load_encoder(tmp_path / "enc")
    images = pool.images[:10]
    np.testing.assert_allclose(FeatureExtractor(loaded)(images), FeatureExtractor(encoder)(images), atol=1e-6)
    np.testing.assert_allclose(predict_proba(loaded, images), predict_proba(encoder, images), atol=1e-6)
    assert loaded.pretrain_info["loss_first"] == encoder.pretrain_info["loss_first"]
    with pytest.raises(CheckpointError):
        load_encoder(tmp_path / "missing")


def test_linear_probe_matches_logistic_regression_and_leaves_encoder(encoder, digits_splits):
    labelled = digits_splits.labelled
    head_before = encoder.head.weight.detach().clone()
    probe = linear_probe(encoder, labelled)
    assert accuracy(probe, labelled) >= 0.6  # 16 features, 100 images: the probe must fit them
    assert accuracy(probe, digits_splits.test) > 0.3  # far above chance (0.1) even with 6 SSL steps
    torch.testing.assert_close(encoder.head.weight, head_before)
    np.testing.assert_allclose(FeatureExtractor(probe)(labelled.images), FeatureExtractor(encoder)(labelled.images))


def test_linear_probe_with_missing_classes_never_predicts_them(encoder, digits_splits):
    labelled = digits_splits.labelled
    two = labelled.subset(np.flatnonzero(labelled.labels < 2))
    pred = predict_proba(linear_probe(encoder, two), digits_splits.test.images[:50]).argmax(1)
    assert set(pred) <= {0, 1}


def test_fine_tune_starts_from_encoder_and_does_not_mutate_it(encoder, digits_splits):
    labelled = digits_splits.labelled
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = fine_tune(encoder, labelled, TrainConfig(steps=40, batch_size=32), seed=0)
    for k, v in encoder.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert model is not encoder and accuracy(model, labelled) > 0.3
    # a negligible learning rate leaves the pretrained weights in place (only BatchNorm's running
    # statistics move): the init is the encoder's, not a fresh network's
    still = fine_tune(encoder, labelled, TrainConfig(steps=1, batch_size=8, lr=1e-9), seed=0)
    fresh = make_encoder(labelled.image_shape, labelled.n_classes, TINY, seed=0)
    images = labelled.images[:20]
    ref = FeatureExtractor(encoder)(images)
    near = np.abs(FeatureExtractor(still)(images) - ref).mean()
    assert near < 0.2 * np.abs(FeatureExtractor(fresh)(images) - ref).mean()


@pytest.mark.parametrize("name", ["digits", "fashion_mnist"])
def test_shipped_configs_load(name):
    cfg = load_ssl_config(CONF / "ssl" / f"{name}.yaml")
    assert cfg.steps > 0 and cfg.view_ops


def test_bad_config_is_reported():
    with pytest.raises(ConfigError, match="temperature"):
        SSLConfig(temperature=0)
    with pytest.raises(ConfigError, match="does not exist"):
        load_ssl_config(CONF / "ssl" / "nope.yaml")
