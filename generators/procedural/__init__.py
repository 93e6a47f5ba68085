"""Procedural augmenters (albumentations backend) behind synth's Augmenter interface."""

from generators.procedural.augment import BACKENDS, AlbumentationsAugmenter, Augmenter, build_augmenter
from generators.procedural.generator import ProceduralGenerator

__all__ = ["BACKENDS", "AlbumentationsAugmenter", "Augmenter", "ProceduralGenerator", "build_augmenter"]
