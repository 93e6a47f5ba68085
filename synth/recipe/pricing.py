"""Pricing a recipe-search trial before it starts, so the search keeps to its wall-clock budget.

Why a module of its own: a trial started just inside the budget runs its folds past it and is stopped
incomplete, counting for nothing, so the search must know what a trial will cost before starting it.
Supervised trials cost about what the ones before them cost; consistency training and SSL pretraining
do not scale like them (the cost of a step depends on image size and the fold's size), so their cost is
measured on a few timed steps instead of guessed from a factor.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from synth.data.imageset import ImageSet
from synth.errors import SynthError
from synth.recipe.evidence import Trial
from synth.recipe.recipe import Recipe, TrainContext, encoder_config, fit_and_train

#: consistency-training (or SSL pretraining) steps timed to price a stage's first trial
PROBE_STEPS = 8
#: `TrialPricer.step_seconds`' key for the SSL encoder's pretraining steps
PRETRAIN_KEY = "ssl pretraining"


class TrialPricer:
    """Expected seconds of a search trial, from the trials that ran and, where those say little, timed steps."""

    def __init__(self, labelled: ImageSet, unlabelled: ImageSet | None, folds: Sequence[np.ndarray], seed: int,
                 ctx: TrainContext):
        self.labelled, self.unlabelled, self.folds, self.seed, self.ctx = labelled, unlabelled, folds, seed, ctx
        #: timed seconds per step, by recipe name without SSL init (a recipe holds a dict, so it is not
        #: hashable), or PRETRAIN_KEY
        self.step_seconds: dict[str, float] = {}

    def expected_seconds(self, stage: str, recipe: Recipe | None, trials: Sequence[Trial]) -> tuple[float, str]:
        """A `stage` trial's expected wall clock, and how it was guessed: the mean of this stage's complete
        `trials`; for a stage's first trial with consistency training, its steps timed on a short run
        (`semi_step_seconds`), else the cheapest complete trial so far times the recipe's `cost_factor`; plus,
        for the first trial with SSL init, the encoder's pretraining (`pretrain_seconds`)."""
        same = [t.seconds for t in trials if t.stage == stage and t.complete]
        if same:
            guess = float(np.mean(same))
            return guess, f"~{guess:.0f} s per {stage} trial"
        per_step = self.semi_step_seconds(recipe) if recipe is not None else None
        pretrain = self.pretrain_seconds(recipe) if recipe is not None else None
        if per_step is not None:
            guess = per_step * (recipe.semi.steps or self.ctx.train_cfg.steps) * len(self.folds)
        else:
            cheapest = min((t.seconds for t in trials if t.complete), default=0.0)
            guess = cheapest * (self.cost_factor(recipe) if recipe is not None else 1.0)
        guess += pretrain or 0.0
        timed = f" (timed on {PROBE_STEPS} steps)" if per_step is not None or pretrain is not None else ""
        return guess, f"~{guess:.0f} s expected for its first {stage} trial{timed}"

    def semi_step_seconds(self, recipe: Recipe) -> float | None:
        """Seconds per step of `recipe`'s consistency training on the first fold, timed on `PROBE_STEPS` steps
        (once per recipe); None without consistency training or a pool.

        Why a timed run, not a factor: relative to a supervised trial a consistency-training step cost 7x on
        8x8 digits at 2 labels per class, 10x at 10, and 22x on 28x28 Fashion-MNIST at 5 (one thread; the
        supervised batch shrinks to the fold's size and the views' augmentation grows with the pixels), so the
        fixed 7x started semi trials that the budget then stopped after a fold (223 s on Fashion-MNIST at n = 5),
        counted for nothing.
        """
        if recipe.semi is None or self.unlabelled is None or not len(self.unlabelled):
            return None
        # without SSL init: an encoder's pretraining is a one-off, not a step cost (`pretrain_seconds`), so the
        # SSL stage's recipe reuses its semi stage's timing
        key = recipe.with_(ssl=False).name
        if key not in self.step_seconds:
            train = self.labelled.subset(np.setdiff1d(np.arange(len(self.labelled)), self.folds[0]))
            probe = recipe.with_(semi=replace(recipe.semi, steps=PROBE_STEPS), ssl=False)
            t0 = time.perf_counter()
            try:
                fit_and_train(probe, train, self.unlabelled, self.seed * 1000, self.ctx, fold=0)
            except SynthError:  # the trial itself will fail and record why; price it by its factor meanwhile
                return None
            self.step_seconds[key] = (time.perf_counter() - t0) / PROBE_STEPS
        return self.step_seconds[key]

    def pretrain_seconds(self, recipe: Recipe) -> float | None:
        """Expected seconds of the SSL encoder's one-off pretraining, when `recipe` needs it and none is trained
        yet, timed on `PROBE_STEPS` of its steps (once); else None.

        Why: the first SSL trial pays for pretraining on the whole pool (~2 min on 28x28 images at one thread);
        priced as a plain trial (~30 s on Fashion-MNIST at n = 5) it started with ~150 s of budget left and was
        stopped after its first fold (127 s, most of it pretraining)."""
        if not recipe.ssl or self.ctx.encoder is not None or self.unlabelled is None or len(self.unlabelled) < 2:
            return None
        from synth.ssl import train_encoder

        cfg = encoder_config(self.ctx)
        if PRETRAIN_KEY not in self.step_seconds:
            t0 = time.perf_counter()
            try:
                train_encoder(self.unlabelled, replace(cfg, steps=PROBE_STEPS), seed=self.seed,
                              n_classes=self.labelled.n_classes, progress=False)
            except SynthError:  # the trial itself will fail and record why
                return None
            self.step_seconds[PRETRAIN_KEY] = (time.perf_counter() - t0) / PROBE_STEPS
        return self.step_seconds[PRETRAIN_KEY] * cfg.steps

    def cost_factor(self, recipe: Recipe) -> float:
        """A recipe's training cost relative to a supervised one at the trainer's steps: a policy's `+x`
        scale, or for consistency training, whose steps train the labelled batch plus two views of
        `unlabelled_ratio` times as many pool images, that times its steps."""
        if recipe.semi is None:
            return recipe.policy.steps_scale
        steps = recipe.semi.steps or self.ctx.train_cfg.steps
        return (1 + 2 * recipe.semi.unlabelled_ratio) * steps / max(self.ctx.train_cfg.steps, 1)
