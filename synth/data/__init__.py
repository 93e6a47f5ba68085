"""Real data: sources (digits, Fashion-MNIST, ImageFolder), the `ImageSet` container, splits."""

from synth.data.imagefolder import read_image_folder, read_unlabelled_folder
from synth.data.imageset import ImageSet
from synth.data.sources import DigitsSource, FashionMNISTSource, ImageFolderSource, Source
from synth.data.splits import Splits, draw_budget, make_splits, stratified_split

__all__ = [
    "DigitsSource", "FashionMNISTSource", "ImageFolderSource", "ImageSet", "Source", "Splits",
    "draw_budget", "make_splits", "read_image_folder", "read_unlabelled_folder", "stratified_split",
]
