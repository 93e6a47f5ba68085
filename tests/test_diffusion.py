"""Diffusion generators: padding, guidance/null class, resumable training, SDEdit, checkpoints, CLI.

Tiny 8-16 px models and a few steps: each test runs in about a second on one thread.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from generators import Generator
from generators.diffusion import DiffusionGenerator, Img2ImgGenerator
from generators.diffusion.memorisation import leave_one_out_reference, novelty_against
from generators.diffusion.sampling import (
    _guided_eps,
    ddim_scheduler,
    resolve_sample_dtype,
    sampling_unet,
    strength_start,
)
from generators.diffusion.train import Selection, random_affine
from generators.diffusion.unet import Geometry
from synth.data import ImageSet
from synth.errors import CheckpointError, ConfigError
from tests.tiny_configs import TINY


def tiny(cls=DiffusionGenerator, **overrides):
    name = cls.name
    return cls(**{**TINY[name], **overrides})


def resized(data: ImageSet, size: int, rgb: bool = False) -> ImageSet:
    """The same digits at `size` px (nearest neighbour), optionally as 3-channel images."""
    idx = (np.arange(size) * data.image_shape[0]) // size
    images = data.images[:, idx][:, :, idx]
    if rgb:
        images = np.repeat(images, 3, axis=-1)
    return ImageSet.build(images, data.labels, data.ids, data.class_names)


@pytest.mark.parametrize("size,mode", [(10, "reflect"), (12, "constant"), (8, "reflect")])
def test_geometry_pads_to_the_unet_factor_and_crops_back_exactly(size, mode):
    geo = Geometry.for_shape((size, size + 2, 3), levels=3, pad_mode=mode)
    assert all(p % 4 == 0 for p in geo.padded)
    images = np.random.default_rng(0).integers(0, 256, (2, size, size + 2, 3), dtype=np.uint8)
    x = geo.to_model(images)
    assert tuple(x.shape) == (2, 3, *geo.padded) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(geo.to_pixels(x), images)


def test_bad_pad_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="pad_mode"):
        Geometry.for_shape((10, 10, 1), levels=3, pad_mode="wrap")


@pytest.mark.parametrize("rgb", [False, True])
def test_fit_and_sample_at_a_size_that_is_not_a_multiple_of_the_factor(tiny_labelled, rgb):
    data = resized(tiny_labelled, 10, rgb)
    gen = tiny(block_out_channels=[8, 8, 16]).fit(data)  # factor 4: 10 px is padded to 12
    out = gen.sample(1, seed=0)
    assert out.images.shape == (10, 10, 10, 3 if rgb else 1)
    assert gen._unet.config.sample_size in (12, [12, 12], (12, 12))


def test_null_class_is_the_extra_embedding_and_guidance_mixes_it(tiny_labelled):
    gen = tiny(guidance_scale=3.0).fit(tiny_labelled)
    assert gen.null_class == tiny_labelled.n_classes
    assert gen._unet.config.num_class_embeds == tiny_labelled.n_classes + 1
    x, t = torch.randn(2, 1, 8, 8), torch.tensor(500)
    labels = torch.tensor([1, 2])
    cond = gen._unet(x, t, class_labels=labels).sample
    null = gen._unet(x, t, class_labels=torch.full_like(labels, gen.null_class)).sample
    guided = _guided_eps(gen._unet, x, t, labels, gen.null_class, 3.0)
    torch.testing.assert_close(guided, null + 3.0 * (cond - null), rtol=1e-4, atol=1e-5)
    assert torch.equal(_guided_eps(gen._unet, x, t, labels, gen.null_class, 1.0), cond)


def test_bf16_sampling_is_close_to_float32_and_leaves_the_weights_float32(tiny_labelled):
    gen = tiny(sample_dtype="float32").fit(tiny_labelled)
    full = gen.sample(2, seed=3)
    gen.config["sample_dtype"] = "bfloat16"
    half = gen.sample(2, seed=3)
    assert gen._unet.dtype == torch.float32  # sampling casts a copy, never the stored model
    diff = np.abs(full.images.astype(int) - half.images.astype(int))
    assert diff.mean() < 4.0  # rounding of eps only: same images to within a few grey levels
    assert np.array_equal(half.images, gen.sample(2, seed=3).images)  # and deterministic
    x, t, labels = torch.randn(2, 1, 8, 8), torch.tensor(500), torch.tensor([1, 2])
    eps = _guided_eps(sampling_unet(gen._unet, torch.bfloat16), x, t, labels, gen.null_class, 2.0)
    assert eps.dtype == torch.float32


def test_sample_dtype_auto_resolves_and_bad_values_are_config_errors():
    assert resolve_sample_dtype("auto") in (torch.float32, torch.bfloat16)
    assert resolve_sample_dtype("float32") == torch.float32
    with pytest.raises(ConfigError, match="sample_dtype"):
        tiny(sample_dtype="float16")


def test_checkpoint_from_before_sample_dtype_loads_and_samples_in_float32(tiny_labelled, tmp_path):
    gen = tiny(sample_dtype="float32").fit(tiny_labelled)
    gen.save(tmp_path / "ck")
    meta_path = tmp_path / "ck" / "generator_config.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["sample_dtype"]  # what a checkpoint written before the option holds
    meta_path.write_text(json.dumps(meta))
    old = Generator.load(tmp_path / "ck")
    assert old.config["sample_dtype"] == "float32"
    assert np.array_equal(old.sample(2, seed=7).images, gen.sample(2, seed=7).images)
    assert Generator.load(tmp_path / "ck").config["block_out_channels"] == [8, 16]


def test_guidance_without_label_dropout_is_rejected():
    with pytest.raises(ConfigError, match="label_dropout"):
        tiny(guidance_scale=2.0, label_dropout=0.0)


def test_img2img_trains_unlabelled_images_as_the_null_class(tiny_labelled, digits_splits):
    unlabelled = digits_splits.unlabelled.subset(np.arange(20))
    gen = tiny(Img2ImgGenerator)
    gen.class_names = tiny_labelled.class_names
    _, labels = gen._training_set(tiny_labelled, unlabelled)
    assert np.array_equal(labels[: len(tiny_labelled)], tiny_labelled.labels)
    assert (labels[len(tiny_labelled):] == tiny_labelled.n_classes).all()


def test_resume_continues_the_step_count_and_keeps_weights_in_safetensors(tiny_labelled, tmp_path):
    work = tmp_path / "work"
    first = tiny(train_steps=2, work_dir=str(work)).fit(tiny_labelled)
    assert first.fit_info["start_step"] == 0 and first.fit_info["steps"] == 2
    assert (work / "last" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    state = load_file(work / "last" / "train.safetensors")
    assert any(k.startswith("opt.") and k.endswith("exp_avg") for k in state)
    resumed = tiny(train_steps=4, work_dir=str(work)).fit(tiny_labelled)
    assert resumed.fit_info["start_step"] == 2 and resumed.fit_info["steps"] == 4
    assert json.loads((work / "last" / "train.json").read_text())["step"] == 4
    assert [c["step"] for c in resumed.fit_info["novelty_curve"]] == [2, 4]
    assert list((work / "grids").glob("step-*.png"))
    # resumed training equals uninterrupted training: batches are seeded per step
    straight = tiny(train_steps=4).fit(tiny_labelled)
    assert np.array_equal(straight.sample(1, seed=5).images, resumed.sample(1, seed=5).images)


def test_resume_with_another_architecture_fails_clearly(tiny_labelled, tmp_path):
    tiny(train_steps=2, work_dir=str(tmp_path)).fit(tiny_labelled)
    with pytest.raises(CheckpointError, match="work_dir"):
        tiny(train_steps=4, work_dir=str(tmp_path), block_out_channels=[8, 8]).fit(tiny_labelled)


def test_random_affine_is_identity_at_zero_and_moves_pixels_otherwise():
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    rng = np.random.default_rng(0)
    torch.testing.assert_close(random_affine(x, rng), x, atol=1e-5, rtol=0)
    moved = random_affine(x, rng, rotate=20, scale=0.1, translate=0.1)
    assert moved.shape == x.shape and (moved - x).abs().mean() > 0.05


def test_augment_config_is_validated_and_used_in_training(tiny_labelled):
    with pytest.raises(ConfigError, match="augment"):
        tiny(augment={"shear": 5})
    plain = tiny(augment=None).fit(tiny_labelled)
    jittered = tiny(augment={"rotate": 10, "scale": 0.08, "translate": 0.06}).fit(tiny_labelled)
    assert not np.array_equal(plain.sample(1, seed=0).images, jittered.sample(1, seed=0).images)


def test_selection_keeps_latest_novel_weights_and_counts_patience():
    model = torch.nn.Linear(1, 1)
    sel = Selection(min_novelty=0.8)
    assert sel.offer(100, 0.5, model) and sel.step == 100  # nothing novel yet: most novel so far
    assert sel.offer(200, 0.9, model) and sel.step == 200
    assert sel.offer(300, 0.85, model) and sel.step == 300  # later and still novel enough wins
    assert not sel.offer(400, 0.6, model) and sel.step == 300 and sel.below == 1
    assert not sel.offer(500, 0.7, model) and sel.below == 2


def test_memorisation_control_stops_training_when_novelty_stays_low(tiny_labelled):
    gen = tiny(train_steps=8, eval_every=2, min_novelty=1e9, patience=2).fit(tiny_labelled)
    assert gen.fit_info["stopped_early"] and gen.fit_info["steps"] == 4
    assert not gen.fit_info["novelty_ok"]


def test_novelty_of_copies_is_zero_and_of_fresh_images_near_one(digits_splits):
    train = digits_splits.labelled.images
    ref = leave_one_out_reference(train)
    assert novelty_against(train[:20], train, ref) == 0.0
    fresh = novelty_against(digits_splits.unlabelled.images[:200], train, ref)
    assert 0.7 < fresh < 1.3


def test_img2img_records_parents_and_strength_zero_returns_the_parent(tiny_labelled):
    gen = tiny(Img2ImgGenerator, strength=0.0).fit(tiny_labelled)
    out = gen.sample(2, seed=4)
    by_id = dict(zip(tiny_labelled.ids, range(len(tiny_labelled)), strict=True))
    parents = np.array([by_id[p] for p in out.parent_ids])
    assert np.array_equal(tiny_labelled.labels[parents], out.labels)
    assert np.array_equal(out.images, tiny_labelled.images[parents])
    gen.config["strength"] = 0.5
    varied = gen.sample(2, seed=4)
    assert list(varied.parent_ids) == list(out.parent_ids)
    assert not np.array_equal(varied.images, out.images)


def test_strength_maps_to_a_suffix_of_the_ddim_steps(tiny_labelled):
    gen = tiny().fit(tiny_labelled)
    sched = ddim_scheduler(gen._scheduler, 10)
    assert [strength_start(sched, s) for s in (0.0, 0.3, 1.0)] == [10, 7, 0]
    with pytest.raises(ConfigError, match="strength"):
        strength_start(sched, 1.5)


def test_save_writes_safetensors_and_config_only(tiny_labelled, tmp_path):
    gen = tiny(Img2ImgGenerator).fit(tiny_labelled)
    gen.save(tmp_path / "ck")
    files = {p.relative_to(tmp_path / "ck").as_posix() for p in (tmp_path / "ck").rglob("*") if p.is_file()}
    assert "unet/diffusion_pytorch_model.safetensors" in files and "unet/config.json" in files
    assert "scheduler/scheduler_config.json" in files and "parents.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".ckpt"))]
    loaded = Generator.load(tmp_path / "ck")
    assert isinstance(loaded, Img2ImgGenerator) and loaded.config["strength"] == gen.config["strength"]


def test_cli_fit_then_generate_round_trip(tmp_path, monkeypatch):
    from synth.cli import main

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the CLI rewrites sys.argv for Hydra

    ck, out = tmp_path / "ck", tmp_path / "ds"
    overrides = [f"generator.{k}={json.dumps(v).replace(' ', '')}" for k, v in TINY["diffusion"].items() if k != "progress" and not isinstance(v, dict)]
    assert main(["fit", "generator=diffusion", "budget.n_per_class=3", f"out_dir={ck}", *overrides]) in (0, None)
    assert (ck / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert main(["generate", "generator=diffusion", f"checkpoint={ck}", "budget.n_per_class=3", "n_per_class=2",
                 "progress=false", f"out_dir={out}"]) in (0, None)
    pngs = sorted(out.glob("images/*/*.png"))
    assert len(pngs) == 20


@pytest.mark.parametrize("cls", [DiffusionGenerator, Img2ImgGenerator])
def test_python_defaults_match_the_shipped_yaml(cls):
    """Checkpoint-free code paths (DiffusionGenerator()) must sample like `generator=<name>` does."""
    from omegaconf import OmegaConf

    from tests.tiny_configs import _CONF

    shipped = OmegaConf.to_container(OmegaConf.load(_CONF / f"{cls.name}.yaml"))
    made = cls().config
    for key in ("block_out_channels", "sample_dtype", "sample_steps", "guidance_scale", "strength"):
        if key in shipped:
            assert made[key] == shipped[key], key
