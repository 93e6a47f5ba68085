"""Pictures a person would rather look at than read: sample grids (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from synth.fsutil import atomic_write_bytes


def image_grid(images: np.ndarray, rows: int, cols: int, cell: int = 32, pad: int = 2) -> np.ndarray:
    """Tile uint8 (N, H, W, C) images into one (rows x cols) uint8 image, upscaled to `cell` px."""
    h, w, c = images.shape[1:] if len(images) else (cell, cell, 1)
    scale = max(1, cell // max(h, w))
    ch, cw = h * scale, w * scale
    grid = np.full((rows * (ch + pad) + pad, cols * (cw + pad) + pad, c), 64, dtype=np.uint8)
    for i, img in enumerate(images[: rows * cols]):
        r, k = divmod(i, cols)
        big = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_NEAREST)
        y, x = pad + r * (ch + pad), pad + k * (cw + pad)
        grid[y : y + ch, x : x + cw] = big.reshape(ch, cw, c)
    return grid


def class_grid(images: np.ndarray, labels: np.ndarray, n_classes: int, per_class: int = 10) -> np.ndarray:
    """One row per class, up to `per_class` samples each (blank cells where a class has fewer)."""
    shape = images.shape[1:]
    rows = []
    for c in range(n_classes):
        members = images[labels == c][:per_class]
        pad = np.zeros((per_class - len(members), *shape), dtype=np.uint8)
        rows.append(np.concatenate([members, pad]) if len(pad) else members)
    return image_grid(np.concatenate(rows) if rows else images[:0], n_classes, per_class)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB or grayscale uint8 image as PNG (atomically)."""
    atomic_write_bytes(path, encode_png(image))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W, 1|3) RGB image; deterministic for a given OpenCV build."""
    img = image[..., 0] if image.shape[-1] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("OpenCV failed to encode a PNG")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """Inverse of `encode_png`: uint8 (H, W, 1|3) RGB."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("not a decodable image")
    return img[..., None] if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def save_class_grid(path: str | Path, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> None:
    write_png(path, class_grid(images, labels, len(class_names)))
