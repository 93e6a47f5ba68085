"""Design check of active-learning selectors on a dev split of the pool — never the test set.

Why: margin active learning can leave a class with one label at 2 labels per class (the
`active_semi` cells at n=2 on digits had min class count 1 and lost to consistency training on
random, balanced labels). Two fixes were checked here: `margin_balanced` (each pick to the
predicted class with the fewest labels so far) and `typiclust` (model-free: the most typical
member of each pixel-PCA cluster without a label); `random` is the reference. This check
compares selectors on dev images (pool images whose labels we know, held out of everything),
so the choice does not read the test set the harness reports on.

Per (n labels per class, seed) and strategy: the harness's AL loop (1 label per class from the
random draw, batches of 10 via a simulated oracle, 200-step rounds), then two final models on
the chosen labels: supervised (the `active` arm) and consistency training on the rest of the
pool (the `active_semi` arm). 1 torch thread.

    python benchmarks/al_balance_check.py                      # digits, n=2/5, seeds 0-2, margin vs balanced
    python benchmarks/al_balance_check.py --strategies random typiclust --tag al_select_check_digits
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch
from dev_split import DEV_SIZE, RESULTS, dev_split, semi_config, write_results

from synth.active import SimulatedOracle, active_learning, budget_rounds
from synth.bench.label_arms import initial_labels
from synth.data import draw_budget
from synth.semi import SemiConfig, train_semi
from synth.training import TrainConfig, accuracy, train_classifier

BATCH = {"digits": 10, "fashion_mnist": 20}


def one(rest, dev, n: int, seed: int, strategy: str, data: str, semi: SemiConfig) -> dict:
    """AL with `strategy` inside `rest` (labels only through the oracle), then both final models on dev."""
    cfg = TrainConfig()
    round_cfg = replace(cfg, steps=200)
    labelled, unlabelled = draw_budget(rest, n_per_class=n, seed=seed)
    init, total = initial_labels(labelled, 1), n * rest.n_classes
    oracle = SimulatedOracle(rest)
    t0 = time.perf_counter()
    res = active_learning(init, unlabelled, oracle, rounds=budget_rounds(len(init), total, BATCH[data]),
                          batch_size=BATCH[data], max_labels=total, strategy=strategy, seed=seed,
                          train_fn=lambda d, s: train_classifier(d, round_cfg, seed=s))
    chosen, counts = res.labelled, res.labelled.class_counts()
    left = unlabelled.without_ids(chosen.ids)
    return {"n": n, "seed": seed, "strategy": strategy, "labels": len(chosen),
            "min_class": int(counts.min()), "max_class": int(counts.max()),
            "supervised": accuracy(train_classifier(chosen, cfg, seed=seed), dev),
            "semi": accuracy(train_semi(chosen, left, cfg, semi, seed=seed), dev),
            "seconds": round(time.perf_counter() - t0, 1)}


def table(rows: list[dict], data: str, command: str) -> str:
    names = " vs ".join(sorted({r["strategy"] for r in rows}))
    lines = [f"# Active-learning selectors ({names}) on a dev split of the {data} pool", "",
             f"Command: `{command}` (1 torch thread). Dev: {DEV_SIZE[data]} pool images held out of everything; "
             "the test set is not read.", "",
             "| n/class | seed | strategy | min / max labels per class | AL + supervised | AL + semi | seconds |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['seed']} | {r['strategy']} | {r['min_class']} / {r['max_class']} | "
              f"{r['supervised']:.3f} | {r['semi']:.3f} | {r['seconds']:.0f} |" for r in rows]
    for n in sorted({r["n"] for r in rows}):
        for s in sorted({r["strategy"] for r in rows}):
            sel = [r for r in rows if r["n"] == n and r["strategy"] == s]
            if not sel:
                continue
            lines.append(f"| {n} | mean | {s} | {np.mean([r['min_class'] for r in sel]):.1f} min | "
                         f"{np.mean([r['supervised'] for r in sel]):.3f} | {np.mean([r['semi'] for r in sel]):.3f} | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits", choices=sorted(DEV_SIZE))
    ap.add_argument("--ns", type=int, nargs="+", default=[2, 5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", default=["margin", "margin_balanced"])
    ap.add_argument("--semi", nargs="*", default=[], metavar="KEY=VALUE",
                    help="conf/semi/default.yaml overrides for the AL + semi model, e.g. weak=none")
    ap.add_argument("--tag", default=None, help="results file stem (default al_balance_check_<data>)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    semi = semi_config(args.semi)
    dev, rest = dev_split(args.data)  # the same dev split as semi_check.py
    rows = []
    for n in args.ns:
        for seed in args.seeds:
            for strategy in args.strategies:
                rows.append(one(rest, dev, n, seed, strategy, args.data, semi))
                print(json.dumps(rows[-1]), flush=True)
    command = "python benchmarks/al_balance_check.py " + " ".join(
        [f"--data {args.data}", "--ns", *map(str, args.ns), "--seeds", *map(str, args.seeds),
         "--strategies", *args.strategies] + (["--semi", *args.semi] if args.semi else [])
        + ([f"--tag {args.tag}"] if args.tag else []))
    stem = RESULTS / (args.tag or f"al_balance_check_{args.data}")
    write_results(stem, command, semi, rows, table(rows, args.data, command))


if __name__ == "__main__":
    main()
