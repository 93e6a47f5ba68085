"""`ImageSet`: the one in-memory container every stage passes around.

Images are uint8 arrays of shape (N, H, W, C) with C = 1 (grayscale) or 3 (RGB), all the
same size. Every image carries a stable string id, so later stages can record exactly
which real images a generator, extractor or tuner saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synth.errors import DataError


@dataclass(frozen=True)
class ImageSet:
    """Labelled (or unlabelled: labels = -1) images with stable ids."""

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        images, labels, ids = self.images, self.labels, self.ids
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise DataError(
                f"images must be uint8 of shape (N, H, W, 1|3), got {images.dtype} {images.shape}"
            )
        if not (len(images) == len(labels) == len(ids)):
            raise DataError(f"{len(images)} images, {len(labels)} labels and {len(ids)} ids differ in count")
        if len(labels) and (labels.max() >= len(self.class_names) or labels.min() < -1):
            raise DataError(f"labels must lie in [-1, {len(self.class_names) - 1}]")
        if len(np.unique(ids)) != len(ids):
            raise DataError("image ids must be unique")

    @classmethod
    def build(
        cls,
        images: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        ids: Sequence[str] | np.ndarray,
        class_names: Sequence[str],
    ) -> ImageSet:
        """Normalise dtypes (grayscale HxW -> HxWx1, ids to str) and validate."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        return cls(
            images=np.ascontiguousarray(images),
            labels=np.asarray(labels, dtype=np.int64),
            ids=np.asarray(ids, dtype=str),
            class_names=tuple(str(c) for c in class_names),
        )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: np.ndarray | Sequence[int]) -> ImageSet:
        index = np.asarray(index, dtype=np.int64)
        return ImageSet(self.images[index], self.labels[index], self.ids[index], self.class_names)

    def class_counts(self) -> np.ndarray:
        """Images per class (unlabelled images, label -1, are not counted)."""
        return np.bincount(self.labels[self.labels >= 0], minlength=self.n_classes)

    def without_labels(self) -> ImageSet:
        """The same images with labels hidden (-1): what the unlabelled pool looks like."""
        return ImageSet(self.images, np.full(len(self), -1, dtype=np.int64), self.ids, self.class_names)

    def without_ids(self, ids: np.ndarray | Sequence[str]) -> ImageSet:
        """The images whose ids are not in `ids`, in order: e.g. the pool left after some were labelled."""
        return self.subset(np.flatnonzero(~np.isin(self.ids, np.asarray(ids, dtype=str))))

    def concat(self, other: ImageSet) -> ImageSet:
        if other.class_names != self.class_names or other.image_shape != self.image_shape:
            raise DataError("cannot concatenate image sets with different classes or image shapes")
        return ImageSet(
            np.concatenate([self.images, other.images]),
            np.concatenate([self.labels, other.labels]),
            np.concatenate([self.ids, other.ids]),
            self.class_names,
        )

    def as_float(self) -> np.ndarray:
        """Images as float32 in [0, 1], channels first (N, C, H, W), for torch models."""
        return (self.images.astype(np.float32) / 255.0).transpose(0, 3, 1, 2)
