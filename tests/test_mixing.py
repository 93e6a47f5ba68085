"""The mixer: exact batch composition, determinism, worker-safe augmentation streams, bad values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from synth.data import ImageSet
from synth.errors import ConfigError, DataError
from synth.mixing import MixedBatchSampler, MixedDataset, Schedule, from_imageset, load_synthetic
from synth.training import TrainConfig, train_classifier


def _labels(n: int, k: int = 4) -> np.ndarray:
    return np.arange(n) % k


def _epoch(sampler: MixedBatchSampler, epoch: int = 0) -> list[list[tuple[int, int, int]]]:
    return list(sampler.batches(epoch))


@pytest.mark.parametrize(("kw", "per_batch"), [({"ratio": 1.0}, 8), ({"ratio": 1 / 3}, 4), ({"probability": 0.25}, 4)])
def test_batch_composition_is_exact(kw, per_batch):
    s = MixedBatchSampler(_labels(40), _labels(100), 16, seed=3, **kw)
    for epoch in range(3):
        batches = _epoch(s, epoch)
        assert len(batches) == 3  # ceil(40 / 16): a real-only epoch's length
        assert [sum(i >= 40 for i, _, _ in b) for b in batches] == [per_batch] * 3
        assert all(len(b) == 16 for b in batches)


def test_fractional_share_rounds_cumulatively():
    s = MixedBatchSampler(_labels(100), _labels(50), 10, probability=0.15, seed=0)
    counts = [sum(i >= 100 for i, _, _ in b) for b in _epoch(s)]
    assert set(counts) <= {1, 2} and sum(counts) == 15  # 10 batches x 10 x 0.15, exactly


def test_real_items_cover_each_epoch_without_repeats():
    s = MixedBatchSampler(_labels(48), _labels(30), 16, ratio=0.0, seed=1)
    real = sorted(i for b in _epoch(s) for i, _, _ in b)
    assert real == list(range(48))


def test_same_seed_same_order_other_seed_differs():
    def order(seed):
        s = MixedBatchSampler(_labels(40), _labels(100), 16, ratio=1.0, balance_classes=True, seed=seed)
        return [b for _ in range(3) for b in s]  # iterating advances the epoch

    assert order(5) == order(5)
    assert order(5) != order(6)
    s = MixedBatchSampler(_labels(40), _labels(100), 16, ratio=1.0, balance_classes=True, seed=5)
    s.set_epoch(2)
    assert list(s) == order(5)[6:9]  # any epoch is reachable directly


def test_class_balance_with_skewed_labels():
    real = np.array([0] * 90 + [1] * 10)
    s = MixedBatchSampler(real, None, 20, balance_classes=True, seed=0)
    labels = np.array([real[i] for b in _epoch(s) for i, _, _ in b])
    assert abs((labels == 1).mean() - 0.5) <= 0.05


def test_weights_and_schedule():
    syn = _labels(100)
    w = np.zeros(100)
    w[:10] = 1.0
    s = MixedBatchSampler(_labels(32), syn, 16, ratio=1.0, synthetic_weights=w, seed=0,
                          schedule=Schedule("linear", 0.0, 4))
    drawn = [i - 32 for b in _epoch(s, 0) for i, _, _ in b if i >= 32]
    assert drawn and max(drawn) < 10  # zero-weight samples are never drawn
    shares = [sum(i >= 32 for b in _epoch(s, e) for i, _, _ in b) for e in range(6)]
    assert shares == [16, 12, 8, 4, 0, 0]  # 1:1 decaying linearly to real-only


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"ratio": -0.5}, ConfigError, "mixer.ratio"),
        ({"probability": 1.5}, ConfigError, "mixer.probability"),
        ({"ratio": 1.0, "probability": 0.5}, ConfigError, "exactly one"),
        ({"ratio": 1.0, "synthetic_labels": np.zeros(0, np.int64)}, DataError, "synthetic source is empty"),
        ({"ratio": 1.0, "synthetic_weights": np.full(10, np.nan)}, DataError, "weight"),
        ({"ratio": 1.0, "schedule": ("bogus", 0.0, 3)}, ConfigError, "schedule.kind"),
        ({"ratio": 1.0, "schedule": ("linear", 0.0, None)}, ConfigError, "schedule.epochs"),
    ],
)
def test_bad_values_raise_clear_errors(kw, error, match):
    with pytest.raises(error, match=match):
        kw = dict(kw)
        syn = kw.pop("synthetic_labels", _labels(10))
        if "schedule" in kw:
            kw["schedule"] = Schedule(*kw["schedule"])
        MixedBatchSampler(_labels(20), syn, 8, **kw)


def _tiny_set(n: int, seed: int, prefix: str) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet.build(rng.integers(0, 255, (n, 6, 6, 1), dtype=np.uint8), _labels(n, 2), [f"{prefix}{i}" for i in range(n)], ["a", "b"])


def _noise_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap augmenter whose output fingerprints the random stream it was given."""
    return rng.integers(0, 256, image.shape, dtype=np.uint8)


