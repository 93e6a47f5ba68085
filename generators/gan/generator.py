"""GANGenerator: the small-data conditional GAN behind the Generator contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file, save_file

from generators.base import Generator, Samples
from generators.gan.networks import ConditionalGenerator, render
from generators.gan.train import GANTrainer, build_generator, config_from_kwargs
from synth.data.imageset import ImageSet
from synth.errors import CheckpointError

WEIGHTS_FILE = "generator_ema.safetensors"


class GANGenerator(Generator):
    """Class-conditional GAN (projection D, spectral norm, hinge loss, DiffAugment, EMA G).

    Trained on the labelled images only. Sampling uses the EMA generator in eval mode; sample
    j's latent comes from a torch.Generator seeded by its per-sample seed, so output does not
    depend on batch composition. See generators/gan/train.py for the collapse/divergence
    guards and docs/gan.md for measured quality and speed.
    """

    name = "gan"

    def __init__(self, **config: Any) -> None:
        self.gan_config = config_from_kwargs(config)
        super().__init__(**config)
        self.net: ConditionalGenerator | None = None

    def _fit(self, labelled: ImageSet, unlabelled: ImageSet | None) -> dict[str, Any]:
        trainer = GANTrainer(self.gan_config, labelled)
        try:
            info = trainer.train()
        finally:
            # Even when training raises, keep the restored last good EMA weights: save() works.
            self.net = trainer.G_ema.cpu().eval()
        return info

    def _sample(self, labels: np.ndarray, seeds: np.ndarray) -> Samples:
        assert self.net is not None
        images = render(self.net, labels, seeds, batch=self.gan_config.sample_batch)
        return Samples(images, labels.copy(), np.full(len(labels), None, dtype=object))

    def _save(self, directory: Path) -> None:
        assert self.net is not None
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, directory / WEIGHTS_FILE)

    def _load(self, directory: Path) -> None:
        path = directory / WEIGHTS_FILE
        if not path.is_file():
            raise CheckpointError(f"GAN checkpoint {directory} lacks {WEIGHTS_FILE}; re-run `synth fit generator=gan`")
        net = build_generator(self.gan_config, len(self.class_names or ()), tuple(self.image_shape))  # type: ignore[arg-type]
        try:
            net.load_state_dict(load_file(path))
        except RuntimeError as exc:  # missing/unexpected keys or shape mismatch
            raise CheckpointError(
                f"GAN weights in {path} do not fit the generator described by {directory / 'generator_config.json'} "
                f"(z_dim/g_channels or an architecture change since it was written): {str(exc).splitlines()[0]} "
                "Re-fit it with `synth fit generator=gan`."
            ) from exc
        self.net = net.eval()
