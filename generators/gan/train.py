"""Training loop for the small-data conditional GAN, with collapse and divergence guards.

Hinge loss, spectral-norm projection D, DiffAugment on real and fake, an EMA copy of G for
sampling, optional mode-seeking regularisation. Because loss curves reveal neither collapse
nor memorisation (calibration notes), every `check_every` steps the EMA generator's
within-class diversity is measured relative to the real labelled images; a check that
passes is the new "last good" state (and, with a `work_dir`, the resumable checkpoint).
A non-finite or exploding loss, or diversity under `min_diversity`, restores the last good
state and raises `GANTrainingError` (or, with on_failure="stop", ends training there).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm.auto import tqdm

from generators.gan import checkpoint as ckpt
from generators.gan.diffaugment import DiffAugment
from generators.gan.networks import ConditionalGenerator, ProjectionDiscriminator, render
from synth.data.imageset import ImageSet
from synth.errors import CheckpointError, ConfigError, SynthError
from synth.neighbors import within_class_diversity
from synth.seeding import rng_for, sample_seeds
from synth.training import TrainConfig, train_classifier
from synth.viz import save_class_grid

BATCH_STREAM = 31  # rng_for sub-stream for real-batch indices
CHECK_SEED_OFFSET = 7919  # check samples use seeds disjoint from a user's seed=0 samples
TEACHER_SEED_OFFSET = 104729  # the class-consistency teacher's own seed


class GANTrainingError(SynthError):
    """Training diverged or collapsed; the last good state was restored (and kept on disk)."""


@dataclass
class GANConfig:
    """Everything that shapes a GAN run (the GANGenerator's constructor arguments)."""

    z_dim: int = 64
    g_channels: int = 64
    d_channels: int = 64
    steps: int = 3000
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    ema_decay: float = 0.999
    diffaugment: list[str] = field(default_factory=lambda: ["translation", "cutout", "brightness"])
    cutout_ratio: float = 0.5
    #: Mode-seeking (MSGAN) weight: penalises G for mapping different z to similar images.
    ds_weight: float = 0.0
    #: AC-GAN-style class head on D (trained on real labels only); G gets ac_weight * CE on fakes.
    ac_weight: float = 0.0
    #: Class-consistency loss from a frozen classifier trained on the SAME labelled images with
    #: online augmentation (synth.training.train_classifier): G gets cls_weight * CE on fakes.
    cls_weight: float = 0.0
    #: Training steps of that frozen classifier.
    teacher_steps: int = 600
    check_every: int = 250
    check_per_class: int = 20
    #: Fail (or stop) when EMA-sample within-class diversity / real's falls below this.
    min_diversity: float = 0.5
    #: No collapse verdict before this step (early samples are noise-like or near-constant).
    diversity_warmup: int = 500
    on_failure: str = "raise"
    #: |loss| above this counts as divergence, like NaN/inf.
    max_abs_loss: float = 1e4
    #: Where checkpoints (resumable, last good) and sample grids go; None keeps them in memory.
    work_dir: str | None = None
    progress: bool = True
    seed: int = 0
    sample_batch: int = 2048

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.diffaugment = list(self.diffaugment)
        positive = ("z_dim", "g_channels", "d_channels", "steps", "batch_size", "check_every", "check_per_class", "sample_batch")
        for key in positive:
            if int(getattr(self, key)) <= 0:
                raise ConfigError(f"generator.{key} must be a positive integer, got {getattr(self, key)}")
        if self.check_per_class < 2:
            raise ConfigError("generator.check_per_class must be >= 2 (diversity needs pairs)")
        if self.lr_g < 0 or self.lr_d < 0 or not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"need lr_g, lr_d >= 0 and 0 <= ema_decay < 1, got {self.lr_g}, {self.lr_d}, {self.ema_decay}")
        if self.on_failure not in ("raise", "stop"):
            raise ConfigError(f"generator.on_failure must be 'raise' or 'stop', got {self.on_failure!r}")
        for key in ("ds_weight", "min_diversity", "ac_weight", "cls_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"generator.{key} must be >= 0, got {getattr(self, key)}")
        if self.cls_weight > 0 and self.teacher_steps <= 0:
            raise ConfigError(f"generator.teacher_steps must be > 0 when cls_weight > 0, got {self.teacher_steps}")

    def architecture(self) -> dict[str, Any]:
        arch: dict[str, Any] = {"z_dim": self.z_dim, "g_channels": self.g_channels, "d_channels": self.d_channels}
        if self.ac_weight > 0:  # only when on, so older checkpoints keep their fingerprint
            arch["aux_classifier"] = True
        return arch


def to_signed(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def build_generator(cfg: GANConfig, n_classes: int, image_shape: tuple[int, int, int]) -> ConditionalGenerator:
    return ConditionalGenerator(n_classes, image_shape, z_dim=cfg.z_dim, channels=cfg.g_channels)


class GANTrainer:
    """One training run on a labelled ImageSet; `train()` returns the fit_info dict."""

    def __init__(self, cfg: GANConfig, labelled: ImageSet) -> None:
        self.cfg = cfg
        self.data = labelled
        self.n_classes = labelled.n_classes
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            G = build_generator(cfg, self.n_classes, labelled.image_shape)
            D = ProjectionDiscriminator(
                self.n_classes, labelled.image_shape, channels=cfg.d_channels, aux_classifier=cfg.ac_weight > 0
            )
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False).to(self.accelerator.device)
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.G, self.D, self.opt_g, self.opt_d = self.accelerator.prepare(G, D, opt_g, opt_d)
        self.augment = DiffAugment(cfg.diffaugment, fill=-1.0, cutout_ratio=cfg.cutout_ratio)
        self.teacher = train_teacher(labelled, cfg) if cfg.cls_weight > 0 else None
        self.real = to_signed(labelled.images).to(self.accelerator.device)
        self.real_labels = torch.from_numpy(labelled.labels).to(self.accelerator.device)
        self.real_diversity = within_class_diversity(labelled.images, labelled.labels)
        self.torch_gen = torch.Generator().manual_seed(cfg.seed)
        self.rng = rng_for(cfg.seed, BATCH_STREAM)
        self.step = 0
        self.history: dict[str, list] = {"diversity": [], "loss_d": [], "loss_g": []}
        self._window: list[tuple[float, float]] = []
        self.last_good: dict[str, Any] | None = None
        self.work_dir = Path(cfg.work_dir) if cfg.work_dir else None
        self.fingerprint = self._fingerprint()

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        resumed_from = self._resume()
        stop_reason = "completed"
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc="gan", unit="step", disable=not self.cfg.progress)
        while self.step < self.cfg.steps:
            loss_d, loss_g = self._train_step()
            self.step += 1
            bar.update(1)
            problem = self._loss_problem(loss_d, loss_g)
            if problem is None and (self.step % self.cfg.check_every == 0 or self.step == self.cfg.steps):
                problem = self._check()
            if problem is not None:
                stop_reason = self._fail(problem)
                break
            if self.step % 50 == 0:
                bar.set_postfix(loss_d=f"{loss_d:.3f}", loss_g=f"{loss_g:.3f}")
        bar.close()
        return {
            "steps_done": self.step,
            "stop_reason": stop_reason,
            "resumed_from_step": resumed_from,
            "real_diversity": self.real_diversity,
            "final_diversity": self.last_good["diversity"] if self.last_good else None,
            "kept_step": self.last_good["step"] if self.last_good else None,
            "diversity_curve": self.history["diversity"],
            "loss_d_curve": self.history["loss_d"],
            "loss_g_curve": self.history["loss_g"],
            "train_seconds": round(time.perf_counter() - t0, 2),
            "work_dir": str(self.work_dir) if self.work_dir else None,
        }

    def _train_step(self) -> tuple[float, float]:
        cfg, g, dev = self.cfg, self.torch_gen, self.accelerator.device
        idx = torch.from_numpy(self.rng.integers(len(self.real), size=cfg.batch_size)).to(dev)
        x_real, y_real = self.real[idx], self.real_labels[idx]
        y_fake = torch.randint(self.n_classes, (cfg.batch_size,), generator=g).to(dev)
        z = torch.randn(cfg.batch_size, cfg.z_dim, generator=g).to(dev)
        with torch.no_grad():
            fake = self.G(z, y_fake)
        self.D.requires_grad_(True)
        d_real, logits_real = self.D.score_and_logits(self.augment(x_real, g), y_real)
        d_fake = self.D(self.augment(fake, g), y_fake)
        loss_d = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
        if logits_real is not None:  # the class head learns from real labels only
            loss_d = loss_d + cfg.ac_weight * F.cross_entropy(logits_real, y_real)
        self.opt_d.zero_grad(set_to_none=True)
        self.accelerator.backward(loss_d)
        self.opt_d.step()

        self.D.requires_grad_(False)
        half = max(cfg.batch_size // 2, 1)
        y_half = torch.randint(self.n_classes, (half,), generator=g)
        y = torch.cat([y_half, y_half]).to(dev)  # pairs share a label for the mode-seeking term
        z = torch.randn(2 * half, cfg.z_dim, generator=g).to(dev)
        fake = self.G(z, y)
        d_gen, logits_gen = self.D.score_and_logits(self.augment(fake, g), y)
        loss_g = -d_gen.mean()
        if logits_gen is not None:
            loss_g = loss_g + cfg.ac_weight * F.cross_entropy(logits_gen, y)
        if self.teacher is not None:
            loss_g = loss_g + cfg.cls_weight * F.cross_entropy(self.teacher((fake + 1.0) * 0.5), y)
        if cfg.ds_weight > 0:
            img_gap = (fake[:half] - fake[half:]).abs().mean(dim=(1, 2, 3))
            z_gap = (z[:half] - z[half:]).abs().mean(dim=1)
            loss_g = loss_g + cfg.ds_weight / ((img_gap / z_gap).mean() + 1e-5)
        self.opt_g.zero_grad(set_to_none=True)
        self.accelerator.backward(loss_g)
        self.opt_g.step()
        self._update_ema()
        ld, lg = float(loss_d.detach()), float(loss_g.detach())
        self._window.append((ld, lg))
        return ld, lg

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.cfg.ema_decay, (1.0 + self.step) / (10.0 + self.step))
        source = self.accelerator.unwrap_model(self.G)
        for p_ema, p in zip(self.G_ema.parameters(), source.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - decay)

    # ------------------------------------------------------------------ guards
    def _loss_problem(self, loss_d: float, loss_g: float) -> str | None:
        for name, value in (("loss_d", loss_d), ("loss_g", loss_g)):
            if not math.isfinite(value):
                return f"diverged: {name} is {value} at step {self.step}"
            if abs(value) > self.cfg.max_abs_loss:
                return f"diverged: |{name}| = {abs(value):.3g} > max_abs_loss {self.cfg.max_abs_loss:g} at step {self.step}"
        return None

    def check_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """EMA-generator samples at fixed seeds: check_per_class of every class."""
        labels = np.tile(np.arange(self.n_classes), self.cfg.check_per_class)
        seeds = sample_seeds(self.cfg.seed + CHECK_SEED_OFFSET, np.arange(len(labels)))
        return render(self.G_ema, labels, seeds, self.cfg.sample_batch, self.accelerator.device), labels

    def diversity(self) -> float:
        """EMA samples' within-class diversity relative to the real labelled images (1.0 = as diverse)."""
        images, labels = self.check_samples()
        return within_class_diversity(images, labels) / max(self.real_diversity, 1e-8)

    def _check(self) -> str | None:
        images, labels = self.check_samples()
        ratio = within_class_diversity(images, labels) / max(self.real_diversity, 1e-8)
        self.history["diversity"].append([self.step, round(ratio, 4)])
        if self._window:
            mean = np.mean(self._window, axis=0)
            self.history["loss_d"].append([self.step, round(float(mean[0]), 4)])
            self.history["loss_g"].append([self.step, round(float(mean[1]), 4)])
            self._window = []
        if not math.isfinite(ratio):
            return f"diverged: EMA samples are not finite at step {self.step}"
        if self.step >= self.cfg.diversity_warmup and ratio < self.cfg.min_diversity:
            return (
                f"collapsed: within-class diversity of EMA samples is {ratio:.3f} of real at step {self.step}, "
                f"below min_diversity {self.cfg.min_diversity}"
            )
        self._mark_good(ratio, images, labels)
        return None

    def _mark_good(self, ratio: float, images: np.ndarray, labels: np.ndarray) -> None:
        self.last_good = {"step": self.step, "diversity": ratio, "tensors": self._state_tensors()}
        if self.work_dir is not None:
            ckpt.write_checkpoint(self.work_dir / "checkpoint", self.last_good["tensors"], self._state_meta())
            save_class_grid(self.work_dir / "grids" / f"step_{self.step:06d}.png", images, labels, self.data.class_names)

    def _fail(self, problem: str) -> str:
        """Restore the last good state; raise unless on_failure='stop' and a good state exists."""
        if self.last_good is not None:
            self._restore(self.last_good["tensors"])
            where = f" on disk at {self.work_dir / 'checkpoint'}" if self.work_dir else " in memory (set work_dir to keep it on disk)"
            kept = (
                f"the last good state (step {self.last_good['step']}, diversity {self.last_good['diversity']:.3f} of real) "
                f"was restored and is kept{where}"
            )
            if self.cfg.on_failure == "stop":
                return f"stopped early: {problem}; {kept}"
        else:
            kept = "no check had passed yet, so there is no good state to keep"
        raise GANTrainingError(
            f"GAN training {problem}; {kept}. Try lower lr_g/lr_d, a stronger `diffaugment` policy, "
            "ds_weight > 0 or fewer steps; or set generator.on_failure=stop to keep the last good state and go on."
        )

    # ------------------------------------------------------------ state & resume
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        unwrap = self.accelerator.unwrap_model
        tensors = {
            **ckpt.with_prefix("G", unwrap(self.G).state_dict()),
            **ckpt.with_prefix("D", unwrap(self.D).state_dict()),
            **ckpt.with_prefix("G_ema", self.G_ema.state_dict()),
            "rng.torch": self.torch_gen.get_state().clone(),
        }
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            flat, groups = ckpt.flatten_optimizer(name, opt.state_dict())
            tensors.update(flat)
            self._param_groups = getattr(self, "_param_groups", {})
            self._param_groups[name] = groups
        return tensors

    def _state_meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "fingerprint": self.fingerprint,
            "history": self.history,
            "numpy_rng": self.rng.bit_generator.state,
            "param_groups": self._param_groups,
            "last_good": {"step": self.last_good["step"], "diversity": self.last_good["diversity"]} if self.last_good else None,
        }

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
        unwrap = self.accelerator.unwrap_model
        unwrap(self.G).load_state_dict(ckpt.strip_prefix("G", tensors))
        unwrap(self.D).load_state_dict(ckpt.strip_prefix("D", tensors))
        self.G_ema.load_state_dict(ckpt.strip_prefix("G_ema", tensors))
        if meta is not None:
            for name, opt, lr in (("opt_g", self.opt_g, self.cfg.lr_g), ("opt_d", self.opt_d, self.cfg.lr_d)):
                opt.load_state_dict(ckpt.unflatten_optimizer(name, tensors, meta["param_groups"][name]))
                for group in opt.param_groups:  # a resumed run may change the learning rate
                    group["lr"] = lr
            self.torch_gen.set_state(tensors["rng.torch"])
            self.rng.bit_generator.state = meta["numpy_rng"]
            self.step = int(meta["step"])
            self.history = meta["history"]

    def _resume(self) -> int | None:
        if self.work_dir is None:
            return None
        found = ckpt.read_checkpoint(self.work_dir / "checkpoint")
        if found is None:
            return None
        tensors, meta = found
        if meta.get("fingerprint") != self.fingerprint:
            raise CheckpointError(
                f"{self.work_dir / 'checkpoint'} belongs to a different GAN run (other data, classes or architecture); "
                "point generator.work_dir at a new directory or delete the old one"
            )
        self._restore(tensors, meta)
        self.last_good = {"step": self.step, "diversity": (meta.get("last_good") or {}).get("diversity", float("nan")),
                          "tensors": tensors}
        return self.step

    def _fingerprint(self) -> str:
        """What must match for a checkpoint to be resumable: data ids, classes, shape, architecture, seed."""
        parts = [
            ",".join(map(str, self.data.ids)), ",".join(self.data.class_names), str(self.data.image_shape),
            str(sorted(self.cfg.architecture().items())), str(self.cfg.seed),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def train_teacher(labelled: ImageSet, cfg: GANConfig) -> torch.nn.Module:
    """A frozen SmallCNN trained on the GAN's own labelled images with online augmentation.

    It sees exactly the images the GAN sees (the strict n-labelled protocol holds); its
    cross-entropy on generated images tells G which class a sample reads as. Deterministic
    per seed, so a resumed run rebuilds the same teacher instead of storing it.
    """
    from synth.scoring.features import judge_augment

    model = train_classifier(
        labelled, TrainConfig(steps=cfg.teacher_steps), seed=cfg.seed + TEACHER_SEED_OFFSET, augment=judge_augment()
    )
    return model.eval().requires_grad_(False)


def config_from_kwargs(kwargs: dict[str, Any]) -> GANConfig:
    """GANConfig from constructor kwargs, naming an unknown key instead of a bare TypeError."""
    known = {f.name for f in dataclasses.fields(GANConfig)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"unknown GAN generator option(s) {unknown}; known options: {sorted(known)}")
    return GANConfig(**kwargs)
