"""Benchmark: labelled images needed to reach a target accuracy, per arm (real, augmentation, generators)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synth.bench.protocol import parse_budgets, parse_seeds
from synth.bench.report import analyse, write_report
from synth.bench.runner import BenchPlan, run_grid
from synth.config import build, to_container
from synth.errors import ConfigError
from synth.training import TrainConfig

log = logging.getLogger("synth.bench")


def make_plan(cfg: DictConfig) -> BenchPlan:
    b = cfg.bench
    all_params = {k: dict(v or {}) for k, v in to_container(b.arms).items()}
    unknown = [a for a in b.run if a not in all_params]
    if unknown:
        raise ConfigError(f"bench.run names arm(s) {unknown} without settings under bench.arms "
                          f"(known: {sorted(all_params)})")
    try:
        train = TrainConfig(**to_container(b.train))
    except TypeError as exc:
        raise ConfigError(f"bench.train: {exc}") from None
    out_dir = Path(cfg.out_dir)
    return BenchPlan(
        budgets=parse_budgets(list(b.budgets)), seeds=parse_seeds(list(b.seeds)),
        protocols=list(b.protocols), arms={a: all_params[a] for a in b.run}, train=train, out_dir=out_dir,
        cache_dir=Path(cfg.cache_dir) if cfg.get("cache_dir") else None, progress=bool(cfg.progress),
        workers=int(cfg.get("workers", 1)), report_only=bool(cfg.get("report_only", False)), all_arm_params=all_params,
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(cfg.threads))
    t0 = time.perf_counter()
    plan = make_plan(cfg)
    source = build(cfg.data, "data")
    cells, unavailable = run_grid(source, plan)
    for arm, why in unavailable.items():
        log.warning("arm %s not available: %s", arm, why)
    seconds = time.perf_counter() - t0
    meta = {
        "dataset": str(cfg.data.name), "preset": str(cfg.bench.name), "test_images": len(source.test),
        "pool_images": len(source.pool), "command": cfg.get("command") or " ".join(["synth bench", *sys.argv[1:]]),
        "notes": cfg.bench.get("notes"),
        "wall_seconds_this_run": round(seconds, 1), "threads": int(cfg.threads),
        "cells_computed_this_run": sum(not c.get("resumed") for c in cells),
        "cells_resumed": sum(bool(c.get("resumed")) for c in cells),
        "train": vars(plan.train), "arms": plan.arms, "data": to_container(cfg.data),
    }
    tgt = cfg.bench.target
    report = analyse(cells, plan, unavailable, target=tgt.accuracy, margin=float(tgt.margin),
                     n_boot=int(cfg.bench.bootstrap.n), level=float(cfg.bench.bootstrap.level), meta=meta)
    paths = write_report(report, cfg.report_dir or cfg.out_dir)
    _print_summary(report, paths, seconds)
    OmegaConf.save(cfg, Path(cfg.out_dir) / "config.yaml")
    return report


def _print_summary(report: dict, paths: dict, seconds: float) -> None:
    from synth.bench.report import fmt_mult

    print(f"synth bench: {report['meta']['dataset']} target {report['target']['accuracy']:.4f} "
          f"({report['meta']['cells_computed_this_run']} cells computed, {report['meta']['cells_resumed']} resumed, "
          f"{seconds:.0f}s)")
    for p, res in report["results"].items():
        for arm, e in res["arms"].items():
            if "vs_real" in e:
                print(f"  [{p}] {arm:<12} vs real {fmt_mult(e['vs_real']):<28} {e['vs_real']['verdict']}")
    for arm, why in report["not_available"].items():
        print(f"  {arm}: not available ({why})")
    print(f"report: {paths['md']} · {paths['png']}")
