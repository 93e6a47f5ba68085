"""Augmenters behind synth's own small interface, so another backend can slot in.

An augmenter is a pure function of (image, rng): all randomness comes from the injected
numpy Generator (albumentations-style), nothing from global state. Tiny images (digits are
8x8) are augmented at a larger working size and returned to their native size, because
geometric and elastic transforms at 8 px are mostly interpolation artefacts.

The same augmenter serves offline generation (`ProceduralGenerator`) and online,
training-time augmentation (a fresh variation every time a real image is drawn).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from synth.errors import ConfigError


class Augmenter(Protocol):
    """One image per call from its own rng. A backend may add `batch(images, rngs)` (N images, image i
    from rngs[i] only, same result as N calls); `augment_batch` uses it when present."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return an augmented copy of one uint8 (H, W, C) image, same shape and dtype."""

    def to_dict(self) -> dict[str, Any]:
        """Serialisable description, enough to rebuild the augmenter."""


def _resize(image: np.ndarray, hw: tuple[int, int], shrinking: bool, resample: str = "exact") -> np.ndarray:
    interp = cv2.INTER_AREA if shrinking else (cv2.INTER_NEAREST if resample == "exact" else cv2.INTER_LINEAR)
    out = cv2.resize(image, (hw[1], hw[0]), interpolation=interp)
    return out[..., None] if out.ndim == 2 else out


class AlbumentationsAugmenter:
    """An albumentations pipeline built from a list of `{name: <Transform>, **params}` ops.

    Args:
        ops: transforms in order, e.g. `[{"name": "Affine", "rotate": [-10, 10], "p": 1.0}]`.
        working_size: augment at least at this size (shorter side), then resize back.
    """

    backend = "albumentations"

    def __init__(self, ops: Sequence[Mapping[str, Any]], working_size: int = 32, resample: str = "exact") -> None:
        import albumentations as A

        if working_size <= 0:
            raise ConfigError(f"generator.working_size must be > 0, got {working_size}")
        self.ops = [dict(op) for op in ops]
        self.working_size, self.resample = int(working_size), check_resample(resample)
        transforms = []
        for i, op in enumerate(self.ops):
            params = dict(op)
            name = params.pop("name", None)
            klass = getattr(A, str(name), None) if name else None
            if klass is None:
                raise ConfigError(f"generator.ops[{i}]: unknown albumentations transform {name!r}")
            try:
                transforms.append(klass(**params))
            except Exception as exc:  # albumentations validates with pydantic
                raise ConfigError(f"generator.ops[{i}] ({name}): invalid parameters: {exc}") from exc
        self._compose = A.Compose(transforms, strict=True)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        work_hw = working_hw(h, w, self.working_size, self.resample)
        work = _resize(image, work_hw, False, self.resample) if work_hw != (h, w) else image
        self._compose.set_random_state(rng, random.Random(int(rng.integers(2**63))))
        out = self._compose(image=work)["image"]
        if out.ndim == 2:
            out = out[..., None]
        if out.shape[:2] != (h, w):
            out = _resize(out, (h, w), True)
        return np.ascontiguousarray(out, dtype=np.uint8)

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "ops": self.ops, "working_size": self.working_size, "resample": self.resample}


from generators.procedural.torch_backend import TorchAugmenter, check_resample, working_hw  # noqa: E402

#: albumentations: any of its transforms, one image per call. torch: synth's preset/policy ops,
#: a whole batch per call (`batch`): ~3x faster per batch of 64 digits (light 21 -> 6 ms, strong 40 -> 13 ms).
BACKENDS: dict[str, type] = {"albumentations": AlbumentationsAugmenter, "torch": TorchAugmenter}


def augment_batch(augment, images: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    """`augment` over uint8 (N, H, W, C) images, image i from rngs[i]: batched when the augmenter can."""
    if len(images) == 0:  # np.stack has nothing to stack; every caller gets the same empty answer
        return images.copy()
    if hasattr(augment, "batch"):
        return augment.batch(images, rngs)
    return np.stack([augment(image, rng) for image, rng in zip(images, rngs, strict=True)])


def build_augmenter(ops: Sequence[Mapping[str, Any]], working_size: int = 32, backend: str = "albumentations",
                    resample: str = "exact"):
    """Construct an augmenter for `backend` (a key of `BACKENDS`); `resample`: see torch_backend.RESAMPLE."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown augmenter backend {backend!r}; known: {', '.join(BACKENDS)}")
    return BACKENDS[backend](ops, working_size=working_size, resample=resample)
