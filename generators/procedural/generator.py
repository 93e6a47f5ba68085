"""Procedural generator: label-preserving variations of the labelled real images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from generators.base import Generator, Samples
from generators.procedural.augment import augment_batch, build_augmenter
from synth.data.imageset import ImageSet


class ProceduralGenerator(Generator):
    """Each sample is one augmentation of one labelled real image of the requested class.

    `fit` learns nothing: it keeps the labelled images as parents. Sample j picks its parent
    uniformly within the class and its augmentation parameters from one RNG seeded by
    seeds[j], and records the parent's id.
    """

    name = "procedural"
    #: a checkpoint saved before `resample` existed was sampled with the bilinear round trip
    legacy_config = {"resample": "bilinear"}

    def __init__(
        self,
        ops: Sequence[Mapping[str, Any]] = (),
        working_size: int = 32,
        backend: str = "albumentations",
        preset: str = "custom",
        resample: str = "exact",
    ) -> None:
        ops = [dict(op) for op in ops]
        super().__init__(ops=ops, working_size=working_size, backend=backend, preset=preset, resample=resample)
        self.augmenter = build_augmenter(ops, working_size, backend, resample)
        self._images: np.ndarray | None = None
        self._ids: np.ndarray | None = None
        self._by_class: list[np.ndarray] = []

    def _fit(self, labelled: ImageSet, unlabelled: ImageSet | None) -> dict[str, Any]:
        self._set_parents(labelled.images.copy(), labelled.labels.copy(), labelled.ids.copy())
        return {"parents": len(labelled)}

    def _set_parents(self, images: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> None:
        self._images, self._labels, self._ids = images, labels, ids
        self._by_class = [np.flatnonzero(labels == c) for c in range(len(self.class_names or ()))]

    def _sample(self, labels: np.ndarray, seeds: np.ndarray) -> Samples:
        assert self._images is not None and self._ids is not None
        rngs = [np.random.default_rng(int(seed)) for seed in seeds]
        picks = np.array([members[rng.integers(len(members))] for rng, members in
                          zip(rngs, (self._by_class[label] for label in labels), strict=True)], dtype=np.int64)
        out = augment_batch(self.augmenter, self._images[picks], rngs)
        parents = np.array([str(i) for i in self._ids[picks]], dtype=object)
        return Samples(out, labels.copy(), parents)

    def _save(self, directory: Path) -> None:
        assert self._images is not None
        tensors = {"images": torch.from_numpy(self._images), "labels": torch.from_numpy(self._labels)}
        save_file(tensors, directory / "parents.safetensors")
        (directory / "parent_ids.txt").write_text("\n".join(map(str, self._ids)) + "\n")

    def _load(self, directory: Path) -> None:
        tensors = load_file(directory / "parents.safetensors")
        ids = np.array((directory / "parent_ids.txt").read_text().splitlines(), dtype=str)
        self._set_parents(tensors["images"].numpy(), tensors["labels"].numpy(), ids)
