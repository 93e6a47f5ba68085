"""Write a synthetic training set: real data -> fit (or load) a generator -> sample -> disk."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from generators.base import Generator
from synth.config import build, load_splits, to_container
from synth.errors import CheckpointError, ConfigError
from synth.seeding import sample_seeds
from synth.writer import DatasetWriter, Plan, config_hash

log = logging.getLogger("synth.generate")

#: Keys that change how a run executes, not what it writes: excluded from the content hash.
EXECUTION_KEYS = ("out_dir", "overwrite", "shard_index", "num_shards", "progress", "num_workers")


@dataclass(frozen=True)
class GenerateResult:
    out_dir: Path
    written: int
    skipped_chunks: int
    complete: bool
    seconds: float


def content_config(cfg: DictConfig) -> dict:
    """The part of the config that determines the dataset's bytes."""
    return {k: v for k, v in to_container(cfg).items() if k not in EXECUTION_KEYS and k != "hydra"}


def get_generator(cfg: DictConfig, splits) -> Generator:
    """Load `checkpoint` if given, else build `generator` from config and fit it on the budget."""
    if cfg.get("checkpoint"):
        gen = Generator.load(cfg.checkpoint)
        if list(gen.class_names) != list(splits.labelled.class_names) or tuple(gen.image_shape) != splits.labelled.image_shape:
            raise CheckpointError(
                f"checkpoint {cfg.checkpoint} was fitted on classes {list(gen.class_names)} at {gen.image_shape}, "
                f"but data={cfg.data_name} has {list(splits.labelled.class_names)} at {splits.labelled.image_shape}"
            )
        return gen
    gen = build(cfg.generator, "generator")
    return gen.fit(splits.labelled, splits.unlabelled)


def run(cfg: DictConfig) -> GenerateResult:
    t0 = time.perf_counter()
    if cfg.n_per_class is None or int(cfg.n_per_class) <= 0:
        raise ConfigError(f"n_per_class must be a positive integer, got {cfg.n_per_class}")
    _, splits = load_splits(cfg)
    content = content_config(cfg)
    digest = config_hash(content)
    plan = Plan.balanced(int(cfg.n_per_class), splits.labelled.n_classes, int(cfg.chunk_size))
    mine = plan.shard_chunks(int(cfg.shard_index), int(cfg.num_shards))
    writer = DatasetWriter(
        cfg.out_dir, class_names=splits.labelled.class_names, generator=str(cfg.generator.name),
        content_hash=digest, overwrite=bool(cfg.overwrite),
    )
    writer.prepare(OmegaConf.to_yaml(OmegaConf.create(content)))
    todo = [c for c in mine if not writer.is_done(c)]
    if len(todo) < len(mine):
        log.info("resuming %s: %d of %d chunks already written", cfg.out_dir, len(mine) - len(todo), len(mine))
    gen = get_generator(cfg, splits) if todo else None
    written = _write_chunks(gen, writer, plan, todo, int(cfg.seed), bool(cfg.progress))
    complete = writer.finalize(plan)
    seconds = time.perf_counter() - t0
    _record_run(writer, cfg, digest, written, seconds, gen)
    rate = written / seconds if seconds > 0 else 0.0
    state = "complete" if complete else f"shard {cfg.shard_index}/{cfg.num_shards} done, other shards pending"
    print(f"synth generate: wrote {written} images in {seconds:.1f}s ({rate:.0f} img/s) to {cfg.out_dir} [{state}]")
    return GenerateResult(Path(cfg.out_dir), written, len(mine) - len(todo), complete, seconds)


def _write_chunks(gen: Generator | None, writer: DatasetWriter, plan: Plan, todo: list[int], seed: int, progress: bool) -> int:
    total = sum(plan.chunk_range(c)[1] - plan.chunk_range(c)[0] for c in todo)
    written = 0
    with tqdm(total=total, desc="generate", unit="img", disable=not progress) as bar:
        for chunk in todo:
            start, stop = plan.chunk_range(chunk)
            samples = gen.sample(labels=plan.labels[start:stop], seed=seed, start_index=start)
            writer.write_chunk(chunk, start, samples, sample_seeds(seed, np.arange(start, stop)))
            written += stop - start
            bar.update(stop - start)
    return written


def _record_run(writer: DatasetWriter, cfg: DictConfig, digest: str, written: int, seconds: float, gen) -> None:
    import synth

    versions = {"synth": synth.__version__, "python": platform.python_version()}
    for mod in ("torch", "numpy", "albumentations", "cv2", "diffusers"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    writer.write_run_metadata(
        f"shard-{cfg.shard_index}-of-{cfg.num_shards}",
        {
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(seconds, 3),
            "written": written, "images_per_second": round(written / seconds, 1) if seconds else None,
            "config_hash": digest, "versions": versions, "host": platform.node(),
            "generator_seen_ids": len(gen.seen_ids) if gen is not None else None,
        },
    )
