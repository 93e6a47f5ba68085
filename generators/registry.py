"""Generators by name. Entries are import paths so heavy backends load only when used."""

from __future__ import annotations

import importlib

from synth.errors import ConfigError

_REGISTRY: dict[str, str] = {
    "procedural": "generators.procedural:ProceduralGenerator",
    "diffusion": "generators.diffusion:DiffusionGenerator",
    "img2img": "generators.diffusion:Img2ImgGenerator",
    "pseudo_label": "generators.pseudo_label:PseudoLabelGenerator",
    "gan": "generators.gan:GANGenerator",
}


def register(name: str, target: str) -> None:
    """Register a generator class under `name` ("package.module:ClassName")."""
    _REGISTRY[name] = target


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_generator_class(name: str) -> type:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown generator {name!r}; known generators: {', '.join(available())}")
    module, _, attr = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)
