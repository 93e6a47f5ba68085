"""Procedural augmenters: every op of every preset, determinism, tiny sizes, label preservation."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from generators.procedural import BACKENDS, build_augmenter
from synth.errors import ConfigError
from synth.recipe.policy import OPS
from tests.conftest import CONF

PRESETS = sorted(p.stem for p in (CONF / "generator").glob("*.yaml")
                 if OmegaConf.load(p)["_target_"].startswith("generators.procedural"))
PARAMETERLESS = {"HorizontalFlip"}
ALL_OPS = [(preset, i, op) for preset in PRESETS
           for i, op in enumerate(OmegaConf.to_container(OmegaConf.load(CONF / "generator" / f"{preset}.yaml"))["ops"])]


def test_at_least_light_and_strong_presets_exist():
    assert {"light", "strong"} <= set(PRESETS)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("preset,i,op", ALL_OPS, ids=[f"{p}-{i}-{op['name']}" for p, i, op in ALL_OPS])
@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (12, 10, 3)])
def test_every_op_keeps_shape_dtype_and_is_seeded(backend, preset, i, op, shape):
    # a flip has no parameter to draw: at p=1 it is deterministic, so its randomness is whether it applies
    p = 0.5 if op["name"] in PARAMETERLESS else 1.0
    aug = build_augmenter([{**op, "p": p}], working_size=32, backend=backend)
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    a = aug(img, np.random.default_rng(5))
    b = aug(img, np.random.default_rng(5))
    assert a.shape == shape and a.dtype == np.uint8
    assert np.array_equal(a, b), "same rng seed must give the same augmentation"
    outs = {aug(img, np.random.default_rng(s)).tobytes() for s in range(6)}
    assert len(outs) > 1, f"{op['name']} ignores its rng"
    rebuilt = build_augmenter(**{k: v for k, v in aug.to_dict().items()})
    assert np.array_equal(rebuilt(img, np.random.default_rng(5)), a), "to_dict must rebuild the same augmenter"


def test_input_image_is_not_mutated():
    aug = build_augmenter([{"name": "Affine", "rotate": [-30, 30], "p": 1.0}])
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 1), dtype=np.uint8)
    before = img.copy()
    aug(img, np.random.default_rng(0))
    assert np.array_equal(img, before)


@pytest.mark.parametrize("ops, match", [
    ([{"name": "NoSuchTransform"}], "unknown albumentations transform"),
    ([{"name": "Affine", "rotate": "sideways"}], "invalid parameters"),
])
def test_bad_ops_are_config_errors(ops, match):
    with pytest.raises(ConfigError, match=match):
        build_augmenter(ops)


def test_unknown_backend_and_bad_working_size():
    with pytest.raises(ConfigError, match="backend"):
        build_augmenter([], backend="kornia-nope")
    with pytest.raises(ConfigError, match="working_size"):
        build_augmenter([], working_size=0)
    for backend in BACKENDS:
        with pytest.raises(ConfigError, match="resample must be one of"):
            build_augmenter([], backend=backend, resample="bicubic")


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (10, 13, 3)])
def test_exact_resample_returns_a_draw_no_op_touched_unchanged(backend, shape):
    """The working-size round trip must not itself change the image; only the ops may."""
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    untouched = [{"name": "HorizontalFlip", "p": 0.0}]
    assert np.array_equal(build_augmenter(untouched, 32, backend, "exact")(img, np.random.default_rng(1)), img)
    if 2 * min(shape[:2]) <= 32:  # what "exact" removes: bilinear up + area down blurs every draw
        assert not np.array_equal(build_augmenter(untouched, 32, backend, "bilinear")(img, np.random.default_rng(1)), img)
    aug = build_augmenter([{"name": "Affine", "rotate": [-20, 20], "p": 1.0}], 32, backend, "exact")
    a = aug(img, np.random.default_rng(5))
    assert a.shape == shape and not np.array_equal(a, img)
    assert aug.to_dict()["resample"] == "exact"
    assert np.array_equal(build_augmenter(**aug.to_dict())(img, np.random.default_rng(5)), a)


@pytest.fixture(scope="module")
def judge(digits_source):
    """A classifier trained on the whole digits training pool: used only as a judge."""
    from synth.training import TrainConfig, train_classifier

    return train_classifier(digits_source.splits(seed=0).labelled, TrainConfig(), seed=0)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_light_preset_preserves_labels_on_digits(judge, digits_source, backend):
    """Augment held-out test digits (unseen by the judge); the judge must keep >= 95 % of labels."""
    from synth.config import build
    from synth.training import accuracy, predict_proba

    test = digits_source.test
    base = accuracy(judge, test)
    cfg = OmegaConf.load(CONF / "generator" / "light.yaml")
    cfg.backend = backend
    gen = build(cfg, "generator").fit(test)
    samples = gen.sample(40, seed=0)
    agree = float((predict_proba(judge, samples.images).argmax(1) == samples.labels).mean())
    assert base >= 0.97
    assert agree >= 0.95, f"light preset flips labels: judge agrees on {agree:.3f} (clean accuracy {base:.3f})"


POLICY_OPS = sorted(OPS)


@pytest.mark.parametrize("name", POLICY_OPS)
def test_torch_backend_runs_every_policy_op_and_batches_exactly(name):
    """Every op the policy search can emit runs on the torch backend; a batch equals one call per image."""
    aug = build_augmenter([{**OPS[name](0.6), "p": 1.0} | ({"size": [16, 16]} if name == "crop" else {})],
                          working_size=16, backend="torch")
    imgs = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    batch = aug.batch(imgs, [np.random.default_rng(s) for s in range(5)])
    single = np.stack([aug(im, np.random.default_rng(s)) for s, im in enumerate(imgs)])
    assert batch.dtype == np.uint8 and np.array_equal(batch, single)
    assert not np.array_equal(batch, imgs), f"{name} changed nothing"


@pytest.mark.parametrize("ops, match", [
    ([{"name": "Solarize"}], "torch augmenter backend has no 'Solarize'.*albumentations"),
    ([{"name": "Affine", "rotation": [0, 5]}], r"unsupported parameter\(s\) \['rotation'\]"),
    ([{"name": "Affine", "rotate": [5, -5]}], "low 5.0 > high -5.0"),
    ([{"name": "GaussNoise", "p": 1.5}], "p must be in"),
    ([{"name": "RandomResizedCrop"}], "`size` is required"),
])
def test_torch_backend_bad_ops_are_config_errors(ops, match):
    with pytest.raises(ConfigError, match=match):
        build_augmenter(ops, backend="torch")


def test_torch_backend_affine_matches_albumentations_geometry():
    """The same rotation moves the same pixels (up to interpolation): one op meaning, two backends."""
    img = np.zeros((8, 8, 1), np.uint8)
    img[1:3, 2:6] = 255  # a bar near the top
    outs = [build_augmenter([{"name": "Affine", "rotate": [90, 90], "p": 1.0}], 32, b)(img, np.random.default_rng(0))
            for b in ("albumentations", "torch")]
    assert np.abs(outs[0].astype(int) - outs[1]).mean() < 8, "torch and albumentations rotate differently"
    assert np.abs(outs[1].astype(int) - img).mean() > 30  # ... and the rotation did move the bar


def test_a_procedural_checkpoint_saved_before_resample_existed_loads_as_bilinear(tmp_path, digits_source):
    """Old checkpoints must keep sampling what they sampled: their config has no `resample` key."""
    import json

    from generators.base import CONFIG_FILE, Generator
    from generators.procedural import ProceduralGenerator

    gen = ProceduralGenerator(ops=[{"name": "Affine", "rotate": [-10, 10], "p": 1.0}], backend="torch")
    gen.fit(digits_source.pool.subset(np.arange(20)))
    assert Generator.load(gen.save(tmp_path / "new")).config["resample"] == "exact"
    gen.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / CONFIG_FILE).read_text())
    del meta["config"]["resample"]
    (tmp_path / "old" / CONFIG_FILE).write_text(json.dumps(meta))
    old = Generator.load(tmp_path / "old")
    assert old.augmenter.to_dict()["resample"] == "bilinear"

