"""Procedural augmenters (albumentations and batched torch backends) behind synth's Augmenter interface."""

from generators.procedural.augment import (
    BACKENDS,
    AlbumentationsAugmenter,
    Augmenter,
    augment_batch,
    build_augmenter,
)
from generators.procedural.generator import ProceduralGenerator
from generators.procedural.torch_backend import TorchAugmenter

__all__ = ["BACKENDS", "AlbumentationsAugmenter", "Augmenter", "ProceduralGenerator", "TorchAugmenter",
           "augment_batch", "build_augmenter"]
