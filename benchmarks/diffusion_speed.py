"""Sampling throughput of the default diffusion config (DDIM-25 + guidance) at 8x8 on CPU.

Weights do not change the cost, so the UNet is fitted for 2 steps only. Run on a quiet machine:
`python benchmarks/diffusion_speed.py`.
"""
import time

import torch
from omegaconf import OmegaConf

from synth.config import build
from synth.data import DigitsSource

cfg = OmegaConf.load("conf/generator/diffusion.yaml")
cfg.train_steps = 2
cfg.eval_every = 0
cfg.progress = False
cfg.min_novelty = None
g = build(cfg, "generator").fit(DigitsSource(test_size=500).splits(n_per_class=10, seed=0).labelled)
for threads in (1, 2):
    torch.set_num_threads(threads)
    g.sample(labels=[0] * 16, seed=1)  # warm-up
    t = time.perf_counter()
    s = g.sample(51, seed=0)
    dt = time.perf_counter() - t
    print(f"threads={threads}: {len(s)} samples in {dt:.1f}s -> {len(s)/dt:.1f} img/s (DDIM-25, guidance 2, 8x8)")
