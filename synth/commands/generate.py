"""Write a synthetic training set: real data -> fit (or load) a generator -> sample -> disk."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from generators.base import Generator
from synth.chunk_pool import ChunkJob, write_chunks
from synth.config import build, load_splits, to_container
from synth.environment import MACHINE, environment
from synth.errors import CheckpointError, ConfigError
from synth.scoring.accept import AcceptSettings, ChunkScorer, candidate_plan, record, run_rounds
from synth.webdataset_io import WDS_DIR, write_webdataset
from synth.writer import DatasetWriter, Plan, config_hash

log = logging.getLogger("synth.generate")

#: Keys that change how a run executes, not what it writes: excluded from the content hash.
EXECUTION_KEYS = ("out_dir", "overwrite", "shard_index", "num_shards", "progress", "num_workers", "webdataset")


@dataclass(frozen=True)
class GenerateResult:
    out_dir: Path
    written: int
    skipped_chunks: int
    complete: bool
    seconds: float


def content_config(cfg: DictConfig) -> dict:
    """The part of the config that determines the dataset's bytes.

    `accept` counts only when enabled (older outputs keep their hash), and its max_rounds
    and cache_dir never (max_rounds bounds the run without changing any chunk: raising it
    continues a run).
    """
    content = {k: v for k, v in to_container(cfg).items() if k not in EXECUTION_KEYS and k != "hydra"}
    accept = content.pop("accept", None)
    if accept and accept.get("score") not in (None, "", "none"):
        content["accept"] = {k: v for k, v in accept.items() if k not in ("max_rounds", "cache_dir")}
    return content


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
    accept = AcceptSettings.from_config(cfg.get("accept"))
    if accept is not None and int(cfg.num_shards) != 1:
        raise ConfigError("accept.score needs one process deciding over all chunks: use num_shards=1 (num_workers may be > 1)")
    _, splits = load_splits(cfg)
    content = content_config(cfg)
    digest = config_hash(content)
    plan = Plan.balanced(int(cfg.n_per_class), splits.labelled.n_classes, int(cfg.chunk_size))
    if accept is not None:  # rounds of n_per_class candidates per class
        plan = candidate_plan(int(cfg.n_per_class), splits.labelled.n_classes, int(cfg.chunk_size), accept.max_rounds)
    mine = plan.shard_chunks(int(cfg.shard_index), int(cfg.num_shards))
    writer = DatasetWriter(
        cfg.out_dir, class_names=splits.labelled.class_names, generator=str(cfg.generator.name),
        content_hash=digest, overwrite=bool(cfg.overwrite),
    )
    writer.prepare(OmegaConf.to_yaml(OmegaConf.create(content)))
    if accept is not None:
        return _run_accept(cfg, accept, splits, writer, plan, digest, t0)
    todo = [c for c in mine if not writer.is_done(c)]
    if len(todo) < len(mine):
        log.info("resuming %s: %d of %d chunks already written", cfg.out_dir, len(mine) - len(todo), len(mine))
    gen = get_generator(cfg, splits) if todo else None
    t_write = time.perf_counter()
    written = write_chunks(ChunkJob(gen, writer, plan, int(cfg.seed)), todo, num_workers=int(cfg.get("num_workers", 1)),
                           progress=bool(cfg.progress)) if todo else 0
    write_seconds = time.perf_counter() - t_write
    complete = writer.finalize(plan)
    if complete and cfg.get("webdataset") and (written or not (writer.out / WDS_DIR).is_dir()):
        write_webdataset(writer.out)
    seconds = time.perf_counter() - t0
    _record_run(writer, cfg, digest, written, seconds, gen, write_seconds, plan, mine)
    rate = written / seconds if seconds > 0 else 0.0
    state = "complete" if complete else f"shard {cfg.shard_index}/{cfg.num_shards} done, other shards pending"
    print(f"synth generate: wrote {written} images in {seconds:.1f}s ({rate:.0f} img/s) to {cfg.out_dir} [{state}]")
    return GenerateResult(Path(cfg.out_dir), written, len(mine) - len(todo), complete, seconds)


def _run_accept(cfg: DictConfig, accept: AcceptSettings, splits, writer: DatasetWriter, plan: Plan, digest: str,
                t0: float) -> GenerateResult:
    """Generate in rounds until accept.n_per_class samples per class pass (synth/scoring/accept.py)."""
    state: dict = {}

    def write(chunks: list[int]) -> int:
        if not chunks:
            return 0
        state["gen"] = state.get("gen") or get_generator(cfg, splits)
        return write_chunks(ChunkJob(state["gen"], writer, plan, int(cfg.seed)), chunks,
                            num_workers=int(cfg.get("num_workers", 1)), progress=bool(cfg.progress))

    def scorer() -> ChunkScorer:
        return ChunkScorer(splits, int(cfg.seed), cfg.accept.get("cache_dir"), cfg.accept.get("scoring"))

    round_size = int(cfg.n_per_class) * splits.labelled.n_classes
    cut, written, summary = run_rounds(accept, writer, plan, round_size, splits.labelled.n_classes, write, scorer)
    writer.finalize(cut)
    record(writer, summary)
    seconds = time.perf_counter() - t0
    mine = list(range(cut.n_chunks))
    _record_run(writer, cfg, digest, written, seconds, state.get("gen"), seconds, cut, mine)
    print(f"synth generate: {summary['passed']} of {summary['generated']} generated samples pass {summary['rule']} "
          f"(acceptance rate {summary['acceptance_rate']:.1%}, {summary['rounds']} round(s)); "
          f"{accept.n_per_class} per class accepted, the rest listed as surplus/rejected in {cfg.out_dir}/manifest.parquet")
    return GenerateResult(Path(cfg.out_dir), written, 0, True, seconds)


def _record_run(
    writer: DatasetWriter, cfg: DictConfig, digest: str, written: int, seconds: float, gen,
    write_seconds: float, plan: Plan, mine: list[int],
) -> None:
    """Write runs/shard-<k>-of-<n>.json: this shard's done-marker, written after all its chunks.

    A rerun that found every chunk of the shard done keeps the first run's record.
    """
    name = f"shard-{cfg.shard_index}-of-{cfg.num_shards}"
    if written == 0 and writer.has_run_metadata(name):
        return
    env = environment()
    versions = {k: v for k, v in env.items() if k not in MACHINE}
    writer.write_run_metadata(
        name,
        {
            "done": True, "shard_index": int(cfg.shard_index), "num_shards": int(cfg.num_shards),
            "chunks": mine, "n_chunks": plan.n_chunks, "class_names": list(writer.class_names),
            "num_workers": int(cfg.get("num_workers", 1)), "write_seconds": round(write_seconds, 3),
            "write_images_per_second": round(written / write_seconds, 1) if write_seconds > 0 and written else None,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(seconds, 3),
            "written": written, "images_per_second": round(written / seconds, 1) if seconds else None,
            "config_hash": digest, "versions": versions, "host": platform.node(), "cpu": env["cpu"],
            "torch_cpu_kernels": env["torch_cpu_kernels"],
            "generator_seen_ids": len(gen.seen_ids) if gen is not None else None,
        },
    )
