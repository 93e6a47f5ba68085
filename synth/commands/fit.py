"""Fit a generator on the labelled budget (and the unlabelled pool if it uses one); save it."""

from __future__ import annotations

import logging
import os
import time

from omegaconf import DictConfig

from synth.config import build, load_splits

log = logging.getLogger("synth.fit")


def run(cfg: DictConfig):
    t0 = time.perf_counter()
    _, splits = load_splits(cfg)
    gen = build(cfg.generator, "generator")
    unlabelled = splits.unlabelled if cfg.use_unlabelled else None
    gen.fit(splits.labelled, unlabelled)
    if os.environ.get("RANK", "0") != "0":
        return gen  # under DDP (torchrun / accelerate launch) only rank 0 writes the checkpoint
    out = gen.save(cfg.out_dir)
    print(
        f"synth fit: {cfg.generator.name} fitted on {len(splits.labelled)} labelled"
        f"{f' + {len(unlabelled)} unlabelled' if unlabelled is not None and gen.uses_unlabelled else ''} images "
        f"in {time.perf_counter() - t0:.1f}s; checkpoint at {out}"
    )
    return gen
