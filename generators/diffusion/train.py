"""DDPM training loop: accelerate, EMA, periodic checkpoints, novelty-based model selection.

Every random draw of step s comes from generators seeded by (seed, s), so a run resumed
from a checkpoint takes the same batches as one that never stopped.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

from generators.diffusion import state as ckpt
from generators.diffusion.memorisation import NoveltyMonitor
from synth.seeding import rng_for
from synth.viz import save_class_grid

log = logging.getLogger("synth.diffusion")
TRAIN_STREAM = 31


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int
    lr: float
    ema_decay: float
    label_dropout: float
    seed: int
    eval_every: int  # 0: no novelty evaluation
    min_novelty: float | None  # None: no memorisation control (keep the final EMA)
    patience: int  # evaluations below min_novelty before training stops
    checkpoint_every: int
    work_dir: Path | None
    progress: bool
    augment: dict[str, float] | None = None  # {rotate: deg, scale: +-fraction, translate: +-fraction}


@dataclass
class Selection:
    """Which EMA weights sampling will use: the latest evaluated ones still novel enough,
    or, while none is, the most novel so far."""

    min_novelty: float | None
    state: dict[str, torch.Tensor] | None = None
    step: int | None = None
    novelty: float | None = None
    below: int = 0

    def is_ok(self, novelty: float) -> bool:
        return self.min_novelty is None or novelty >= self.min_novelty

    def offer(self, step: int, novelty: float, ema: UNet2DModel) -> bool:
        """Consider this evaluation; return True if it became the selection."""
        ok = self.is_ok(novelty)
        self.below = 0 if ok else self.below + 1
        prev_ok = self.novelty is not None and self.is_ok(self.novelty)
        take = ok or (not prev_ok and (self.novelty is None or novelty > self.novelty))
        if take:
            self.state = {k: v.detach().clone() for k, v in ema.state_dict().items()}
            self.step, self.novelty = step, novelty
        return take


def train_unet(
    unet: UNet2DModel,
    scheduler: DDPMScheduler,
    x0: torch.Tensor,
    labels: np.ndarray,
    null_class: int,
    settings: TrainSettings,
    monitor: NoveltyMonitor | None,
    sampler: Callable[[UNet2DModel, np.ndarray, np.ndarray], np.ndarray],
    class_names: tuple[str, ...],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train `unet` (epsilon prediction) on model-space images `x0` with class ids `labels`
    (null_class for unlabelled images). Returns the weights to sample with and fit facts."""
    # GPUs when present (one or many via `accelerate launch`/torchrun), else the CPU: same code.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=settings.lr, weight_decay=0.0)
    selection = Selection(settings.min_novelty)
    meta = _resume(settings.work_dir, unet, ema, opt, selection)
    start_step = int(meta["step"])
    # every rank trains, evaluates and decides identically; only the main one writes files
    writer = settings.work_dir is not None and accelerator.is_main_process
    model, opt = accelerator.prepare(unet, opt)
    x0 = x0.to(accelerator.device)
    labels_t = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    bar = tqdm(range(start_step, settings.steps), desc="diffusion", unit="step", disable=not settings.progress)
    for step in bar:
        if meta["stopped"]:
            break
        loss = _train_step(model, opt, accelerator, scheduler, x0, labels_t, null_class, settings, step)
        _ema_update(ema, accelerator.unwrap_model(model), settings.ema_decay, step)
        done = meta["step"] = step + 1
        if done % 50 == 0 or done == settings.steps:
            meta["losses"].append([done, round(loss, 5)])
            bar.set_postfix(loss=f"{loss:.4f}")
        if monitor is not None and settings.eval_every and (done % settings.eval_every == 0 or done == settings.steps):
            _evaluate(monitor, sampler, ema, done, selection, meta, settings if writer else None, class_names)
            bar.set_postfix(loss=f"{loss:.4f}", novelty=f"{meta['curve'][-1]['novelty']:.2f}")
            meta["stopped"] = selection.min_novelty is not None and selection.below >= settings.patience
        if writer and (done % settings.checkpoint_every == 0 or done == settings.steps or meta["stopped"]):
            meta.update(below=selection.below, selected_step=selection.step, selected_novelty=selection.novelty)
            ckpt.save_state(settings.work_dir, accelerator.unwrap_model(model), ema, opt, meta)
    bar.close()
    return _outcome(ema, selection, monitor, meta, start_step)


