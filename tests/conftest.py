"""Shared fixtures: tiny real data sets built from the bundled digits (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synth.data import DigitsSource, ImageSet, Splits

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_source() -> DigitsSource:
    return DigitsSource(test_size=500)


@pytest.fixture(scope="session")
def digits_splits(digits_source: DigitsSource) -> Splits:
    """10 labelled images per class, the rest of the pool unlabelled, 500 fixed test images."""
    return digits_source.splits(n_per_class=10, seed=0)


@pytest.fixture(scope="session")
def tiny_labelled(digits_splits: Splits) -> ImageSet:
    """3 labelled digits per class: enough for contract tests, fast to fit."""
    ls = digits_splits.labelled
    keep = np.concatenate([np.flatnonzero(ls.labels == c)[:3] for c in range(ls.n_classes)])
    return ls.subset(keep)


def write_image_folder(root: Path, images: np.ndarray, labels: np.ndarray, class_names) -> Path:
    """Write uint8 images as root/<class>/<i>.png (a user's ImageFolder)."""
    from synth.viz import encode_png

    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        d = root / class_names[lab]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:05d}.png").write_bytes(encode_png(img))
    return root
