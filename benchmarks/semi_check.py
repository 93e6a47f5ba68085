"""Design check of consistency training (synth.semi) on a dev split of the pool — never the test set.

Why a dev split: the semi settings (steps, views, threshold) were chosen by this check, so it
must not read the test set the harness reports on. The dev images are pool images whose labels
we know (the benchmark treats them as unlabelled); they are held out of everything here: the
labelled draw, the pool semi trains on, and every model's training.

Arms per (n labels per class, seed): real only, real with online `strong` augmentation, and
`train_semi` (labelled images + the rest of the pool without labels). 1 torch thread.

    python benchmarks/semi_check.py                                  # digits, n=2/5, seeds 0-2
    python benchmarks/semi_check.py --data fashion_mnist --ns 5 20 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from dev_split import DEV_SIZE, RESULTS, dev_split, semi_config, write_results

from synth.data import draw_budget
from synth.recipe import preset
from synth.semi import SemiConfig, train_semi
from synth.training import TrainConfig, accuracy, train_classifier


def run(data: str, ns: list[int], seeds: list[int], semi: SemiConfig) -> list[dict]:
    dev, rest = dev_split(data)
    cfg, strong, rows = TrainConfig(), preset("strong").build(), []
    for n in ns:
        for seed in seeds:
            labelled, unlabelled = draw_budget(rest, n_per_class=n, seed=seed)  # unlabelled: labels hidden
            t0 = time.perf_counter()
            model = train_semi(labelled, unlabelled, cfg, semi, seed=seed)
            row = {"n": n, "seed": seed, "real": accuracy(train_classifier(labelled, cfg, seed=seed), dev),
                   "strong_aug": accuracy(train_classifier(labelled, cfg, seed=seed, augment=strong), dev),
                   "semi": accuracy(model, dev), "semi_seconds": round(time.perf_counter() - t0, 1),
                   "confident_share": model.semi_info["confident_share"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict], data: str, command: str) -> str:
    lines = [f"# Consistency training (synth.semi) on a dev split of the {data} pool", "",
             f"Command: `{command}` (1 torch thread). Dev: {DEV_SIZE[data]} pool images held out of everything; "
             "the test set is not read.", "",
             "| n/class | seed | real | strong aug | semi | semi seconds | confident share (last 10 %) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['seed']} | {r['real']:.3f} | {r['strong_aug']:.3f} | {r['semi']:.3f} | "
              f"{r['semi_seconds']:.0f} | {r['confident_share']:.2f} |" for r in rows]
    for n in sorted({r["n"] for r in rows}):
        sel = [r for r in rows if r["n"] == n]
        means = {k: np.mean([r[k] for r in sel]) for k in ("real", "strong_aug", "semi")}
        lines.append(f"| {n} | mean | {means['real']:.3f} | {means['strong_aug']:.3f} | {means['semi']:.3f} | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits", choices=sorted(DEV_SIZE))
    ap.add_argument("--ns", type=int, nargs="+", default=[2, 5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tag", default=None, help="results file stem (default semi_check_<data>)")
    ap.add_argument("--semi", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override conf/semi/default.yaml, e.g. --semi steps=1500 threshold=0.9")
    args = ap.parse_args()
    torch.set_num_threads(1)
    semi = semi_config(args.semi)
    rows = run(args.data, args.ns, args.seeds, semi)
    stem = RESULTS / (args.tag or f"semi_check_{args.data}")
    command = "python benchmarks/semi_check.py " + " ".join(
        [f"--data {args.data}", "--ns", *map(str, args.ns), "--seeds", *map(str, args.seeds)]
        + (["--semi", *args.semi] if args.semi else []))
    write_results(stem, command, semi, rows, table(rows, args.data, command))


if __name__ == "__main__":
    main()
