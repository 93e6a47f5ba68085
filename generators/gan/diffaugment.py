"""DiffAugment (Zhao et al. 2020): differentiable augmentation of real AND fake images.

With 10 images per class the discriminator memorises the real set within a few hundred
steps and the generator collapses onto whatever fools it. Augmenting what D sees — both
real and generated images, with the same policy, differentiably so gradients reach G —
stops D from memorising without leaking augmentations into G's output distribution.

Pure torch; randomness comes from an injected `torch.Generator` (no global RNG state).
Images are (N, C, H, W) in [-1, 1]; `fill` (default -1, black) is what translation and
cutout expose, matching the black background of digits and Fashion-MNIST.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from synth.errors import ConfigError

Op = Callable[[torch.Tensor, torch.Generator, float], torch.Tensor]


def _rand(n: int, g: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=g).to(device=x.device, dtype=x.dtype)


def brightness(x: torch.Tensor, g: torch.Generator, fill: float = -1.0) -> torch.Tensor:
    """Add one offset in [-0.5, 0.5) per image (in [-1, 1] units: a quarter of the range)."""
    return x + (_rand(len(x), g, x) - 0.5)


def saturation(x: torch.Tensor, g: torch.Generator, fill: float = -1.0) -> torch.Tensor:
    """Scale the distance from the per-pixel channel mean by [0, 2); a no-op on grayscale."""
    if x.shape[1] == 1:
        return x
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(len(x), g, x) * 2) + mean


def contrast(x: torch.Tensor, g: torch.Generator, fill: float = -1.0) -> torch.Tensor:
    """Scale the distance from the per-image mean by [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(len(x), g, x) + 0.5) + mean


def translation(x: torch.Tensor, g: torch.Generator, fill: float = -1.0, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio*size pixels (at least 1), exposing `fill`."""
    n, _, h, w = x.shape
    sh, sw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), generator=g).to(x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=g).to(x.device)
    gb, gy, gx = torch.meshgrid(
        torch.arange(n, device=x.device), torch.arange(h, device=x.device), torch.arange(w, device=x.device),
        indexing="ij",
    )
    gy = (gy + ty + 1).clamp(0, h + 1)
    gx = (gx + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1], value=fill)
    return padded.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, g: torch.Generator, fill: float = -1.0, ratio: float = 0.5) -> torch.Tensor:
    """Replace one random (ratio*H x ratio*W) rectangle per image with `fill`."""
    n, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=g).to(x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=g).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - oy + ch // 2) >= 0) & ((ys - oy + ch // 2) < ch) & ((xs - ox + cw // 2) >= 0) & ((xs - ox + cw // 2) < cw)
    return torch.where(inside[:, None], torch.full_like(x, fill), x)


OPS: dict[str, Op] = {
    "brightness": brightness,
    "saturation": saturation,
    "contrast": contrast,
    "translation": translation,
    "cutout": cutout,
}


class DiffAugment:
    """Apply a policy (ordered op names) with the same per-call randomness source.

    `DiffAugment(["translation", "cutout"])(x, g)`; an empty policy is the identity.
    """

    def __init__(self, policy: Sequence[str], fill: float = -1.0, cutout_ratio: float = 0.5) -> None:
        unknown = [p for p in policy if p not in OPS]
        if unknown:
            raise ConfigError(f"unknown DiffAugment op(s) {unknown} in `diffaugment`; choose from {sorted(OPS)}")
        if not 0.0 < cutout_ratio < 1.0:
            raise ConfigError(f"cutout_ratio must lie in (0, 1), got {cutout_ratio}")
        self.policy = list(policy)
        self.fill = fill
        self.cutout_ratio = cutout_ratio

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for name in self.policy:
            if name == "cutout":
                x = cutout(x, g, self.fill, self.cutout_ratio)
            else:
                x = OPS[name](x, g, self.fill)
        return x
