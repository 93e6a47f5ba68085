"""The Generator contract, checked for every registered generator with tiny configs."""

from __future__ import annotations

import numpy as np
import pytest

from generators import Generator, available, get_generator_class
from synth.errors import CheckpointError, ConfigError, DataError
from tests.tiny_configs import TINY

NAMES = available()


def make(name: str) -> Generator:
    return get_generator_class(name)(**TINY[name])


def test_every_registered_generator_has_a_tiny_config():
    assert sorted(TINY) == NAMES


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, tiny_labelled, digits_splits):
    gen = make(request.param)
    unlabelled = digits_splits.unlabelled.subset(np.arange(60))
    before = (tiny_labelled.images.copy(), tiny_labelled.labels.copy(), unlabelled.images.copy())
    gen.fit(tiny_labelled, unlabelled)
    return gen, before, unlabelled


def test_fit_does_not_mutate_inputs(fitted, tiny_labelled):
    _, (images, labels, unl_images), unlabelled = fitted
    assert np.array_equal(tiny_labelled.images, images)
    assert np.array_equal(tiny_labelled.labels, labels)
    assert np.array_equal(unlabelled.images, unl_images)


def test_samples_have_declared_shape_dtype_and_labels(fitted, tiny_labelled):
    gen = fitted[0]
    out = gen.sample(2, seed=3)
    assert out.images.shape == (2 * tiny_labelled.n_classes, *tiny_labelled.image_shape)
    assert out.images.dtype == np.uint8
    assert np.array_equal(out.labels, np.tile(np.arange(tiny_labelled.n_classes), 2))
    assert len(out.parent_ids) == len(out)
    assert out.images.std() > 0, "samples are constant images"


def test_seen_ids_record_exactly_what_the_generator_used(fitted, tiny_labelled):
    gen, _, unlabelled = fitted
    expected = set(tiny_labelled.ids) | (set(unlabelled.ids) if gen.uses_unlabelled else set())
    assert set(gen.seen_ids) == expected


def test_sampling_is_seeded_and_chunk_invariant(fitted):
    gen = fitted[0]
    labels = np.array([0, 1, 2, 3, 4, 5])
    a = gen.sample(labels=labels, seed=7)
    b = gen.sample(labels=labels, seed=7)
    assert np.array_equal(a.images, b.images)
    tail = gen.sample(labels=labels[3:], seed=7, start_index=3)
    assert np.array_equal(a.images[3:], tail.images)
    c = gen.sample(labels=labels, seed=8)
    assert not np.array_equal(a.images, c.images)


def test_save_load_round_trip_samples_identically(fitted, tmp_path):
    gen = fitted[0]
    gen.save(tmp_path / "ckpt")
    assert not list((tmp_path / "ckpt").glob("*.bin")) and not list((tmp_path / "ckpt").glob("*.pt"))
    loaded = Generator.load(tmp_path / "ckpt")
    assert type(loaded) is type(gen)
    assert loaded.seen_ids == gen.seen_ids
    a, b = gen.sample(1, seed=11), loaded.sample(1, seed=11)
    assert np.array_equal(a.images, b.images)
    assert list(a.parent_ids) == list(b.parent_ids)


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_use_fails_clearly(name, tmp_path):
    gen = make(name)
    with pytest.raises(CheckpointError, match="not fitted"):
        gen.sample(1)
    with pytest.raises(CheckpointError, match="not fitted"):
        gen.save(tmp_path / "x")


@pytest.mark.parametrize("name", NAMES)
def test_fit_rejects_empty_class(name, tiny_labelled):
    without_class_0 = tiny_labelled.subset(np.flatnonzero(tiny_labelled.labels != 0))
    with pytest.raises(DataError, match="class"):
        make(name).fit(without_class_0)


def test_bad_sample_arguments(fitted):
    gen = fitted[0]
    with pytest.raises(ConfigError):
        gen.sample(-1)
    with pytest.raises(ConfigError):
        gen.sample(labels=[99])
    with pytest.raises(ConfigError):
        gen.sample(1, labels=[0])


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="synth fit"):
        Generator.load(tmp_path / "nowhere")