def _resume(work_dir: Path | None, unet: UNet2DModel, ema: UNet2DModel, opt: torch.optim.Optimizer,
            selection: Selection) -> dict[str, Any]:
    """The run's progress: fresh, or read back from `work_dir` after a kill (weights, EMA, optimiser and the
    novelty selection restored in place), so a resumed run continues the same step sequence."""
    if not ckpt.has_state(work_dir):
        return {"step": 0, "curve": [], "losses": [], "stopped": False}
    meta = ckpt.load_state(work_dir, unet, ema, opt)
    selected = ckpt.load_selected(work_dir)
    if selected is not None:
        selection.state, selection.step, selection.novelty = selected, meta["selected_step"], meta["selected_novelty"]
    selection.below = meta.get("below", 0)
    log.info("resuming diffusion training from step %d in %s", meta["step"], work_dir)
    return meta


def _outcome(ema: UNet2DModel, selection: Selection, monitor: NoveltyMonitor | None, meta: dict[str, Any],
             start_step: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights to sample with (the novelty-selected EMA state when selection is on and found one, else the
    final EMA) and the fit facts the checkpoint records."""
    final_step = int(meta["step"])
    use_selection = selection.min_novelty is not None and selection.state is not None
    weights = selection.state if use_selection else {k: v.detach().clone() for k, v in ema.state_dict().items()}
    return weights, {
        "start_step": start_step,
        "steps": final_step,
        "stopped_early": bool(meta["stopped"]),
        "selected_step": selection.step if use_selection else final_step,
        "selected_novelty": selection.novelty if use_selection else None,
        "novelty_ok": bool(use_selection and selection.is_ok(selection.novelty)),
        "novelty_reference": monitor.reference if monitor is not None else None,
        "novelty_curve": meta["curve"],
        "loss_curve": meta["losses"],
    }


def _train_step(model, opt, accelerator, scheduler, x0, labels_t, null_class, settings, step) -> float:
    rng = rng_for(settings.seed, TRAIN_STREAM, step, accelerator.process_index)
    idx = torch.from_numpy(rng.integers(len(x0), size=settings.batch_size))
    y = labels_t[idx].clone()
    y[torch.from_numpy(rng.random(settings.batch_size) < settings.label_dropout)] = null_class
    t = torch.from_numpy(rng.integers(0, scheduler.config.num_train_timesteps, size=settings.batch_size))
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    batch = x0[idx]
    if settings.augment:
        batch = random_affine(batch, rng, **settings.augment)
    noise = torch.randn(batch.shape, generator=gen).to(x0.device)
    xt = scheduler.add_noise(batch, noise, t)
    model.train()
    loss = F.mse_loss(model(xt, t.to(x0.device), class_labels=y.to(x0.device)).sample, noise)
    opt.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    opt.step()
    return float(loss.detach())


def random_affine(x: torch.Tensor, rng: np.random.Generator, rotate: float = 0.0, scale: float = 0.0, translate: float = 0.0) -> torch.Tensor:
    """Small random rotation/scale/shift per image (border padding), drawn from `rng`.

    With a handful of images per class the UNet otherwise learns the images themselves;
    jittering them makes it learn a neighbourhood around each, which delays memorisation.
    """
    n = len(x)
    angle = np.deg2rad(rng.uniform(-rotate, rotate, n))
    s = 1.0 + rng.uniform(-scale, scale, n)
    shift = rng.uniform(-translate, translate, (n, 2)) * 2.0  # grid coordinates span [-1, 1]
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = np.cos(angle) / s, -np.sin(angle) / s
    theta[:, 1, 0], theta[:, 1, 1] = np.sin(angle) / s, np.cos(angle) / s
    theta[:, :, 2] = shift
    grid = F.affine_grid(torch.from_numpy(theta).to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """EMA with the usual warm-up, so early weights do not linger for thousands of steps."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(p.detach().to(pe.device), 1.0 - d)


def _evaluate(monitor, sampler, ema, done, selection, meta, settings, class_names) -> None:
    novelty, images = monitor.evaluate(lambda lab, seeds: sampler(ema, lab, seeds))
    taken = selection.offer(done, novelty, ema)
    meta["curve"].append({"step": done, "novelty": round(novelty, 4)})
    log.info("step %d: novelty %.3f%s", done, novelty, " (selected)" if taken else "")
    if settings is not None and settings.work_dir is not None:
        save_class_grid(settings.work_dir / "grids" / f"step-{done:06d}.png", images, monitor.labels, class_names)
        if taken:
            ckpt.save_selected(settings.work_dir, ema)
