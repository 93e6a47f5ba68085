"""Synthetic data for the mixer: a synth output directory or any ImageFolder, optionally filtered.

A synth output directory carries a manifest with per-sample scores (`score_*` columns, and
an `accepted` column once a filter has been applied by `synth score`), so the mixer can keep
only the samples that pass a threshold or a quantile, and can weight the rest by a score.
An ImageFolder has no scores: asking to filter or weight it by one is an error, not a no-op.

Every synthetic sample also keeps its `parent_id` (the real image it was derived from, if
any). Cross-validation uses it to drop the variations of a validation fold's images from
that fold's training data, which would otherwise leak the fold's answers into training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.data.imagefolder import read_image_folder
from synth.data.imageset import ImageSet
from synth.errors import ConfigError, DataError
from synth.viz import decode_png
from synth.writer import MANIFEST_FILE, read_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticData:
    """Synthetic images plus whatever the manifest says about each of them.

    `scores` maps a manifest column (e.g. "score_novelty", "accepted") to one float per
    image (NaN where the manifest has no value); `parent_ids` holds "" where unknown.
    """

    images: ImageSet
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    parent_ids: np.ndarray | None = None
    origin: str = ""

    def __len__(self) -> int:
        return len(self.images)

    def column(self, name: str) -> np.ndarray:
        """One score column, or a DataError listing the columns there are."""
        if name not in self.scores:
            known = ", ".join(sorted(self.scores)) or "none (an ImageFolder has no scores)"
            raise DataError(f"synthetic data {self.origin or ''} has no score column {name!r}; known columns: {known}")
        values = self.scores[name]
        if np.isnan(values).all():
            raise DataError(
                f"score column {name!r} of {self.origin or 'the synthetic data'} is empty; "
                "run `synth score` on it first or choose another column"
            )
        return values

    def subset(self, index: np.ndarray) -> SyntheticData:
        index = np.asarray(index, dtype=np.int64)
        parents = None if self.parent_ids is None else self.parent_ids[index]
        return SyntheticData(self.images.subset(index), {k: v[index] for k, v in self.scores.items()}, parents, self.origin)

    def without_parents(self, real_ids: Sequence[str] | np.ndarray) -> SyntheticData:
        """Drop samples derived from any of `real_ids` (a validation fold's images)."""
        if self.parent_ids is None or len(real_ids) == 0:
            return self
        return self.subset(np.flatnonzero(~np.isin(self.parent_ids, np.asarray(real_ids, dtype=str))))

    def filtered(
        self,
        column: str | None = None,
        *,
        min_score: float | None = None,
        quantile: float | None = None,
        accepted_only: bool = False,
    ) -> SyntheticData:
        """Keep samples whose `column` is >= `min_score` and/or above its `quantile`.

        `quantile=0.25` drops the lowest-scoring quarter. Samples without a score in
        `column` are dropped (they cannot be shown to pass). `accepted_only` keeps the
        rows `synth score` marked accepted.
        """
        keep = np.ones(len(self), dtype=bool)
        if accepted_only:
            keep &= self.column("accepted") > 0.5
        if column is None:
            if min_score is not None or quantile is not None:
                raise ConfigError("mixer.filter: min/quantile given without a score column (set mixer.filter.column)")
        else:
            values = self.column(column)
            keep &= ~np.isnan(values)
            if min_score is not None:
                keep &= values >= float(min_score)
            if quantile is not None:
                if not 0.0 <= float(quantile) < 1.0:
                    raise ConfigError(f"mixer.filter.quantile must be in [0, 1), got {quantile}")
                keep &= values >= np.nanquantile(values, float(quantile))
        out = self.subset(np.flatnonzero(keep))
        if len(out) == 0:
            raise DataError(
                f"the filter (column={column}, min={min_score}, quantile={quantile}, accepted_only={accepted_only}) "
                f"removed all {len(self)} synthetic images of {self.origin}; loosen it"
            )
        return out


def load_synthetic(
    path: str | Path,
    class_names: Sequence[str],
    image_shape: tuple[int, int, int] | None = None,
) -> SyntheticData:
    """Read a synth output directory (manifest.parquet + images) or an ImageFolder.

    `class_names` are the real data's classes: synthetic labels are mapped by class name so
    a synthetic set with a subset of the classes, or another class order, still lines up.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"synthetic data directory {root} does not exist")
    if (root / MANIFEST_FILE).exists():
        data = _from_manifest(root, class_names)
    else:
        size = None if image_shape is None else image_shape[:2]
        mode = None if image_shape is None else ("L" if image_shape[2] == 1 else "RGB")
        images = read_image_folder(root, class_names=class_names, image_size=size, mode=mode or "auto")
        data = SyntheticData(images, {}, None, str(root))
    if len(data) == 0:
        raise DataError(f"synthetic data at {root} holds no images")
    if image_shape is not None and data.images.image_shape != tuple(image_shape):
        raise DataError(
            f"synthetic images at {root} are {data.images.image_shape}, the real ones {tuple(image_shape)}; "
            "generate them from the same data config"
        )
    log.info("synthetic data: %d images from %s", len(data), root)
    return data


def _from_manifest(root: Path, class_names: Sequence[str]) -> SyntheticData:
    table = read_manifest(root)
    names = table.column("class_name").to_pylist()
    index = {c: i for i, c in enumerate(class_names)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise DataError(f"{root / MANIFEST_FILE} has classes {unknown[:5]} that the real data does not ({list(class_names)[:10]})")
    if not names:
        raise DataError(f"{root / MANIFEST_FILE} lists no images; the synthetic source is empty")
    paths = table.column("path").to_pylist()
    missing = [p for p in paths[:1000] if not (root / p).exists()]
    if missing:
        raise DataError(f"{root} manifest lists images that are not on disk, e.g. {missing[0]}")
    images = np.stack([decode_png((root / p).read_bytes()) for p in paths])
    ids = np.asarray(table.column("sample_id").to_pylist(), dtype=str)
    imageset = ImageSet.build(images, [index[n] for n in names], ids, class_names)
    scores = {}
    for col in table.column_names:
        if col.startswith("score_") or col == "accepted":
            values = table.column(col).to_pylist()
            scores[col] = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    parents = table.column("parent_id").to_pylist() if "parent_id" in table.column_names else None
    parent_ids = None if parents is None else np.asarray(["" if p is None else p for p in parents], dtype=str)
    return SyntheticData(imageset, scores, parent_ids, str(root))


def from_imageset(images: ImageSet, parent_ids: Sequence[str] | None = None, **scores: np.ndarray) -> SyntheticData:
    """Wrap in-memory synthetic images (e.g. straight from `Generator.sample`)."""
    parents = None if parent_ids is None else np.asarray(["" if p is None else str(p) for p in parent_ids], dtype=str)
    return SyntheticData(images, {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}, parents, "in-memory")
