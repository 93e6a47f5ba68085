"""Small-data class-conditional GAN (see docs/gan.md)."""

from generators.gan.generator import GANGenerator

__all__ = ["GANGenerator"]
