"""Merge a sharded output directory into one dataset (manifest.parquet, grid, optional tars)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from synth.errors import DataError
from synth.webdataset_io import write_webdataset
from synth.writer import IDENTITY_FILE, DatasetWriter, Plan


def run(cfg: DictConfig) -> bool:
    """Merge if every chunk is done; otherwise say which shards to rerun. Returns completeness."""
    out = Path(cfg.out_dir)
    ident = out / IDENTITY_FILE
    if not ident.is_file():
        raise DataError(f"{out} is not a synth output directory ({IDENTITY_FILE} missing); check out_dir")
    markers = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("shard-*-of-*.json"))]
    markers = [m for m in markers if "n_chunks" in m and "class_names" in m]
    if not markers:
        raise DataError(f"no finished shard in {out}/runs: run `synth generate` (any shard) before merging")
    content = OmegaConf.load(out / "config.yaml")
    plan = Plan.balanced(int(content.n_per_class), len(markers[0]["class_names"]), int(content.chunk_size))
    writer = DatasetWriter(out, class_names=markers[0]["class_names"], generator=str(content.generator.name),
                           content_hash=json.loads(ident.read_text())["config_hash"])
    if not writer.finalize(plan):
        missing = [c for c in range(plan.n_chunks) if not writer.is_done(c)]
        n = int(markers[0]["num_shards"])
        shards = sorted({c % n for c in missing})
        raise DataError(f"{out}: {len(missing)} of {plan.n_chunks} chunks missing; rerun `synth generate` with the "
                        f"same config and num_shards={n} for shard_index in {shards}")
    if cfg.webdataset:
        write_webdataset(out, maxcount=int(cfg.wds_maxcount))
    n_images = int(np.sum([plan.chunk_range(c)[1] - plan.chunk_range(c)[0] for c in range(plan.n_chunks)]))
    print(f"synth merge: {out} complete ({n_images} images, {plan.n_chunks} chunks)")
    return True
