"""Generators of synthetic images: procedural augmenters and learned models, one contract."""

from generators.base import Generator, Samples
from generators.registry import available, get_generator_class, register

__all__ = ["Generator", "Samples", "available", "get_generator_class", "register"]
