"""Export a notMNIST-style ImageFolder: the letters A-J rendered from every font the machine has.

Why: issue 9 asks that the recipe search be "never worse" on data its defaults were not developed
on, through ImageFolder. Digits and Fashion-MNIST have both informed synth's defaults (dev-split
checks), and no third image dataset can be downloaded here; the fonts Debian packages ship can be.
notMNIST (Bulatov, 2011) was built the same way: one 28x28 image per letter per font, so classes are
letter shapes and the variation between images is typeface design (serif, weight, italic, display).

Deterministic: fonts sorted by path, letters rendered at 64 px, cropped to their ink, scaled to fit a
20x20 box and centred in 28x28 (MNIST's normalisation), white on black. Fonts that lack a letter or
render one blank are skipped, and so are exact duplicates (the same font in two packages). The
train/test split is by font *family* (the file name before the first '-' or '_'), so no weight or
italic of a test typeface is in the training pool.

    apt-get install -y --no-install-recommends fonts-noto-core fonts-liberation fonts-urw-base35 \
      fonts-freefont-ttf fonts-croscore fonts-texgyre fonts-lmodern fonts-dejavu-extra fonts-open-sans \
      fonts-roboto fonts-lato fonts-cantarell fonts-ebgaramond fonts-linuxlibertine fonts-inconsolata \
      fonts-hack fonts-crosextra-carlito fonts-crosextra-caladea fonts-comic-neue fonts-firacode \
      fonts-liberation2 fonts-gfs-didot fonts-sil-gentium fonts-sil-charis fonts-junicode fonts-oldstandard \
      fonts-cmu fonts-adf-accanthis fonts-adf-gillius fonts-adf-universalis fonts-adf-berenis \
      fonts-adf-baskervald fonts-league-spartan fonts-mononoki fonts-jetbrains-mono fonts-quicksand
    python benchmarks/make_glyph_folder.py --out /tmp/glyphs   # -> /tmp/glyphs/{train,test}/<A..J>/<font>.png
    python benchmarks/make_glyph_folder.py --out /tmp/glyphs --grid benchmarks/results/glyphs/train_grid.png
        # a row per letter, 10 training fonts each (seeded), from the export through synth's ImageFolder loader
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

LETTERS = "ABCDEFGHIJ"
FONT_DIRS = ("/usr/share/fonts", "/usr/share/texmf/fonts", "/usr/share/texlive")
SIZE, BOX, RENDER = 28, 20, 64


def font_files(dirs: tuple[str, ...] = FONT_DIRS) -> list[Path]:
    found = {p.resolve() for d in dirs if Path(d).is_dir() for p in Path(d).rglob("*")
             if p.suffix.lower() in (".ttf", ".otf") and p.is_file()}
    return sorted(found)


def covers(path: Path, letters: str = LETTERS) -> bool:
    """Whether the font maps every letter to a glyph (many Noto fonts cover other scripts only)."""
    try:
        cmap = TTFont(path, lazy=True, fontNumber=0).getBestCmap() or {}
    except Exception:  # noqa: BLE001 - an unreadable font is skipped, not fatal
        return False
    return all(ord(c) in cmap for c in letters)


def render(font: ImageFont.FreeTypeFont, letter: str) -> np.ndarray | None:
    """28x28 uint8: the letter's ink scaled into a 20x20 box and centred; None if it renders blank."""
    canvas = Image.new("L", (3 * RENDER, 3 * RENDER), 0)
    ImageDraw.Draw(canvas).text((RENDER, RENDER // 2), letter, fill=255, font=font)
    bbox = canvas.getbbox()
    if bbox is None or bbox[2] - bbox[0] < 2 or bbox[3] - bbox[1] < 2:
        return None
    ink = canvas.crop(bbox)
    scale = BOX / max(ink.size)
    ink = ink.resize((max(1, round(ink.size[0] * scale)), max(1, round(ink.size[1] * scale))), Image.LANCZOS)
    out = Image.new("L", (SIZE, SIZE), 0)
    out.paste(ink, ((SIZE - ink.size[0]) // 2, (SIZE - ink.size[1]) // 2))
    return np.asarray(out)


def family(path: Path) -> str:
    return re.split(r"[-_]", path.stem, maxsplit=1)[0].lower()


def image_name(path: Path) -> str:
    """The file name (without .png) a font's images get: its folder and stem, filesystem-safe."""
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{path.parent.name}_{path.stem}")


def export(out: Path, test_share: float, seed: int, dirs: tuple[str, ...] = FONT_DIRS) -> dict:
    rendered, seen, skipped = {}, set(), {"no_letters": 0, "blank": 0, "duplicate": 0, "unreadable": 0}
    for path in font_files(dirs):
        if not covers(path):
            skipped["no_letters"] += 1
            continue
        try:
            font = ImageFont.truetype(str(path), RENDER)
            images = [render(font, c) for c in LETTERS]
        except OSError:
            skipped["unreadable"] += 1
            continue
        if any(im is None for im in images):
            skipped["blank"] += 1
            continue
        digest = hashlib.sha1(np.stack(images).tobytes()).hexdigest()
        if digest in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(digest)
        rendered[path] = images
    families = sorted({family(p) for p in rendered})
    perm = np.random.default_rng(seed).permutation(len(families))
    test_families = {families[i] for i in perm[: round(test_share * len(families))]}
    counts = {"train": 0, "test": 0}
    for path, images in rendered.items():
        split = "test" if family(path) in test_families else "train"
        counts[split] += 1
        name = image_name(path)
        for letter, im in zip(LETTERS, images, strict=True):
            d = out / split / letter
            d.mkdir(parents=True, exist_ok=True)
            if (d / f"{name}.png").exists():  # two fonts would share one image id: fail rather than overwrite
                raise SystemExit(f"two fonts map to {d / name}.png; rename one font file")
            Image.fromarray(im).save(d / f"{name}.png")
    summary = {"fonts": len(rendered), "families": len(families), "test_families": len(test_families),
               "images_per_class": counts, "skipped": skipped, "seed": seed, "test_share": test_share}
    (out / "glyphs.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def write_grid(out: Path, path: Path, per_class: int = 10, seed: int = 0) -> None:
    """PNG of `per_class` seeded training images per letter, read back the way a user's data is."""
    from synth.data.imagefolder import read_image_folder
    from synth.viz import save_class_grid

    train = read_image_folder(out / "train")
    rng = np.random.default_rng(seed)
    picks = np.concatenate([rng.permutation(np.flatnonzero(train.labels == c))[:per_class]
                            for c in range(train.n_classes)])
    sample = train.subset(np.sort(picks))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_class_grid(path, sample.images, sample.labels, sample.class_names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--test-share", type=float, default=0.25, help="share of font families held out as the test set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", type=Path, help="write a sample grid PNG of an existing export here (no export)")
    args = ap.parse_args()
    if args.grid:
        write_grid(args.out, args.grid)
        return
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty: choose a new --out (the export does not merge)")
    print(json.dumps(export(args.out, args.test_share, args.seed), indent=2))


if __name__ == "__main__":
    main()
