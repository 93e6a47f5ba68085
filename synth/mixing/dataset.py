"""`MixedDataset`: real + synthetic images behind one torch Dataset, with online augmentation.

Each item is `(image, label, is_synthetic)`: image float32 (C, H, W) in [0, 1], so a user
can weight the loss of synthetic items or keep separate normalisation statistics.

Online augmentation (a fresh variation every time a real image is drawn) is the lever that
measured strongest on digits (~2x label efficiency, against ~1.4x for the same variations
precomputed to disk). Its randomness is a pure function of (seed, epoch, position): a key
from `MixedBatchSampler` carries all three, so items reproduce exactly whatever the number
of DataLoader workers, and no two draws in a run (in any worker) share a random stream.
A plain integer index (an ordinary sampler) uses the epoch set by `set_epoch` and the index
as the position.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from generators.procedural.augment import augment_batch
from synth.data.imageset import ImageSet
from synth.errors import DataError
from synth.mixing.sampler import KeyBatch
from synth.seeding import rng_for

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Key = int | tuple[int, int, int]
_AUGMENT_STREAM = 31


class MixedDataset(Dataset):
    """Real images at indices [0, n_real), synthetic ones at [n_real, n_real + n_synthetic).

    Args:
        real: the labelled real images.
        synthetic: synthetic images (optional), same classes and image shape.
        augment: `augment(image_uint8_HWC, rng) -> image`, applied to real items only
            (synthetic items already are variations), e.g. a procedural augmenter.
        seed: root of every augmentation stream.
    """

    def __init__(self, real: ImageSet, synthetic: ImageSet | None = None, augment: Augment | None = None, seed: int = 0):
        if synthetic is not None and len(synthetic):
            if synthetic.image_shape != real.image_shape:
                raise DataError(f"synthetic images are {synthetic.image_shape}, real ones {real.image_shape}")
            if synthetic.class_names != real.class_names:
                raise DataError("synthetic and real data have different class lists; read the synthetic set with the real classes")
            images = np.concatenate([real.images, synthetic.images])
            labels = np.concatenate([real.labels, synthetic.labels])
        else:
            images, labels = real.images, real.labels
        self.n_real = len(real)
        self.images = torch.from_numpy(np.ascontiguousarray(images))  # uint8 (N, H, W, C), shared by workers
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self._np_images = images
        self.augment, self.seed, self.epoch = augment, int(seed), 0

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer keys (an ordinary sampler); sampler keys carry their own."""
        self.epoch = int(epoch)

    def is_synthetic(self, index: int) -> bool:
        return index >= self.n_real

    def augment_rng(self, epoch: int, position: int) -> np.random.Generator:
        """The random stream of one draw: a pure function of (seed, epoch, position)."""
        return rng_for(self.seed, _AUGMENT_STREAM, epoch, position)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, int, bool]:
        index = int(key) if np.isscalar(key) else int(key[0])
        synthetic = index >= self.n_real
        if self.augment is not None and not synthetic:
            image = torch.from_numpy(self.augment(self._np_images[index], self._rng(key)))
        else:
            image = self.images[index]
        return image.permute(2, 0, 1).float().div_(255.0), int(self.labels[index]), synthetic

    def batch(self, keys: list[Key]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A whole batch as stacked tensors (x, y, is_synthetic), one gather and one conversion."""
        if isinstance(keys, KeyBatch):
            index = torch.from_numpy(keys.index)
        else:
            index = torch.tensor([int(k) if np.isscalar(k) else k[0] for k in keys], dtype=torch.int64)
        flags = index >= self.n_real
        images = self.images[index]  # advanced indexing: a copy, safe to write augmented images into
        if self.augment is not None:
            real = torch.nonzero(~flags).flatten()
            if len(real):
                key_list = list(keys)
                rngs = [self._rng(key_list[j]) for j in real.tolist()]
                images[real] = torch.from_numpy(augment_batch(self.augment, self._np_images[index[real].numpy()], rngs))
        return images.permute(0, 3, 1, 2).float().div_(255.0), self.labels[index], flags

    def _rng(self, key: Key) -> np.random.Generator:
        return self.augment_rng(self.epoch, int(key)) if np.isscalar(key) else self.augment_rng(key[1], key[2])

    def __getitems__(self, keys: list[Key]) -> list[tuple[torch.Tensor, int, bool]]:
        """Batched fetch (DataLoader calls it when present); default collation re-stacks the items."""
        x, y, flags = self.batch(keys)
        # Plain ints and bools collate into tensors faster than 0-d tensors do.
        return list(zip(x.unbind(0), y.tolist(), flags.tolist(), strict=True))
