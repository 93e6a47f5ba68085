"""Diffusion generators: class-conditional DDPM with guidance, and SDEdit variations of real images."""

from generators.diffusion.generator import DiffusionGenerator, Img2ImgGenerator

__all__ = ["DiffusionGenerator", "Img2ImgGenerator"]
