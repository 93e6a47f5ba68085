"""UNet construction and the pixel <-> model-space mapping (scale to [-1, 1], pad, crop).

The UNet halves the resolution once per down block after the first, so its input side must
be a multiple of 2**(len(block_out_channels) - 1). Images of other sizes (28 px
Fashion-MNIST with four levels, 10 px toy data) are padded up to the next multiple and
cropped back after sampling; the padding is part of what the model learns, so reflect
padding (the default) keeps borders natural while constant padding fills with black.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from synth.errors import ConfigError

PAD_MODES = ("reflect", "constant")


@dataclass(frozen=True)
class Geometry:
    """Image size, channels and the padding that makes it fit the UNet."""

    height: int
    width: int
    channels: int
    pad_h: int  # rows added at the bottom
    pad_w: int  # columns added on the right
    pad_mode: str

    @classmethod
    def for_shape(cls, shape: Sequence[int], levels: int, pad_mode: str) -> Geometry:
        if pad_mode not in PAD_MODES:
            raise ConfigError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        h, w, c = (int(v) for v in shape)
        factor = 2 ** max(levels - 1, 0)
        pad_h, pad_w = (-h) % factor, (-w) % factor
        if pad_mode == "reflect" and (pad_h >= h or pad_w >= w):
            raise ConfigError(f"reflect padding of {h}x{w} images by {pad_h}x{pad_w} is impossible; use pad_mode=constant")
        return cls(h, w, c, pad_h, pad_w, pad_mode)

    @property
    def padded(self) -> tuple[int, int]:
        return self.height + self.pad_h, self.width + self.pad_w

    def to_model(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, C) -> float32 (N, C, H', W') in [-1, 1], padded."""
        x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
        if self.pad_h or self.pad_w:
            pad = (0, self.pad_w, 0, self.pad_h)
            x = F.pad(x, pad, mode="reflect") if self.pad_mode == "reflect" else F.pad(x, pad, value=-1.0)
        return x

    def to_pixels(self, x: torch.Tensor) -> np.ndarray:
        """float (N, C, H', W') in [-1, 1] -> uint8 (N, H, W, C), cropped."""
        x = x[:, :, : self.height, : self.width]
        x = ((x.clamp(-1, 1) + 1.0) * 127.5).round()
        return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def build_unet(
    geometry: Geometry,
    n_classes: int,
    block_out_channels: Sequence[int],
    layers_per_block: int,
    norm_num_groups: int,
    mid_attention: bool,
) -> UNet2DModel:
    """A class-conditional UNet; class id `n_classes` is the "null" class for guidance."""
    channels = [int(c) for c in block_out_channels]
    if not channels or any(c % norm_num_groups for c in channels):
        raise ConfigError(
            f"block_out_channels {channels} must be non-empty multiples of norm_num_groups={norm_num_groups}"
        )
    return UNet2DModel(
        sample_size=geometry.padded,
        in_channels=geometry.channels,
        out_channels=geometry.channels,
        block_out_channels=tuple(channels),
        layers_per_block=int(layers_per_block),
        down_block_types=("DownBlock2D",) * len(channels),
        up_block_types=("UpBlock2D",) * len(channels),
        norm_num_groups=int(norm_num_groups),
        num_class_embeds=n_classes + 1,
        add_attention=bool(mid_attention),
    )