def test_items_say_whether_synthetic_and_augment_real_only():
    real, syn = _tiny_set(6, 0, "r"), _tiny_set(4, 1, "s")
    ds = MixedDataset(real, syn, augment=_noise_augment, seed=0)
    x, y, flag = ds[(7, 0, 0)]
    assert flag is True and torch.equal(x, torch.from_numpy(syn.images[1]).permute(2, 0, 1).float() / 255)
    x1, _, flag = ds[(2, 0, 0)]
    x2, _, _ = ds[(2, 0, 1)]
    assert flag is False and not torch.equal(x1, x2)  # a fresh variation at every draw
    assert torch.equal(x1, ds[(2, 0, 0)][0])  # ... that reproduces from (seed, epoch, position)


@pytest.mark.parametrize("batched", [False, True], ids=["per-image", "batched-torch"])
def test_batch_fetch_equals_item_fetch_with_augmentation(batched):
    """`batch` (the training fast path) must give every draw exactly what `__getitem__` gives it."""
    from generators.procedural import TorchAugmenter

    augment = TorchAugmenter([{"name": "Affine", "rotate": [-20, 20], "p": 1.0},
                              {"name": "GaussNoise", "std_range": [0.05, 0.1], "p": 0.5}], 16) if batched else _noise_augment
    real, syn = _tiny_set(6, 0, "r"), _tiny_set(4, 1, "s")
    ds = MixedDataset(real, syn, augment=augment, seed=3)
    keys = [(2, 0, 0), (7, 0, 1), (2, 0, 2), (5, 1, 3), (9, 1, 4)]
    x, y, flags = ds.batch(keys)
    items = [ds[k] for k in keys]
    assert torch.equal(x, torch.stack([i[0] for i in items]))
    assert y.tolist() == [i[1] for i in items] and flags.tolist() == [i[2] for i in items]
    assert not torch.equal(x[0], x[2])  # the same image drawn twice: two variations


def test_no_repeated_streams_across_workers_and_reproducible():
    real, syn = _tiny_set(24, 0, "r"), _tiny_set(12, 1, "s")

    def run(workers: int) -> torch.Tensor:
        ds = MixedDataset(real, syn, augment=_noise_augment, seed=4)
        sampler = MixedBatchSampler(real.labels, syn.labels, 8, ratio=0.5, seed=4)
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers)
        return torch.cat([torch.cat([x[~s] for x, _, s in loader]) for _ in range(2)])  # two epochs

    two = run(2)
    assert torch.equal(two, run(0))  # the number of workers changes nothing
    flat = two.flatten(1)
    assert len(torch.unique(flat, dim=0)) == len(flat)  # every augmented real draw got its own stream


def test_training_with_mix_options_is_deterministic():
    real, syn = _tiny_set(16, 0, "r"), _tiny_set(16, 1, "s")
    cfg = TrainConfig(steps=5, batch_size=8, width=2, hidden=4)
    mix = {"ratio": 1.0, "balance_classes": True, "schedule": Schedule("linear", 0.0, 2)}
    a = train_classifier(real, cfg, seed=1, synthetic=syn, mix=mix)
    b = train_classifier(real, cfg, seed=1, synthetic=syn, mix=mix)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(ConfigError, match="synthetic_share"):
        train_classifier(real, cfg, synthetic=syn, synthetic_share=1.0)


def test_read_imagefolder_and_filter_scores(tmp_path):
    from tests.conftest import write_image_folder

    syn = _tiny_set(8, 2, "s")
    root = write_image_folder(tmp_path / "syn", syn.images, syn.labels, syn.class_names)
    data = load_synthetic(root, ["a", "b"], (6, 6, 1))
    assert len(data) == 8 and data.images.class_counts().tolist() == [4, 4]
    with pytest.raises(DataError, match="no score column 'score_novelty'"):
        data.filtered("score_novelty", quantile=0.5)
    scored = from_imageset(syn, score_realism=np.arange(8.0))
    assert len(scored.filtered("score_realism", quantile=0.5)) == 4
    assert len(scored.filtered("score_realism", min_score=6)) == 2
    with pytest.raises(DataError, match="removed all"):
        scored.filtered("score_realism", min_score=100)
    with pytest.raises(DataError, match="does not exist"):
        load_synthetic(tmp_path / "missing", ["a", "b"])
