"""What a recipe search is given and what it returns: its compute budget, its search space, and the result.

Kept apart from the search loop (synth.recipe.search) so a reader of a result — `synth recommend`'s
report, the benchmark's decision table — depends on these types, not on the search machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.recipe.evidence import Trial, paired_gain
from synth.recipe.policy import AugPolicy
from synth.recipe.recipe import Recipe, train_with
from synth.regularisers import KINDS
from synth.semi import Restarts, SemiConfig, semi_candidates
from synth.training import TrainConfig


@dataclass
class SearchBudget:
    """Compute budget: stop starting trials after `max_trials` or `max_seconds` (None: no limit)."""

    max_trials: int | None = 16
    max_seconds: float | None = 480.0

    def __post_init__(self) -> None:
        if self.max_trials is not None and self.max_trials < 1:
            raise ConfigError(f"search.max_trials must be >= 1 or null, got {self.max_trials}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"search.max_seconds must be > 0 or null, got {self.max_seconds}")


@dataclass
class SearchSpace:
    """Which recipes the stages try. Defaults are sized for a 10-minute search on 2 cores."""

    presets: Sequence[str] = ("light", "strong")
    #: each preset is also tried on only this share of draws (Fashion-MNIST: light on every draw
    #: cost labels, mixed with clean draws it gained); 1.0 (every draw) is always tried
    aug_probs: Sequence[float] = (0.5,)
    n_random_policies: int = 2
    extra_policies: Sequence[AugPolicy] = ()
    sources: Sequence[str] = ("pseudo_label", "procedural")
    source_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    shares: Sequence[float] = (0.25, 0.5)
    filter_quantiles: Sequence[float] = (0.2,)
    pl_thresholds: Sequence[float] = (0.8, 0.97)
    ssl: bool | None = None  # None: try it when synth.ssl exists and a pool is given
    #: consistency training on the pool (synth.semi), one candidate per settings, tried after
    #: augmentation when a pool is given; empty: not tried (each costs ~5x a supervised fold model).
    #: A single SemiConfig or None is accepted too.
    semi: Sequence[SemiConfig] = ()
    #: batch mixes ("mixup", "cutmix") tried on top of the adopted augmentation policy, one trial each
    #: (keeping its label smoothing); empty: not tried. Why a stage of its own: mixup gained on the
    #: Fashion-MNIST dev split on top of the smoothed default and lost on every digits draw
    #: (benchmarks/results/mix_ls_check_*.md), so it is a per-dataset choice the gain rule makes.
    batch_mixes: Sequence[str] = ()

    def __post_init__(self) -> None:
        self.semi = semi_candidates(self.semi)
        self.batch_mixes = tuple(str(k) for k in self.batch_mixes)
        for kind in self.batch_mixes:
            if kind not in KINDS:
                raise ConfigError(f"search.batch_mixes: unknown batch mix {kind!r}; known: {', '.join(KINDS)}")


@dataclass(frozen=True)
class Skip:
    """A candidate that was not run: its stage, recipe and why (the compute budget, or not needed).

    Structured, so a reader (`synth recommend`'s summary) takes the stage and the recipe from here
    instead of parsing them back out of a sentence; `str()` is the line recipe.json records.
    """

    stage: str
    recipe: Recipe
    why: str
    #: its expected wall clock (synth.recipe.pricing: from the trials that ran, or timed steps): what a
    #: bigger budget would have to cover to score it
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.stage}: {self.recipe.name} ({self.why})"


@dataclass
class RecipeResult:
    """The chosen recipe with the evidence behind it; `train_final` trains the user's classifier."""

    recipe: Recipe
    trials: list[Trial]
    contributions: dict[str, dict[str, Any]]
    seconds: float
    k_folds: int
    seed: int
    train_cfg: TrainConfig
    reason: str = ""
    skipped: list[Skip] = field(default_factory=list)
    metric: str = "accuracy"
    repeats: int = 1
    test_train_ratio: float | None = None
    #: candidates not run because their stage was decided without them (`search_recipe(settle_default=True)`);
    #: unlike `skipped`, no budget would have changed the answer by scoring them
    unneeded: list[Skip] = field(default_factory=list)

    def gain(self, trial: Trial, metric: str | None = None) -> tuple[float, float]:
        """Paired gain of `trial` over real only in `metric` (default: the decision metric)."""
        return paired_gain(trial, self.baseline, metric or self.metric, self.test_train_ratio)

    @property
    def baseline(self) -> Trial:
        return self.trials[0]

    @property
    def chosen(self) -> Trial:
        match = [t for t in self.trials if t.recipe.to_dict() == self.recipe.to_dict() and t.complete]
        return match[0] if match else self.trials[0]

    def train_final(
        self, labelled: ImageSet, unlabelled: ImageSet | None = None, seed: int = 0, cfg: TrainConfig | None = None,
        restarts: Restarts | None = None,
    ) -> nn.Module:
        """Train the classifier the recipe prescribes on the whole labelled budget (+ pool).

        `cfg` defaults to the full-size TrainConfig (the search trained smaller models); `restarts`: see `train_with`.
        """
        return train_with(self.recipe, labelled, unlabelled, seed, cfg, restarts)

    def to_dict(self) -> dict[str, Any]:
        base, chosen = self.baseline, self.chosen
        brier = {"chosen": float(chosen.brier.mean()) if len(chosen.brier) else None,
                 "nothing": float(base.brier.mean()) if len(base.brier) else None}
        return {
            "chosen": self.recipe.name, "recipe": self.recipe.to_dict(), "reason": self.reason,
            "cv_estimate": {"mean": chosen.mean, "se": chosen.se},
            "nothing": {"mean": base.mean, "se": base.se}, "cv_brier": brier,
            "decision_metric": self.metric, "repeats": self.repeats,
            "contributions": self.contributions, "search_seconds": round(self.seconds, 1),
            "k_folds": self.k_folds, "seed": self.seed, "train": vars(self.train_cfg),
            "candidates": [t.to_dict(base, self.metric, self.test_train_ratio) for t in self.trials],
            "skipped": [str(k) for k in self.skipped],
            **({"unneeded": [str(k) for k in self.unneeded]} if self.unneeded else {}),
        }
