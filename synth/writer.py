"""The synthetic dataset on disk, written so that a kill at any moment loses nothing.

Layout of an output directory::

    OUT/synth_dataset.json        identity: format version + content config hash
    OUT/config.yaml               the resolved config that defines the content
    OUT/images/<class>/<id>.png   ImageFolder-compatible images
    OUT/parts/chunk-000042.parquet  one manifest part per finished chunk (the commit marker)
    OUT/manifest.parquet          all parts merged, written once every chunk is done
    OUT/samples_grid.png          a look at the result
    OUT/runs/<shard>.json         run metadata (times, versions, throughput) — not content

Work is cut into fixed chunks of consecutive sample indices. A chunk counts as done only
once its manifest part has been atomically renamed into place, after its images were
written; a chunk interrupted half-way is simply regenerated (same seeds, same bytes,
same file names). Shards take chunks round-robin, so any number of shards, in any order,
unions to the unsharded result.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from generators.base import Samples
from synth.errors import ConfigError, DataError
from synth.fsutil import atomic_write, atomic_write_bytes
from synth.viz import encode_png, save_class_grid

FORMAT_VERSION = 1
IDENTITY_FILE = "synth_dataset.json"
MANIFEST_FILE = "manifest.parquet"
#: Score columns that `synth score` fills; present (null) from the start so readers can rely on them.
SCORE_COLUMNS = ("score_realism", "score_novelty", "score_label_consistency", "score_gap")
_OWNED = (IDENTITY_FILE, "config.yaml", "images", "parts", MANIFEST_FILE, "samples_grid.png", "runs", ".hydra", "wds")
#: Held (flock) while a process prepares or merges, so concurrent shards never clear each other's work.
LOCK_FILE = ".synth.lock"

MANIFEST_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("index", pa.int64()),
        ("path", pa.string()),
        ("label", pa.int64()),
        ("class_name", pa.string()),
        ("generator", pa.string()),
        ("config_hash", pa.string()),
        ("seed", pa.int64()),
        ("parent_id", pa.string()),
        *[(c, pa.float64()) for c in SCORE_COLUMNS],
    ]
)


def config_hash(content_config: Mapping[str, Any]) -> str:
    """Stable short hash of the config that determines the dataset's content."""
    blob = json.dumps(content_config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """Which label each global sample index gets, and how indices are cut into chunks."""

    labels: np.ndarray
    chunk_size: int

    @classmethod
    def balanced(cls, n_per_class: int, n_classes: int, chunk_size: int) -> Plan:
        """Classes interleaved (0, 1, ..., K-1, 0, 1, ...) so every chunk is roughly balanced."""
        if n_per_class <= 0:
            raise ConfigError(f"n_per_class must be > 0, got {n_per_class}")
        if chunk_size <= 0:
            raise ConfigError(f"chunk_size must be > 0, got {chunk_size}")
        return cls(np.tile(np.arange(n_classes, dtype=np.int64), n_per_class), chunk_size)

    @property
    def n_chunks(self) -> int:
        return -(-len(self.labels) // self.chunk_size)

    def chunk_range(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, len(self.labels))

    def shard_chunks(self, shard_index: int, num_shards: int) -> list[int]:
        if num_shards <= 0 or not 0 <= shard_index < num_shards:
            raise ConfigError(f"need 0 <= shard_index < num_shards, got shard_index={shard_index}, num_shards={num_shards}")
        return list(range(shard_index, self.n_chunks, num_shards))


class DatasetWriter:
    """Owns one output directory: checks what is there, writes chunks, merges the manifest."""

    def __init__(
        self,
        out_dir: str | Path,
        *,
        class_names: Sequence[str],
        generator: str,
        content_hash: str,
        overwrite: bool = False,
    ) -> None:
        self.out = Path(out_dir)
        self.class_names = list(class_names)
        self.generator = generator
        self.hash = content_hash
        self.overwrite = overwrite

    # ------------------------------------------------------------------ set-up
    def prepare(self, config_yaml: str) -> None:
        """Create the directory, or accept it for resuming; refuse anything else.

        Runs under the directory lock: two shards starting at once on a fresh directory would
        otherwise both see "no identity file" and the second would clear the first's chunks.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        with dir_lock(self.out):
            self._prepare_locked(config_yaml)

    def _prepare_locked(self, config_yaml: str) -> None:
        ident = self.out / IDENTITY_FILE
        foreign = sorted(p.name for p in self.out.iterdir() if p.name not in (*_OWNED, LOCK_FILE) and p.suffix != ".tmp")
        if foreign:
            raise DataError(
                f"output directory {self.out} holds files synth did not write ({', '.join(foreign[:3])}); "
                "choose an empty or new out_dir"
            )
        if ident.exists():
            existing = json.loads(ident.read_text()).get("config_hash")
            if existing != self.hash:
                if not self.overwrite:
                    raise DataError(
                        f"{self.out} holds a dataset made with another config (hash {existing}, this run "
                        f"{self.hash}); pass overwrite=true to replace it or choose another out_dir"
                    )
                self._clear()
        elif any(p.name in _OWNED and p.name != ".hydra" for p in self.out.iterdir()):
            self._clear()  # leftovers of a run killed before it wrote its identity file
        # The identity file goes first: concurrent shards seeing it know the directory is claimed.
        atomic_write_bytes(ident, json.dumps({"format": FORMAT_VERSION, "config_hash": self.hash}, indent=1).encode())
        atomic_write_bytes(self.out / "config.yaml", config_yaml.encode())
        (self.out / "parts").mkdir(exist_ok=True)

    def _clear(self) -> None:
        for name in _OWNED:
            p = self.out / name
            if name == ".hydra":
                continue
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    # ------------------------------------------------------------------ chunks
    def _part(self, chunk: int) -> Path:
        return self.out / "parts" / f"chunk-{chunk:06d}.parquet"

    def is_done(self, chunk: int) -> bool:
        return self._part(chunk).exists()

    def write_chunk(self, chunk: int, start: int, samples: Samples, seeds: np.ndarray) -> None:
        """Write the chunk's images, then commit it by renaming its manifest part into place."""
        rows: dict[str, list] = {name: [] for name in MANIFEST_SCHEMA.names}
        for j in range(len(samples)):
            index = start + j
            label = int(samples.labels[j])
            sample_id = f"s{index:08d}"
            rel = f"images/{self.class_names[label]}/{sample_id}.png"
            path = self.out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode_png(samples.images[j]))
            parent = samples.parent_ids[j]
            for key, value in (
                ("sample_id", sample_id), ("index", index), ("path", rel), ("label", label),
                ("class_name", self.class_names[label]), ("generator", self.generator),
                ("config_hash", self.hash), ("seed", int(seeds[j])),
                ("parent_id", None if parent is None else str(parent)),
            ):
                rows[key].append(value)
        for col in SCORE_COLUMNS:
            rows[col] = [None] * len(samples)
        table = pa.Table.from_pydict(rows, schema=MANIFEST_SCHEMA)
        atomic_write(self._part(chunk), lambda tmp: pq.write_table(table, tmp))

    # ------------------------------------------------------------------ finish
    def finalize(self, plan: Plan) -> bool:
        """Merge parts into manifest.parquet and draw the grid once every chunk is done.

        Every shard calls this after its own chunks, so whichever finishes last merges; the
        lock keeps two shards finishing together from removing each other's temporary files.
        """
        with dir_lock(self.out):
            return self._finalize_locked(plan)

    def _finalize_locked(self, plan: Plan) -> bool:
        missing = [c for c in range(plan.n_chunks) if not self.is_done(c)]
        if missing:
            return False
        if (self.out / MANIFEST_FILE).exists() and (self.out / "samples_grid.png").exists():
            return True  # merged already: keep the scores `synth score` may have written since
        table = pa.concat_tables([pq.read_table(self._part(c)) for c in range(plan.n_chunks)])
        atomic_write(self.out / MANIFEST_FILE, lambda tmp: pq.write_table(table, tmp))
        self._grid(table)
        for stale in [*(self.out / "parts").glob("*.tmp"), *self.out.glob("*.tmp")]:
            # parts (or a WebDataset folder) half-written by a killed run; every chunk is done now
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
        return True

    def _grid(self, table: pa.Table) -> None:
        from synth.viz import decode_png

        labels = np.asarray(table.column("label"))
        paths = table.column("path").to_pylist()
        keep = np.concatenate([np.flatnonzero(labels == c)[:10] for c in range(len(self.class_names))])
        images = np.stack([decode_png((self.out / paths[i]).read_bytes()) for i in keep])
        save_class_grid(self.out / "samples_grid.png", images, labels[keep], self.class_names)

    def has_run_metadata(self, name: str) -> bool:
        return (self.out / "runs" / f"{name}.json").exists()

    def write_run_metadata(self, name: str, meta: Mapping[str, Any]) -> None:
        atomic_write_bytes(self.out / "runs" / f"{name}.json", json.dumps(meta, indent=1, default=str).encode())


@contextmanager
def dir_lock(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock on `directory` (flock; released by the OS if the holder dies).

    Without fcntl (Windows) this is a no-op: run shards of one output one after another there.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(directory / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_manifest(out_dir: str | Path) -> pa.Table:
    """The merged manifest of a finished synth output directory."""
    path = Path(out_dir) / MANIFEST_FILE
    if not path.exists():
        raise DataError(
            f"{path} not found: {out_dir} is not a finished synth dataset (rerun `synth generate` with the "
            "same config to complete it)"
        )
    return pq.read_table(path)
