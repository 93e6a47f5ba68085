"""Where real images come from: scikit-learn digits, Fashion-MNIST IDX files, ImageFolder.

A source loads images once and hands out `Splits`. All three are selected by the `data`
config group (`conf/data/*.yaml`) through Hydra's `_target_`.
"""

from __future__ import annotations

import gzip
import struct
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path

import numpy as np

from synth.data.imageset import ImageSet
from synth.data.splits import Splits, make_splits, stratified_split
from synth.errors import ConfigError, DataError


class Source(ABC):
    """A real dataset, plus how to split it into pool and test set.

    Args:
        test_size: test images (int) or share (float < 1), used when the source has no
            test split of its own.
        split_seed: fixes the test set and any subsampling; independent of experiment seeds.
        max_pool: keep at most this many pool images (stratified), for CPU-sized runs.
        max_test: keep at most this many test images (stratified).
    """

    name = "source"

    def __init__(
        self,
        test_size: int | float = 0.2,
        split_seed: int = 0,
        max_pool: int | None = None,
        max_test: int | None = None,
    ) -> None:
        self.test_size = test_size
        self.split_seed = split_seed
        self.max_pool = max_pool
        self.max_test = max_test

    @abstractmethod
    def _load(self) -> tuple[ImageSet, ImageSet | None]:
        """Return (all training images, the source's own test split or None)."""

    @cached_property
    def _pool_and_test(self) -> tuple[ImageSet, ImageSet]:
        data, test = self._load()
        if test is None:
            data, test = stratified_split(data, self.test_size, self.split_seed)
        return self._cap(data, self.max_pool, "max_pool"), self._cap(test, self.max_test, "max_test")

    def _cap(self, data: ImageSet, limit: int | None, key: str) -> ImageSet:
        if limit is None or limit >= len(data):
            return data
        if limit < data.n_classes:
            raise ConfigError(f"data.{key}={limit} is smaller than the number of classes ({data.n_classes})")
        # Keep `limit` images by moving the rest into a discarded "test" part.
        kept, _ = stratified_split(data, len(data) - limit, self.split_seed + 7919)
        return kept

    @property
    def pool(self) -> ImageSet:
        return self._pool_and_test[0]

    @property
    def test(self) -> ImageSet:
        return self._pool_and_test[1]

    def splits(self, n_per_class: int | None = None, fraction: float | None = None, seed: int = 0) -> Splits:
        """Labelled budget (seeded), unlabelled rest of the pool, and the fixed test set."""
        return make_splits(
            self.pool, self.test, test_size=self.test_size, split_seed=self.split_seed,
            n_per_class=n_per_class, fraction=fraction, seed=seed,
        )


class DigitsSource(Source):
    """scikit-learn's bundled 8x8 digits (1,797 images): no download needed."""

    name = "digits"

    def _load(self) -> tuple[ImageSet, None]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.round(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        ids = [f"digits-{i:04d}" for i in range(len(images))]
        return ImageSet.build(images, bunch.target, ids, [str(c) for c in range(10)]), None


FASHION_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) as used by MNIST-style datasets."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    # a bytearray, so the array is writable (frombuffer over bytes is read-only, and torch warns on those)
    data = np.frombuffer(bytearray(raw), dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {data.size}")
    return data.reshape(shape)


class FashionMNISTSource(Source):
    """Fashion-MNIST from IDX files (default: Debian's `dataset-fashion-mnist` location)."""

    name = "fashion_mnist"

    def __init__(self, root: str = "/usr/share/datasets/fashion-mnist", **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)

    def _file(self, stem: str) -> Path:
        for candidate in (self.root / f"{stem}.gz", self.root / stem):
            if candidate.exists():
                return candidate
        raise DataError(
            f"Fashion-MNIST file {stem}(.gz) not found under {self.root}. Install it with "
            "`sudo apt-get install -y dataset-fashion-mnist` or point data.root at a directory holding "
            "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            "t10k-labels-idx1-ubyte.gz"
        )

    def _part(self, prefix: str, tag: str) -> ImageSet:
        images = read_idx(self._file(f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(self._file(f"{prefix}-labels-idx1-ubyte"))
        if len(images) != len(labels):
            raise DataError(f"Fashion-MNIST {prefix}: {len(images)} images but {len(labels)} labels")
        ids = [f"fmnist-{tag}-{i:05d}" for i in range(len(images))]
        return ImageSet.build(images, labels, ids, FASHION_CLASSES)

    def _load(self) -> tuple[ImageSet, ImageSet]:
        return self._part("train", "train"), self._part("t10k", "test")


class ImageFolderSource(Source):
    """`root/<class>/*.png|jpg` (and an optional `test_root` laid out the same way)."""

    name = "imagefolder"

    def __init__(
        self,
        root: str | None = None,
        test_root: str | None = None,
        image_size: int | list[int] | None = None,
        mode: str = "auto",
        skip_corrupt: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if root is None:
            raise ConfigError("data.root is required for data=imagefolder (a directory of class folders)")
        self.root = Path(root)
        self.test_root = Path(test_root) if test_root else None
        self.image_size = image_size
        self.mode = mode
        self.skip_corrupt = skip_corrupt

    def _load(self) -> tuple[ImageSet, ImageSet | None]:
        from synth.data.imagefolder import read_image_folder

        opts = dict(image_size=self.image_size, mode=self.mode, skip_corrupt=self.skip_corrupt)
        data = read_image_folder(self.root, **opts)
        if self.test_root is None:
            return data, None
        test = read_image_folder(self.test_root, class_names=data.class_names, **opts)
        if test.image_shape != data.image_shape:
            raise DataError(
                f"test images in {self.test_root} are {test.image_shape}, training images in {self.root} "
                f"are {data.image_shape}; set data.image_size to resize both"
            )
        return data, test
