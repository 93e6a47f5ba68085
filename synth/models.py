"""Small CNN classifier: the reference model for training, judging and feature extraction.

Sized for CPU (about 150k parameters at 28x28): the calibration runs behind synth's
defaults used this shape. `features()` exposes the penultimate layer so the same network
doubles as a feature extractor for scoring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two conv blocks -> global-average-free flatten -> hidden layer -> logits.

    Args:
        in_channels: 1 (grayscale) or 3 (RGB).
        n_classes: output classes.
        image_size: (height, width) of inputs; the head is sized from it.
        width: channels of the first conv block (the second has 2x).
        hidden: size of the feature (penultimate) layer.
        pool: 2x2 max-pool between the conv blocks. None (default) pools at 16 px and up: at
            28x28 the second block at full resolution made a Fashion-MNIST training run ~5x
            slower (minutes instead of seconds under load), and pooling kept accuracy within
            ~1 point on the seed checked; 8x8 digits have no resolution to spare.
            Checkpoints saved before this key existed had no pool (`from_config`).
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        image_size: tuple[int, int],
        width: int = 32,
        hidden: int = 128,
        dropout: float = 0.25,
        pool: bool | None = None,
    ) -> None:
        super().__init__()
        pool = min(image_size) >= 16 if pool is None else bool(pool)
        self.config = dict(in_channels=in_channels, n_classes=n_classes, image_size=tuple(image_size),
                           width=width, hidden=hidden, dropout=dropout, pool=pool)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            *([nn.MaxPool2d(2)] if pool else []),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4 if min(image_size) < 16 else 7),
            nn.Flatten(),
        )
        pooled = 4 if min(image_size) < 16 else 7
        self.neck = nn.Sequential(nn.Linear(2 * width * pooled * pooled, hidden), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)
        self.num_features = hidden

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmallCNN:
        """Rebuild from a saved `config`; one written before `pool` existed never pooled."""
        return cls(**{"pool": False, **config, "image_size": tuple(config["image_size"])})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (N, hidden)."""
        return self.neck(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))
