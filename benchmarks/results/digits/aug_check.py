"""Why aug_online gives ~1.4x in the harness vs ~2.3x in the calibration notes (issue 6/7 check).

Same splits, seeds and test set as `synth bench bench=digits`; varies only the online
augmentation preset (none / light / strong) and the classifier's regularisation (harness
recipe: dropout 0.25, weight decay 5e-4; "plain": dropout 0, weight decay 0).
Run: python benchmarks/results/digits/aug_check.py --n 5 10 --seeds 0 1 2 --arms real light strong
-> aug_check_<n>_<seeds>_<arms>.json here (real/light reproduce the harness cells exactly).
The committed aug_check.json is the first version of this script (all five arms, n 5 and 10, seeds 0-2).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from omegaconf import OmegaConf

from synth.bench.arms import online_augmenter
from synth.config import build
from synth.training import TrainConfig, accuracy, train_classifier

torch.set_num_threads(1)
HARNESS = TrainConfig(steps=600, batch_size=64, lr=0.002, weight_decay=0.0005, width=32, hidden=128, dropout=0.25)
PLAIN = replace(HARNESS, dropout=0.0, weight_decay=0.0)
ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, nargs="+", default=[5, 10])
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
ap.add_argument("--arms", nargs="+", default=["real", "light", "strong", "real_plain", "light_plain"])
args = ap.parse_args()
src = build(OmegaConf.load(Path(__file__).resolve().parents[3] / "conf/data/digits.yaml"), "data")
arms = {"real": (HARNESS, None), "light": (HARNESS, "light"), "strong": (HARNESS, "strong"),
        "real_plain": (PLAIN, None), "light_plain": (PLAIN, "light")}
out = []
for n in args.n:
    for seed in args.seeds:
        sp = src.splits(n_per_class=n, seed=seed)
        for arm in args.arms:
            cfg, preset = arms[arm]
            t0 = time.perf_counter()
            model = train_classifier(sp.labelled, cfg, seed=seed, augment=online_augmenter({"augment": preset}))
            out.append({"n": n, "seed": seed, "arm": arm, "acc": accuracy(model, sp.test),
                        "seconds": round(time.perf_counter() - t0, 1)})
            print(out[-1], flush=True)
tag = "_".join(["n" + "-".join(map(str, args.n)), "s" + "-".join(map(str, args.seeds)), *args.arms])
(Path(__file__).parent / f"aug_check_{tag}.json").write_text(json.dumps(out, indent=1))
