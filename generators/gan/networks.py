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
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from synth.seeding import per_seed_uniforms


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
    """Spectral-norm conv features phi(x) (sum-pooled); D(x, y) = w . phi(x) + embed(y) . phi(x).

    With `aux_classifier=True` D also has a class head on phi (AC-GAN style): trained on real
    images' labels only, it gives G a class-consistency signal. Projection alone let G
    ignore the label at 10 images per class (docs/gan.md: label fidelity 0.33).
    """

    def __init__(
        self, n_classes: int, image_shape: tuple[int, int, int], channels: int = 64, aux_classifier: bool = False,
    ) -> None:
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
        self.aux = nn.Linear(widths[-1], n_classes) if aux_classifier else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.stem(x), 0.2)
        for conv in self.stages:
            h = F.avg_pool2d(F.leaky_relu(conv(h), 0.2), 2, ceil_mode=True)
        return F.leaky_relu(self.final(h), 0.2).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.score_and_logits(x, y)[0]

    def score_and_logits(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(D score, class logits or None without the aux head) from one feature pass."""
        phi = self.features(x)
        score = self.linear(phi).squeeze(1) + (self.embed(y) * phi).sum(dim=1)
        return score, (self.aux(phi) if self.aux is not None else None)


def latents(seeds: np.ndarray, z_dim: int) -> torch.Tensor:
    """One standard-normal latent per seed: Box-Muller on a counter-based hash of (seed, k).

    Sample j's latent depends on seeds[j] alone, never on batch size or position. Vectorised
    over the whole batch: the former loop (one seeded torch.Generator per sample) cost about
    as much as the generator's forward pass at 8x8.
    """
    half = (z_dim + 1) // 2
    unit = per_seed_uniforms(seeds, 2 * half)  # float32: log/cos ~2x cheaper than float64
    radius = np.sqrt(np.float32(-2.0) * np.log(unit[:, :half]))
    angle = np.float32(2.0 * np.pi) * unit[:, half:]
    return torch.from_numpy(np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :z_dim])


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, C, H, W) -> uint8 (N, H, W, C)."""
    return ((x + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def render(
    net: ConditionalGenerator, labels: np.ndarray, seeds: np.ndarray, batch: int = 2048,
    device: torch.device | str = "cpu", workers: int | None = None,
) -> np.ndarray:
    """uint8 images for (labels[j], seeds[j]), in eval mode, chunked by `batch`.

    On CPU with `workers` > 1 (default: torch.get_num_threads()) chunks run on a thread
    pool with ONE intra-op thread each. Why: at 8x8 every op is tiny, and intra-op threads
    meet at a barrier after each op; on a shared machine a descheduled thread stalls the
    others at every barrier (measured: 2 intra-op threads 3-10x SLOWER than 1 under load).
    Independent chunks need no barrier. Each sample depends only on its own seed and label,
    so the output does not depend on the chunking.
    """
    net.eval()
    h, w, c = net.image_shape
    out = np.empty((len(labels), h, w, c), dtype=np.uint8)
    labels = np.asarray(labels)
    workers = torch.get_num_threads() if workers is None else workers
    if workers > 1:  # every worker gets a share of a small request
        batch = max(1, min(batch, -(-len(labels) // workers)))
    chunks = [(start, min(start + batch, len(labels))) for start in range(0, len(labels), batch)]

    def draw(chunk: tuple[int, int]) -> None:
        start, stop = chunk
        with torch.inference_mode():
            z = latents(seeds[start:stop], net.z_dim).to(device)
            y = torch.as_tensor(labels[start:stop], dtype=torch.long, device=device)
            out[start:stop] = to_uint8(net(z, y))

    if workers <= 1 or len(chunks) <= 1 or torch.device(device).type != "cpu":
        for chunk in chunks:
            draw(chunk)
        return out
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(draw, chunks))
    finally:
        torch.set_num_threads(before)
    return out
