"""Networks for the small-data conditional GAN: a size-flexible generator and a
spectral-norm projection discriminator.

Why these choices (the calibration notes: a plain cGAN collapsed on 10 images per class):
- the discriminator is spectrally normalised and conditions by *projection* (Miyato &
  Koyama 2018): the class enters as an inner product with the image features, which
  keeps D smooth and stops it memorising (image, label) pairs as easily as concatenation;
- the generator has no batch-dependent layers (no BatchNorm): sample j depends only on its
  own latent and label, which the per-sample seeding contract needs;
- both nets are sized from the image shape: the generator starts from a small seed grid
  (4x4 for 8/16/32 px, 7x7 for 28 px) and upsamples by 2, then centre-crops to the target.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


def layout(height: int, width: int) -> tuple[int, int, int]:
    """(n_up, seed_h, seed_w): how many x2 stages lead from a seed grid of >= ~4 px to the image.

    8 -> 1 stage from 4x4, 28 -> 2 stages from 7x7, 32 -> 3 stages from 4x4, 5 -> none.
    """
    n_up = max(0, int(math.floor(math.log2(max(min(height, width), 1) / 4))))
    return n_up, math.ceil(height / 2**n_up), math.ceil(width / 2**n_up)


class ConditionalGenerator(nn.Module):
    """(z, y) -> image in [-1, 1]: linear to a seed grid, [upsample -> conv] stages, tanh.

    The class embedding is concatenated with z at the input and added (as a per-channel
    bias) before every stage, so the label reaches every resolution.
    """

    def __init__(self, n_classes: int, image_shape: tuple[int, int, int], z_dim: int = 64, channels: int = 64) -> None:
        super().__init__()
        height, width, out_channels = image_shape
        self.image_shape = (height, width, out_channels)
        self.z_dim = z_dim
        n_up, self.seed_h, self.seed_w = layout(height, width)
        widths = [max(channels // 2**i, 16) for i in range(n_up + 1)]
        self.embed = nn.Embedding(n_classes, z_dim)
        self.fc = nn.Linear(2 * z_dim, widths[0] * self.seed_h * self.seed_w)
        self.seed_conv = nn.Conv2d(widths[0], widths[0], 3, padding=1)
        self.stages = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1) for i in range(n_up))
        self.class_bias = nn.ModuleList(nn.Embedding(n_classes, widths[i]) for i in range(n_up))
        for emb in self.class_bias:
            nn.init.zeros_(emb.weight)
        self.to_image = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], dim=1))
        h = F.leaky_relu(h.view(len(z), -1, self.seed_h, self.seed_w), 0.2)
        h = F.leaky_relu(self.seed_conv(h), 0.2)
        for conv, bias in zip(self.stages, self.class_bias, strict=True):
            h = h + bias(y)[:, :, None, None]
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = F.leaky_relu(conv(h), 0.2)
        x = torch.tanh(self.to_image(h))
        return _center_crop(x, self.image_shape[0], self.image_shape[1])


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top, left = (x.shape[2] - height) // 2, (x.shape[3] - width) // 2
    return x[:, :, top : top + height, left : left + width]


class ProjectionDiscriminator(nn.Module):
    """Spectral-norm conv features phi(x) (sum-pooled); D(x, y) = w . phi(x) + embed(y) . phi(x)."""

    def __init__(self, n_classes: int, image_shape: tuple[int, int, int], channels: int = 64) -> None:
        super().__init__()
        height, width, in_channels = image_shape
        n_down = layout(height, width)[0]
        widths = [max(channels // 2**(n_down - i), 16) for i in range(n_down + 1)]
        self.stem = spectral_norm(nn.Conv2d(in_channels, widths[0], 3, padding=1))
        self.stages = nn.ModuleList(
            spectral_norm(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1)) for i in range(n_down)
        )
        self.final = spectral_norm(nn.Conv2d(widths[-1], widths[-1], 3, padding=1))
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, widths[-1]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.stem(x), 0.2)
        for conv in self.stages:
            h = F.avg_pool2d(F.leaky_relu(conv(h), 0.2), 2, ceil_mode=True)
        return F.leaky_relu(self.final(h), 0.2).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.features(x)
        return self.linear(phi).squeeze(1) + (self.embed(y) * phi).sum(dim=1)


def latents(seeds: np.ndarray, z_dim: int) -> torch.Tensor:
    """One standard-normal latent per seed, each from its own seeded torch.Generator.

    Sample j's latent depends on seeds[j] alone, never on batch size or position.
    """
    z = torch.empty(len(seeds), z_dim)
    g = torch.Generator()
    for j, s in enumerate(np.asarray(seeds).tolist()):
        g.manual_seed(int(s))
        torch.randn(z_dim, generator=g, out=z[j])
    return z


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, C, H, W) -> uint8 (N, H, W, C)."""
    return ((x + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.inference_mode()
def render(
    net: ConditionalGenerator, labels: np.ndarray, seeds: np.ndarray, batch: int = 2048,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """uint8 images for (labels[j], seeds[j]), in eval mode, chunked by `batch`."""
    net.eval()
    h, w, c = net.image_shape
    out = np.empty((len(labels), h, w, c), dtype=np.uint8)
    for start in range(0, len(labels), batch):
        stop = min(start + batch, len(labels))
        z = latents(seeds[start:stop], net.z_dim).to(device)
        y = torch.as_tensor(np.asarray(labels[start:stop]), dtype=torch.long, device=device)
        out[start:stop] = to_uint8(net(z, y))
    return out
