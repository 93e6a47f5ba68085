"""Read a synth output directory as an ImageSet, and write scores back into its manifest.

The manifest is rewritten atomically (temporary file + rename): a kill mid-write leaves
the old manifest intact. Every row stays listed; filtering only sets `accepted` and
`status` ("accepted" / "rejected" / "unfiltered"), never drops rejected samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synth.data.imageset import ImageSet
from synth.errors import DataError
from synth.fsutil import atomic_write
from synth.viz import decode_png
from synth.writer import MANIFEST_FILE, read_manifest


def read_synthetic(out_dir: str | Path, class_names: tuple[str, ...]) -> tuple[ImageSet, pa.Table]:
    """The images of a finished synth dataset (ids = sample_id), checked against `class_names`."""
    out = Path(out_dir)
    table = read_manifest(out)
    if table.num_rows == 0:
        raise DataError(f"{out / MANIFEST_FILE} lists no samples: nothing to score")
    labels = np.asarray(table.column("label"), dtype=np.int64)
    names = table.column("class_name").to_pylist()
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise DataError(f"{out} has labels outside the reference's {len(class_names)} classes")
    bad = next((i for i, (lab, n) in enumerate(zip(labels, names, strict=True)) if class_names[lab] != n), None)
    if bad is not None:
        raise DataError(
            f"{out}: sample {table.column('sample_id')[bad]} has label {labels[bad]} = {names[bad]!r}, but the "
            f"reference calls class {labels[bad]} {class_names[labels[bad]]!r}; score against the data config it was "
            "generated from"
        )
    images = []
    for rel in table.column("path").to_pylist():
        path = out / rel
        try:
            images.append(decode_png(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read synthetic image {path}: {exc}") from exc
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"{out} holds images of several shapes {sorted(shapes)}; all must match the reference")
    ids = np.asarray(table.column("sample_id").to_pylist(), dtype=str)
    return ImageSet.build(np.stack(images), labels, ids, class_names), table


def write_scores(
    out_dir: str | Path,
    sample_ids: np.ndarray,
    scores: Mapping[str, np.ndarray],
    accepted: np.ndarray | None = None,
    status: np.ndarray | None = None,
) -> pa.Table:
    """Write `score_<name>` columns (and `accepted`/`status`) into the manifest, by sample_id.

    `status` (optional, aligned with `sample_ids`) overrides the accepted/rejected statuses.
    Float scores become float64 columns, boolean ones (the `copy` flag) bool columns.
    Rows the scores do not cover keep nulls. Returns the new table.
    """
    out = Path(out_dir)
    table = read_manifest(out)
    row_of = {sid: i for i, sid in enumerate(table.column("sample_id").to_pylist())}
    missing = [s for s in sample_ids if s not in row_of]
    if missing:
        raise DataError(f"{len(missing)} scored ids (e.g. {missing[0]}) are not in {out / MANIFEST_FILE}")
    rows = np.array([row_of[s] for s in sample_ids], dtype=np.int64)
    columns = {f"score_{k}": v for k, v in scores.items()}
    if accepted is not None:
        columns["accepted"] = np.asarray(accepted, dtype=bool)
    for name, values in columns.items():
        table = _set_column(table, name, rows, np.asarray(values))
    full_status = np.full(table.num_rows, "unfiltered", dtype=object)
    if status is not None:  # a caller's finer statuses (e.g. "surplus" from generate's accept mode)
        full_status[rows] = np.asarray(status, dtype=object)
    elif accepted is not None:
        full_status[rows] = np.where(np.asarray(accepted, dtype=bool), "accepted", "rejected")
    table = _set_column(table, "status", np.arange(table.num_rows), full_status.astype(str))
    atomic_write(out / MANIFEST_FILE, lambda tmp: pq.write_table(table, tmp))
    return table


def _set_column(table: pa.Table, name: str, rows: np.ndarray, values: np.ndarray) -> pa.Table:
    if values.dtype == bool:
        full = np.zeros(table.num_rows, dtype=bool)
        valid = np.zeros(table.num_rows, dtype=bool)
        typ = pa.bool_()
    elif values.dtype.kind in "US":
        full, valid, typ = np.full(table.num_rows, "", dtype=object), np.zeros(table.num_rows, bool), pa.string()
    else:
        full, valid, typ = np.full(table.num_rows, np.nan), np.zeros(table.num_rows, bool), pa.float64()
    full[rows] = values
    valid[rows] = True
    array = pa.array(full.tolist() if typ == pa.string() else full, type=typ, mask=~valid)
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, array) if i >= 0 else table.append_column(name, array)
