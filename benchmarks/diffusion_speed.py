"""Sampling throughput of the default diffusion config (DDIM-25 + guidance) at 8x8 on CPU.

    python benchmarks/diffusion_speed.py                       # ~2 min on a quiet machine
    python benchmarks/diffusion_speed.py --threads 2 --repeats 3

Weights do not change the cost, so the UNet is fitted for 2 steps only. Each (sample_dtype,
threads) cell is the median of `--repeats` timed runs of 512 samples (two full network batches
of 256) after a warm-up; the 1-minute load average is recorded before each cell, because the
machine this was developed on is shared (a number taken at load > cores is contended).
Writes benchmarks/results/diffusion_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from synth.config import build  # noqa: E402
from synth.data import DigitsSource  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def fitted_default(overrides: list[str]):
    """The shipped diffusion config (+ KEY=VALUE overrides), trained for 2 steps (speed does not depend on the weights)."""
    cfg = OmegaConf.merge(OmegaConf.load(REPO / "conf" / "generator" / "diffusion.yaml"), OmegaConf.from_dotlist(overrides))
    cfg.train_steps, cfg.eval_every, cfg.progress, cfg.min_novelty = 2, 0, False, None
    return build(cfg, "generator").fit(DigitsSource(test_size=500).splits(n_per_class=10, seed=0).labelled)


def cell(gen, dtype: str, threads: int, n: int, repeats: int) -> dict:
    """Median img/s over `repeats` runs of gen.sample for n images."""
    torch.set_num_threads(threads)
    gen.config["sample_dtype"] = dtype
    labels = np.arange(n) % 10
    gen.sample(labels=labels[:16], seed=1)  # warm-up (kernel selection, allocator)
    load = os.getloadavg()[0]
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        gen.sample(labels=labels, seed=r)
        rates.append(n / (time.perf_counter() - t0))
    return {"sample_dtype": dtype, "threads": threads, "images": n, "img_per_s_median": round(statistics.median(rates), 1),
            "img_per_s_runs": [round(v, 1) for v in rates], "loadavg_1min_before": round(load, 2)}


def markdown(r: dict) -> str:
    lines = ["# Diffusion sampling throughput (DDIM-25 + classifier-free guidance, 8x8 digits)", "",
             f"UNet {r['block_out_channels']} ({r['parameters']:,} params), sample batch {r['sample_batch_size']}; "
             f"median of {r['repeats']} runs of {r['images']} samples per cell. Host {r['host']} ({os.cpu_count()} cores).", "",
             "| sample_dtype | threads | img/s (median) | runs | load avg (1 min) before |", "|---|---|---|---|---|"]
    for c in r["cells"]:
        lines.append(f"| {c['sample_dtype']} | {c['threads']} | **{c['img_per_s_median']}** | {c['img_per_s_runs']} | {c['loadavg_1min_before']} |")
    lines += ["", "A load average above the core count means the numbers were taken under contention.",
              f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, e.g. block_out_channels=[32,64,64]")
    ap.add_argument("--out", default=str(RESULTS / "diffusion_speed"), help="results path without extension")
    args = ap.parse_args()
    gen = fitted_default(args.set)
    cells = [cell(gen, d, t, args.n, args.repeats) for t in args.threads for d in args.dtypes]
    for c in cells:
        print(json.dumps(c), flush=True)
    result = {"block_out_channels": gen.config["block_out_channels"], "parameters": gen.fit_info["parameters"],
              "sample_batch_size": gen.config["sample_batch_size"], "repeats": args.repeats, "images": args.n,
              "host": platform.node(), "cpu": platform.processor() or platform.machine(), "cells": cells,
              "command": "python " + " ".join(["benchmarks/diffusion_speed.py", *sys.argv[1:]])}
    Path(args.out + ".json").write_text(json.dumps(result, indent=1))
    Path(args.out + ".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
