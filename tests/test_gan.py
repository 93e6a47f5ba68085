"""GAN: DiffAugment, divergence/collapse guards, resumable safetensors checkpoints, sampling speed."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from generators import Generator
from generators.gan import GANGenerator
from generators.gan.diffaugment import DiffAugment
from generators.gan.networks import ConditionalGenerator, ProjectionDiscriminator, layout
from generators.gan.train import GANConfig, GANTrainer, GANTrainingError
from synth.errors import CheckpointError, ConfigError

TINY = dict(
    z_dim=8, g_channels=16, d_channels=16, steps=4, batch_size=16, check_every=2, check_per_class=4,
    diversity_warmup=10**6, progress=False,
)


def test_diffaugment_is_differentiable_and_shape_preserving():
    aug = DiffAugment(["translation", "cutout", "brightness", "contrast", "saturation"])
    real = torch.rand(6, 3, 8, 8) * 2 - 1
    fake = (torch.rand(6, 3, 8, 8) * 2 - 1).requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    out_real, out_fake = aug(real, g), aug(fake, g)
    assert out_real.shape == real.shape and out_fake.shape == fake.shape
    assert not torch.equal(out_real, real), "augmentation was the identity"
    out_fake.square().sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    # Same generator state -> same augmentation: it is seeded, not global-RNG driven.
    a = aug(real, torch.Generator().manual_seed(3))
    b = aug(real, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_diffaugment_translation_and_cutout_expose_fill():
    x = torch.ones(32, 1, 8, 8)
    g = torch.Generator().manual_seed(1)
    shifted = DiffAugment(["translation"])(x, g)
    assert set(shifted.unique().tolist()) <= {-1.0, 1.0} and (shifted == -1).any()
    holed = DiffAugment(["cutout"], cutout_ratio=0.5)(x, g)
    assert ((holed == -1).flatten(1).sum(1) > 0).all(), "every image gets a hole"
    assert torch.equal(DiffAugment([])(x, g), x)
    with pytest.raises(ConfigError, match="unknown DiffAugment"):
        DiffAugment(["rotate90"])


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (12, 10, 3)])
def test_networks_fit_any_image_size(shape):
    G = ConditionalGenerator(4, shape, z_dim=8, channels=16)
    D = ProjectionDiscriminator(4, shape, channels=16)
    y = torch.tensor([0, 3])
    x = G(torch.randn(2, 8), y)
    assert x.shape == (2, shape[2], shape[0], shape[1])
    assert D(x, y).shape == (2,)
    assert layout(28, 28) == (2, 7, 7) and layout(8, 8) == (1, 4, 4)


def test_nan_divergence_fails_loudly_and_keeps_last_good_checkpoint(tiny_labelled, tmp_path):
    work = tmp_path / "work"
    GANGenerator(**TINY, work_dir=str(work)).fit(tiny_labelled)
    good = load_file(work / "checkpoint" / "state.safetensors")
    assert json.loads((work / "checkpoint" / "state.json").read_text())["step"] == 4
    # Resume from step 4 with absurd learning rates: the weights blow up to inf/NaN.
    gen = GANGenerator(**{**TINY, "steps": 8, "lr_d": 1e30, "lr_g": 1e30}, work_dir=str(work))
    with pytest.raises(GANTrainingError, match=r"diverged.*last good state \(step 4"):
        gen.fit(tiny_labelled)
    kept = load_file(work / "checkpoint" / "state.safetensors")
    assert all(torch.equal(kept[k], good[k]) for k in good), "the last good checkpoint was overwritten"
    for k, v in gen.net.state_dict().items():  # the generator holds the restored good weights
        assert torch.equal(v, good[f"G_ema.{k}"])
    assert gen.sample(1, seed=0).images.std() > 0


def _z_blind_trainer(tiny_labelled, **overrides) -> GANTrainer:
    """A trainer whose generator ignores z: z's input weights are zero and G never learns (lr_g=0)."""
    cfg = GANConfig(**{**TINY, "lr_g": 0.0, "steps": 6, "min_diversity": 0.3, **overrides})
    trainer = GANTrainer(cfg, tiny_labelled)
    with torch.no_grad():
        for net in (trainer.accelerator.unwrap_model(trainer.G), trainer.G_ema):
            net.fc.weight[:, : cfg.z_dim] = 0.0
    return trainer


def test_collapse_detection_raises_on_a_generator_that_ignores_z(tiny_labelled):
    trainer = _z_blind_trainer(tiny_labelled, diversity_warmup=0)
    assert trainer.diversity() == 0.0
    with pytest.raises(GANTrainingError, match="collapsed: within-class diversity of EMA samples is 0.000"):
        trainer.train()


def test_collapse_with_on_failure_stop_keeps_the_last_good_state(tiny_labelled):
    trainer = _z_blind_trainer(tiny_labelled, diversity_warmup=3, on_failure="stop")
    info = trainer.train()
    assert info["stop_reason"].startswith("stopped early: collapsed")
    assert info["steps_done"] == 4 and info["kept_step"] == 2
    assert [s for s, _ in info["diversity_curve"]] == [2, 4]


def test_resumed_training_matches_uninterrupted_training(tiny_labelled, tmp_path):
    straight = GANGenerator(**{**TINY, "steps": 6}, work_dir=str(tmp_path / "a")).fit(tiny_labelled)
    GANGenerator(**TINY, work_dir=str(tmp_path / "b")).fit(tiny_labelled)
    resumed = GANGenerator(**{**TINY, "steps": 6}, work_dir=str(tmp_path / "b")).fit(tiny_labelled)
    assert resumed.fit_info["resumed_from_step"] == 4
    assert np.array_equal(straight.sample(2, seed=1).images, resumed.sample(2, seed=1).images)
    grids = sorted(p.name for p in (tmp_path / "b" / "grids").glob("*.png"))
    assert grids == ["step_000002.png", "step_000004.png", "step_000006.png"]


