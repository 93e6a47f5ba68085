"""Read an ImageFolder directory (`root/<class>/*.png|jpg`) into an `ImageSet`.

Reading is strict by default because a silently dropped or silently resized image changes
what a benchmark measures: corrupt files, empty classes, and mixed sizes or modes are
errors naming the files, each with the config switch that makes it acceptable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from synth.data.imageset import ImageSet
from synth.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MODES = ("auto", "L", "RGB")


def _list_classes(root: Path, class_names: Sequence[str] | None) -> list[tuple[str, list[Path]]]:
    if not root.is_dir():
        raise DataError(f"ImageFolder root {root} does not exist or is not a directory")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DataError(f"{root} has no class sub-directories; expected {root}/<class>/<image>.png")
    found = {d.name: sorted(f for f in d.rglob("*") if f.suffix.lower() in EXTENSIONS) for d in dirs}
    names = list(class_names) if class_names is not None else [d.name for d in dirs]
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"{root} has class folders {unknown} not among the training classes {names}")
    empty = [n for n in names if not found.get(n)]
    if empty and class_names is None:
        raise DataError(f"class folder(s) {empty} under {root} contain no images ({', '.join(EXTENSIONS)})")
    return [(n, found.get(n, [])) for n in names]


def _read(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()  # forces a full decode: truncated files fail here, not later
        return img.copy()


def _target_size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    hw = (int(image_size), int(image_size)) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    if len(hw) != 2 or min(hw) <= 0:
        raise ConfigError(f"data.image_size must be a positive int or [height, width], got {image_size}")
    return hw  # type: ignore[return-value]


def _read_all(files: Sequence[Path], root: Path, skip_corrupt: bool) -> list[tuple[Path, Image.Image]]:
    """(file, image) for every readable file; an unreadable one is an error naming it, or with
    `skip_corrupt` is skipped, counted and logged."""
    read, skipped = [], []
    for f in files:
        try:
            read.append((f, _read(f)))
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            if not skip_corrupt:
                raise DataError(
                    f"cannot read image {f}: {exc}. Fix or remove it, or set data.skip_corrupt=true "
                    "to skip unreadable files"
                ) from exc
            skipped.append(f)
    if skipped:
        log.warning("skipped %d unreadable image(s) under %s, e.g. %s", len(skipped), root, skipped[0])
    return read


def read_image_folder(
    root: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    image_size: int | Sequence[int] | None = None,
    mode: str = "auto",
    skip_corrupt: bool = False,
) -> ImageSet:
    """Load every image under `root/<class>/`.

    Args:
        class_names: fix the class order (e.g. a test folder read with the training classes).
        image_size: resize every image to this size; without it mixed sizes are an error.
        mode: "L" or "RGB" converts every image; "auto" keeps grayscale if all images are
            grayscale and refuses a mix (so nothing is converted behind the user's back).
        skip_corrupt: skip unreadable files (counted and logged) instead of failing.
    """
    if mode not in MODES:
        raise ConfigError(f"data.mode must be one of {MODES}, got {mode!r}")
    root = Path(root)
    size = _target_size(image_size)
    classes = _list_classes(root, class_names)
    images: list[Image.Image] = []
    labels: list[int] = []
    ids: list[str] = []
    for label, (_, files) in enumerate(classes):
        for f, img in _read_all(files, root, skip_corrupt):
            images.append(img)
            labels.append(label)
            ids.append(f.relative_to(root).as_posix())
    if not images:
        raise DataError(f"no readable images under {root}")
    if class_names is None:
        empty = [classes[c][0] for c in range(len(classes)) if c not in set(labels)]
        if empty:
            raise DataError(f"class(es) {empty} under {root} have no readable images")
    return ImageSet.build(_to_array(images, ids, root, size, mode), labels, ids, [c for c, _ in classes])


def read_unlabelled_folder(
    root: str | Path,
    *,
    class_names: Sequence[str],
    image_size: int | Sequence[int] | None = None,
    mode: str = "auto",
    skip_corrupt: bool = False,
) -> ImageSet:
    """Every image anywhere under `root` (any layout; folder names are not labels), labels -1.

    Ids are `unlabelled/<path relative to root>`, so they never collide with the labelled
    ImageFolder's `<class>/<file>` ids and each names its file. The same strictness as
    `read_image_folder`: corrupt files, mixed sizes or modes are errors naming a file.
    """
    if mode not in MODES:
        raise ConfigError(f"data.mode must be one of {MODES}, got {mode!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"unlabelled_root {root} does not exist or is not a directory")
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in EXTENSIONS)
    read = _read_all(files, root, skip_corrupt)
    images = [img for _, img in read]
    ids = ["unlabelled/" + f.relative_to(root).as_posix() for f, _ in read]
    if not images:
        raise DataError(f"no readable images ({', '.join(EXTENSIONS)}) under {root}")
    array = _to_array(images, ids, root, _target_size(image_size), mode)
    return ImageSet.build(array, np.full(len(ids), -1), ids, class_names)


def _to_array(
    images: list[Image.Image], ids: list[str], root: Path, size: tuple[int, int] | None, mode: str
) -> np.ndarray:
    gray = [img.mode in ("1", "L", "I", "I;16", "F") for img in images]
    if mode == "auto":
        if all(gray):
            mode = "L"
        elif not any(gray):
            mode = "RGB"
        else:
            g, c = ids[gray.index(True)], ids[gray.index(False)]
            raise DataError(
                f"{root} mixes grayscale ({g}) and colour ({c}) images; set data.mode=RGB or data.mode=L"
            )
    if size is None:
        sizes = {img.size for img in images}
        if len(sizes) > 1:
            first = {s: ids[[img.size for img in images].index(s)] for s in list(sizes)[:2]}
            detail = ", ".join(f"{name} is {w}x{h}" for (w, h), name in first.items())
            raise DataError(f"{root} mixes image sizes ({detail}); set data.image_size to resize them")
    arrays = []
    for img in images:
        img = img.convert(mode)
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(img, dtype=np.uint8))
    out = np.stack(arrays)
    return out[..., None] if out.ndim == 3 else out
