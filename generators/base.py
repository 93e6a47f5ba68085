"""The one Generator contract every source of synthetic images honours.

Modelled on SDV: public `fit` / `sample` / `save` / `load` validate inputs and outputs and
keep the bookkeeping (classes, image shape, which real ids were seen); subclasses implement
only the private `_fit` / `_sample` / `_save` / `_load`. Per-sample randomness comes from
`synth.seeding.sample_seeds(seed, global_index)`, never from global RNG state, so a sample
depends only on (model, label, seed, index): chunked, resumed and sharded runs agree.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from synth.data.imageset import ImageSet
from synth.errors import CheckpointError, ConfigError, DataError
from synth.fsutil import atomic_write_text
from synth.seeding import sample_seeds

CONFIG_FILE = "generator_config.json"


@dataclass(frozen=True)
class Samples:
    """Synthetic images with labels and, where a sample derives from one, its parent real id."""

    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 (N,)
    parent_ids: np.ndarray  # object (N,): str or None

    def __len__(self) -> int:
        return len(self.images)


class Generator(ABC):
    """Base class: subclasses set `name` and implement `_fit` and `_sample`.

    Subclasses pass their constructor arguments to `super().__init__(**config)`; the config
    is what `save` writes and `load` rebuilds the generator from.
    """

    name: ClassVar[str] = "base"
    #: Whether `_fit` can make use of unlabelled images (e.g. a diffusion prior).
    uses_unlabelled: ClassVar[bool] = False
    #: Values for config keys a checkpoint may predate, where the constructor's default has
    #: changed since: `load` applies them when the saved config lacks the key, so an old
    #: checkpoint keeps behaving (and sampling) as it did when it was written.
    legacy_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, **config: Any) -> None:
        self.config: dict[str, Any] = config
        self.class_names: tuple[str, ...] | None = None
        self.image_shape: tuple[int, int, int] | None = None
        self.seen_ids: list[str] = []
        self.fit_info: dict[str, Any] = {}

    # ----------------------------------------------------------------- public API
    @property
    def is_fitted(self) -> bool:
        return self.class_names is not None

    def fit(self, labelled: ImageSet, unlabelled: ImageSet | None = None) -> Generator:
        """Learn from the labelled images (and, if the generator uses them, the unlabelled pool).

        Records the ids of every real image the generator saw, so a benchmark can prove
        which data each arm used.
        """
        self._check_fit_input(labelled, unlabelled)
        used_unlabelled = unlabelled if (self.uses_unlabelled and unlabelled is not None) else None
        self.class_names = labelled.class_names
        self.image_shape = labelled.image_shape
        self.seen_ids = [str(i) for i in labelled.ids]
        if used_unlabelled is not None:
            self.seen_ids += [str(i) for i in used_unlabelled.ids]
        self.fit_info = dict(self._fit(labelled, used_unlabelled) or {})
        return self

    def sample(
        self,
        n_per_class: int | None = None,
        *,
        labels: Sequence[int] | np.ndarray | None = None,
        seed: int = 0,
        start_index: int = 0,
    ) -> Samples:
        """Draw samples, either `n_per_class` of every class or one per entry of `labels`.

        Sample j uses the seed derived from (seed, start_index + j): drawing indices 0..99
        at once or as 0..49 and 50..99 gives the same samples.
        """
        if not self.is_fitted:
            raise CheckpointError(f"{type(self).__name__} is not fitted: call fit() or load() before sample()")
        labels_arr = self._resolve_labels(n_per_class, labels)
        if start_index < 0:
            raise ConfigError(f"start_index must be >= 0, got {start_index}")
        seeds = sample_seeds(seed, start_index + np.arange(len(labels_arr)))
        if len(labels_arr) == 0:
            return Samples(np.zeros((0, *self.image_shape), np.uint8), labels_arr, np.array([], dtype=object))
        out = self._sample(labels_arr, seeds)
        self._check_samples(out, labels_arr)
        return out

    def save(self, directory: str | Path) -> Path:
        """Write config (JSON) and weights (safetensors) into `directory`."""
        if not self.is_fitted:
            raise CheckpointError(f"{type(self).__name__} is not fitted: nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save(directory)
        meta = {
            "generator": self.name,
            "config": self.config,
            "class_names": list(self.class_names or ()),
            "image_shape": list(self.image_shape or ()),
            "seen_ids": self.seen_ids,
            "fit_info": self.fit_info,
        }
        # written last: its presence marks a complete checkpoint
        atomic_write_text(directory / CONFIG_FILE, json.dumps(meta, indent=1, sort_keys=True, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Generator:
        """Rebuild a saved generator. Reads JSON and safetensors only: nothing is unpickled."""
        from generators.registry import get_generator_class

        directory = Path(directory)
        cfg_path = directory / CONFIG_FILE
        if not cfg_path.is_file():
            raise CheckpointError(
                f"no generator checkpoint at {directory} ({CONFIG_FILE} missing); run `synth fit` first "
                "or point checkpoint= at a directory written by it"
            )
        meta = json.loads(cfg_path.read_text())
        klass = get_generator_class(meta["generator"])
        if cls is not Generator and not issubclass(klass, cls):
            raise CheckpointError(f"{directory} holds a {meta['generator']!r} generator, not {cls.name!r}")
        gen = klass(**{**klass.legacy_config, **meta["config"]})
        gen.class_names = tuple(meta["class_names"])
        gen.image_shape = tuple(meta["image_shape"])  # type: ignore[assignment]
        gen.seen_ids = list(meta["seen_ids"])
        gen.fit_info = dict(meta.get("fit_info", {}))
        gen._load(directory)
        return gen

    # ------------------------------------------------------------ for subclasses
    @abstractmethod
    def _fit(self, labelled: ImageSet, unlabelled: ImageSet | None) -> dict[str, Any] | None:
        """Train; may return a dict of facts about the fit (steps, losses, stop reason)."""

    @abstractmethod
    def _sample(self, labels: np.ndarray, seeds: np.ndarray) -> Samples:
        """Produce one sample per label, sample j drawing all randomness from seeds[j]."""

    def _save(self, directory: Path) -> None:
        """Write weights/state (safetensors). Default: nothing beyond the config."""

    def _load(self, directory: Path) -> None:
        """Read what `_save` wrote."""

    # ---------------------------------------------------------------- validation
    def _check_fit_input(self, labelled: ImageSet, unlabelled: ImageSet | None) -> None:
        if len(labelled) == 0:
            raise DataError("cannot fit a generator on zero labelled images")
        empty = [labelled.class_names[c] for c, n in enumerate(labelled.class_counts()) if n == 0]
        if empty:
            raise DataError(f"class(es) {empty} have no labelled images; every class needs at least one")
        if unlabelled is not None and unlabelled.image_shape != labelled.image_shape:
            raise DataError(
                f"unlabelled images are {unlabelled.image_shape}, labelled images {labelled.image_shape}"
            )

    def _resolve_labels(self, n_per_class: int | None, labels: Sequence[int] | np.ndarray | None) -> np.ndarray:
        if (n_per_class is None) == (labels is None):
            raise ConfigError("pass exactly one of n_per_class or labels to sample()")
        n_classes = len(self.class_names or ())
        if n_per_class is not None:
            if n_per_class < 0:
                raise ConfigError(f"n_per_class must be >= 0, got {n_per_class}")
            return np.tile(np.arange(n_classes, dtype=np.int64), n_per_class)
        arr = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(arr) and (arr.min() < 0 or arr.max() >= n_classes):
            raise ConfigError(f"labels must lie in [0, {n_classes - 1}], got range [{arr.min()}, {arr.max()}]")
        return arr

    def _check_samples(self, out: Samples, labels: np.ndarray) -> None:
        expected = (len(labels), *self.image_shape)
        if out.images.shape != expected or out.images.dtype != np.uint8:
            raise RuntimeError(
                f"{type(self).__name__}._sample returned {out.images.dtype} {out.images.shape}, expected uint8 {expected}"
            )
        if not np.array_equal(out.labels, labels):
            raise RuntimeError(f"{type(self).__name__}._sample changed the requested labels")