def test_save_load_uses_safetensors_and_json_only(tiny_labelled, tmp_path):
    gen = GANGenerator(**TINY, work_dir=str(tmp_path / "work")).fit(tiny_labelled)
    gen.save(tmp_path / "ckpt")
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert files == {"generator_config.json", "generator_ema.safetensors"}
    suffixes = {p.suffix for p in (tmp_path / "work").rglob("*") if p.is_file()}
    assert suffixes <= {".safetensors", ".json", ".png"}
    loaded = Generator.load(tmp_path / "ckpt")
    assert np.array_equal(loaded.sample(3, seed=5).images, gen.sample(3, seed=5).images)
    (tmp_path / "ckpt" / "generator_ema.safetensors").unlink()
    with pytest.raises(CheckpointError, match="generator_ema.safetensors"):
        Generator.load(tmp_path / "ckpt")


def test_resume_refuses_a_checkpoint_from_other_data(tiny_labelled, tmp_path):
    GANGenerator(**TINY, work_dir=str(tmp_path / "w")).fit(tiny_labelled)
    other = tiny_labelled.subset(np.arange(len(tiny_labelled) - 1))
    with pytest.raises(CheckpointError, match="different GAN run"):
        GANGenerator(**TINY, work_dir=str(tmp_path / "w")).fit(other)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown GAN generator option"):
        GANGenerator(stepz=3)
    with pytest.raises(ConfigError, match="on_failure"):
        GANGenerator(on_failure="ignore")


def test_sampling_throughput_sanity(tiny_labelled):
    gen = GANGenerator(**{**TINY, "steps": 1, "check_every": 1, "g_channels": 32, "z_dim": 64}).fit(tiny_labelled)
    gen.sample(10, seed=0)  # warm-up
    t0 = time.perf_counter()
    out = gen.sample(400, seed=1)
    rate = len(out) / (time.perf_counter() - t0)
    # Default-size 8 px generator, one thread on a shared machine: far below the ~10k img/s
    # benchmark on 2 threads, but a per-sample Python loop or a slow path would fail this.
    assert rate > 500, f"{rate:.0f} img/s"


def test_latents_are_per_seed_and_standard_normal():
    from generators.gan.networks import latents
    from synth.seeding import sample_seeds

    seeds = sample_seeds(3, np.arange(2000))
    z = latents(seeds, 63)  # odd z_dim: Box-Muller pairs are cut back
    assert z.shape == (2000, 63) and z.dtype == torch.float32
    assert torch.equal(latents(seeds[17:19], 63), z[17:19]), "a latent depends on its own seed only"
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1.0) < 0.02
    assert abs(float(np.corrcoef(z[:, 0], z[:, 32])[0, 1])) < 0.1  # cos/sin halves are not coupled


def test_class_consistency_losses_train_and_stay_frozen(tiny_labelled):
    cfg = GANConfig(**{**TINY, "ac_weight": 1.0, "cls_weight": 1.0, "teacher_steps": 40})
    trainer = GANTrainer(cfg, tiny_labelled)
    assert trainer.D.aux is not None and trainer.teacher is not None
    assert not any(p.requires_grad for p in trainer.teacher.parameters()), "the teacher must stay frozen"
    before = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    head_before = trainer.D.aux.weight.detach().clone()
    info = trainer.train()
    assert info["steps_done"] == 4
    assert not torch.equal(trainer.D.aux.weight, head_before), "D's class head did not learn"
    assert all(torch.equal(v, before[k]) for k, v in trainer.teacher.state_dict().items())
    # The aux head is part of the architecture (fingerprint); off, the old fingerprint is kept.
    assert GANConfig(**TINY).architecture() == {"z_dim": 8, "g_channels": 16, "d_channels": 16}
    assert cfg.architecture()["aux_classifier"] is True
    with pytest.raises(ConfigError, match="cls_weight"):
        GANConfig(cls_weight=-1.0)


def test_old_checkpoint_without_new_keys_loads_and_a_mismatched_one_fails_clearly(tiny_labelled, tmp_path):
    gen = GANGenerator(**TINY).fit(tiny_labelled)
    gen.save(tmp_path / "ckpt")
    meta_path = tmp_path / "ckpt" / "generator_config.json"
    meta = json.loads(meta_path.read_text())
    for key in ("ac_weight", "cls_weight", "teacher_steps"):  # a config written before these existed
        meta["config"].pop(key, None)
    meta_path.write_text(json.dumps(meta))
    assert np.array_equal(Generator.load(tmp_path / "ckpt").sample(2, seed=4).images, gen.sample(2, seed=4).images)
    meta["config"]["g_channels"] = 32
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit the generator"):
        Generator.load(tmp_path / "ckpt")


def test_render_on_a_thread_pool_matches_serial_and_restores_threads():
    from generators.gan.networks import render
    from synth.seeding import sample_seeds

    net = ConditionalGenerator(10, (8, 8, 1), z_dim=8, channels=16)
    labels, seeds = np.arange(50) % 10, sample_seeds(2, np.arange(50))
    serial = render(net, labels, seeds, batch=7, workers=1)
    threads = torch.get_num_threads()
    pooled = render(net, labels, seeds, batch=7, workers=3)
    assert torch.get_num_threads() == threads, "render must restore the caller's thread count"
    assert np.array_equal(serial, pooled), "chunking and workers must not change the samples"
    assert np.array_equal(render(net, labels[10:12], seeds[10:12], workers=1), serial[10:12])
