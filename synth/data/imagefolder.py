"""Read an ImageFolder directory (`root/<class>/*.png|jpg`) into an `ImageSet`.

Reading is strict by default because a silently dropped or silently resized image changes
what a benchmark measures: corrupt files, empty classes, and mixed sizes or modes are
errors naming the files, each with the config switch that makes it acceptable. The whole
folder is checked before anything is raised, so one error lists every problem found.
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
SHOWN = 3  # unreadable files named in an error; the rest are counted


def _list_classes(root: Path, class_names: Sequence[str] | None) -> list[tuple[str, list[Path]]]:
    """(class name, files) per class; a layout problem that leaves nothing to read is an error
    here, while empty classes are left for `_problems` so they are reported with the rest."""
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


def _read_all(files: Sequence[Path]) -> tuple[list[tuple[Path, Image.Image]], list[tuple[Path, str]]]:
    """(file, image) for every readable file and (file, reason) for every unreadable one: the
    whole folder is read before anything is reported, so one run names every bad file."""
    read, bad = [], []
    for f in files:
        try:
            read.append((f, _read(f)))
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            bad.append((f, str(exc)))
    return read, bad


def _unreadable_problem(bad: list[tuple[Path, str]], root: Path, skip_corrupt: bool) -> str | None:
    if not bad:
        return None
    if skip_corrupt:
        log.warning("skipped %d unreadable image(s) under %s, e.g. %s", len(bad), root, bad[0][0])
        return None
    shown = "; ".join(f"{f}: {why}" for f, why in bad[:SHOWN])
    more = f" (and {len(bad) - SHOWN} more)" if len(bad) > SHOWN else ""
    return (
        f"cannot read {len(bad)} image(s): {shown}{more}. Fix or remove them, or set "
        "data.skip_corrupt=true to skip unreadable files"
    )


def _mode_problem(images: list[Image.Image], ids: list[str], root: Path, mode: str) -> tuple[str, str | None]:
    """The mode to convert to, and the problem when "auto" meets a grayscale/colour mix (so
    nothing is converted behind the user's back)."""
    if mode != "auto":
        return mode, None
    gray = [img.mode in ("1", "L", "I", "I;16", "F") for img in images]
    if all(gray) or not any(gray):
        return ("L" if all(gray) else "RGB"), None
    g, c = ids[gray.index(True)], ids[gray.index(False)]
    return "RGB", f"{root} mixes grayscale ({g}) and colour ({c}) images; set data.mode=RGB or data.mode=L"


def _size_problem(images: list[Image.Image], ids: list[str], root: Path, size: tuple[int, int] | None) -> str | None:
    if size is not None:
        return None
    sizes = [img.size for img in images]
    distinct = list(dict.fromkeys(sizes))
    if len(distinct) < 2:
        return None
    detail = ", ".join(f"{ids[sizes.index(s)]} is {s[0]}x{s[1]}" for s in distinct[:2])
    return f"{root} mixes image sizes ({detail}); set data.image_size to resize them"


def _raise_problems(problems: Sequence[str | None], root: Path) -> None:
    """One error for everything wrong with a folder, each line with its own fix, so a user
    mends a messy folder in one pass rather than one rerun per problem."""
    found = [p for p in problems if p]
    if len(found) == 1:
        raise DataError(found[0])
    if found:
        lines = "\n".join(f"  - {p}" for p in found)
        raise DataError(f"{root} has {len(found)} problems; fix each before rerunning:\n{lines}")


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
    bad: list[tuple[Path, str]] = []
    for label, (_, files) in enumerate(classes):
        read, unreadable = _read_all(files)
        bad += unreadable
        for f, img in read:
            images.append(img)
            labels.append(label)
            ids.append(f.relative_to(root).as_posix())
    present = set(labels)
    empty = [name for c, (name, _) in enumerate(classes) if c not in present]
    problems = [_unreadable_problem(bad, root, skip_corrupt)]
    if empty and class_names is None:
        problems.append(f"class folder(s) {empty} under {root} have no readable images ({', '.join(EXTENSIONS)})")
    if not images:
        _raise_problems(problems, root)
        raise DataError(f"no readable images under {root}")
    return ImageSet.build(_to_array(images, ids, root, size, mode, problems), labels, ids, [c for c, _ in classes])


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
    read, bad = _read_all(files)
    problems = [_unreadable_problem(bad, root, skip_corrupt)]
    images = [img for _, img in read]
    ids = ["unlabelled/" + f.relative_to(root).as_posix() for f, _ in read]
    if not images:
        _raise_problems(problems, root)
        raise DataError(f"no readable images ({', '.join(EXTENSIONS)}) under {root}")
    array = _to_array(images, ids, root, _target_size(image_size), mode, problems)
    return ImageSet.build(array, np.full(len(ids), -1), ids, class_names)


def _to_array(
    images: list[Image.Image],
    ids: list[str],
    root: Path,
    size: tuple[int, int] | None,
    mode: str,
    problems: list[str | None],
) -> np.ndarray:
    """Stack the images in one mode and size, after raising every problem found so far plus
    any mode or size mix."""
    mode, mode_problem = _mode_problem(images, ids, root, mode)
    _raise_problems([*problems, mode_problem, _size_problem(images, ids, root, size)], root)
    arrays = []
    for img in images:
        img = img.convert(mode)
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(img, dtype=np.uint8))
    out = np.stack(arrays)
    return out[..., None] if out.ndim == 3 else out
