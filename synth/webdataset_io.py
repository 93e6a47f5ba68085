"""WebDataset tar shards of a finished synth dataset, and a reader the mixer can stream from.

Why: millions of small PNGs are slow to list, copy and read on shared cluster file systems;
a few large tar files stream sequentially. The ImageFolder layout stays the source of truth:
the tars are written from the merged manifest, in sample-index order, with fixed tar
metadata (mtime, owner, mode), so the same dataset always gives byte-identical tars.

Layout: OUT/wds/shard-000000.tar, ... Each sample holds `<sample_id>.png` (the PNG bytes
from images/, unchanged) and `<sample_id>.json` (label, class_name, sample_id, parent_id,
generator, seed, is_synthetic).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.errors import DataError
from synth.viz import decode_png
from synth.writer import dir_lock, read_manifest

WDS_DIR = "wds"
PATTERN = "shard-%06d.tar"


@dataclass(frozen=True)
class WdsSample:
    image: np.ndarray  # uint8 (H, W, C)
    label: int
    sample_id: str
    is_synthetic: bool


def write_webdataset(out_dir: str | Path, *, maxcount: int = 10_000) -> list[Path]:
    """Write OUT/wds/shard-*.tar from OUT/manifest.parquet; returns the tar paths.

    Written into a temporary folder and renamed into place, so a killed write leaves either
    the previous tars or none, never a truncated set.
    """

    out = Path(out_dir)
    with dir_lock(out):  # two shards finishing together would otherwise swap folders under each other
        return _write_locked(out, maxcount)


def _write_locked(out: Path, maxcount: int) -> list[Path]:
    import webdataset as wds

    manifest = read_manifest(out).to_pylist()
    final, tmp = out / WDS_DIR, out / f"{WDS_DIR}.partial.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with wds.ShardWriter(str(tmp / PATTERN), maxcount=maxcount, verbose=0, mtime=0.0, user="synth", group="synth") as sink:
        for row in manifest:
            image = out / row["path"]
            if not image.is_file():
                raise DataError(f"{image} listed in {out / 'manifest.parquet'} is missing; rerun `synth generate` to repair")
            meta = {k: row[k] for k in ("sample_id", "label", "class_name", "parent_id", "generator", "seed")}
            sink.write({"__key__": row["sample_id"], "png": image.read_bytes(), "json": {**meta, "is_synthetic": True}})
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return shard_paths(out)


def shard_paths(out_dir: str | Path) -> list[Path]:
    """The tar shards of an output directory (or of a folder of tars), in order."""
    root = Path(out_dir)
    folder = root / WDS_DIR if (root / WDS_DIR).is_dir() else root
    paths = sorted(folder.glob("shard-*.tar"))
    if not paths:
        raise DataError(f"no WebDataset shards (shard-*.tar) under {folder}; generate with webdataset=true or run "
                        f"`synth merge out_dir={root} webdataset=true`")
    return paths


def iter_webdataset(source: str | Path | list[str | Path]) -> Iterator[WdsSample]:
    """Yield every sample of the shards in order: (image uint8 HWC, label, sample_id, is_synthetic).

    A plain iterator over the tars: no torch, no worker splitting; what a mixer that builds
    its own arrays needs. `source` is an output directory, a folder of tars, or tar paths.
    """
    import webdataset as wds

    urls = [str(p) for p in (source if isinstance(source, list) else shard_paths(source))]
    pipeline = wds.WebDataset(urls, shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None)
    for sample in pipeline:
        yield _decode(sample)


def webdataset_iterable(source: str | Path | list[str | Path], *, split_by_node: bool = False):
    """A torch IterableDataset yielding (image uint8 HWC, label, sample_id, is_synthetic) tuples.

    DataLoader workers (and, with split_by_node, DDP ranks) each read a disjoint subset of
    the tar shards, so write at least as many shards as readers (`maxcount`).
    """
    import webdataset as wds

    urls = [str(p) for p in (source if isinstance(source, list) else shard_paths(source))]
    nodesplitter = wds.split_by_node if split_by_node else wds.single_node_only
    pipeline = wds.WebDataset(urls, shardshuffle=False, empty_check=False, nodesplitter=nodesplitter)
    return pipeline.map(_as_tuple)


def _as_tuple(sample: dict) -> tuple[np.ndarray, int, str, bool]:
    s = _decode(sample)
    return s.image, s.label, s.sample_id, s.is_synthetic


def _decode(sample: dict) -> WdsSample:
    meta = json.loads(sample["json"])
    return WdsSample(decode_png(sample["png"]), int(meta["label"]), str(meta["sample_id"]), bool(meta["is_synthetic"]))


def load_arrays(source: str | Path | list[str | Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All samples as arrays: images uint8 (N, H, W, C), labels int64 (N,), sample ids (N,)."""
    samples = list(iter_webdataset(source))
    if not samples:
        raise DataError(f"the WebDataset shards of {source} hold no samples")
    return (np.stack([s.image for s in samples]), np.array([s.label for s in samples], dtype=np.int64),
            np.array([s.sample_id for s in samples]))
