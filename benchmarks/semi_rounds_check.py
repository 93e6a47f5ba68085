"""Design check on a dev split (never the test set): does a second round of consistency training gain on digits?

The question: with the pool, issue 9's digits 8x is decided by the n = 2 cells (`auto_gate`, exact round trip:
0.972 / 0.994 / 0.816 on test; dev-split means ~94 %, results/semi_warm_check_digits.md). Self-training is
usually iterated (Noisy Student, Xie et al. 2020): the first model's confident predictions on the pool become
labels, and a fresh student is trained on them plus the pool. A model that has seen ~1,000 labelled (if partly
wrong) images may learn what one that saw 20 could not. Per draw (n labels per class, seed) this trains on the
same labelled images and the rest of the pool (labels hidden from training; read only to report the pseudo-labels'
precision) and scores on dev images (pool images held out of everything), with `synth recommend`'s first semi
candidate (weak light, strong strong, distribution alignment, 600 steps):

- real: real only at 600 steps (the benchmark's baseline);
- semi: one round of consistency training (what synth ships);
- semi2: a fresh network trained by the same consistency training on the labelled images + the pool images the
  first round predicts with confidence >= 0.95 (as labelled, with its predicted labels), and the whole pool;
- pl_x4: the supervised default strong@p0.5+ls0.1+x4 on the same labelled + pseudo-labelled images (no pool
  loss): is the second round's gain (if any) the pseudo-labels alone?

    python benchmarks/semi_rounds_check.py --data digits --ns 2 5 --seeds 0 1 2 3 --out a.jsonl
    python benchmarks/semi_rounds_check.py --data digits --ns 2 5 --seeds 4 5 6 7 --out b.jsonl
    python benchmarks/semi_rounds_check.py --data digits --from-jsonl a.jsonl b.jsonl  # -> results/semi_rounds_check_digits.*
"""

from __future__ import annotations

import time

import numpy as np
from dev_split import check_main, draw_table, recommend_semi

from synth.data import ImageSet, draw_budget
from synth.recipe import Recipe, preset, train_with
from synth.semi import train_semi
from synth.training import TrainConfig, accuracy, predict_proba, train_classifier

ARMS = ("real", "semi", "semi2", "pl_x4")
SEMI = recommend_semi()
POLICY = "strong@p0.5+ls0.1+x4"
CONFIDENCE = 0.95


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, unlabelled = draw_budget(rest, n_per_class=n, seed=seed)  # unlabelled: labels hidden
    row, cfg = {"data": data, "n": n, "seed": seed}, TrainConfig()
    t0 = time.perf_counter()
    row["real"] = accuracy(train_classifier(labelled, cfg, seed=seed), dev)
    first = train_semi(labelled, unlabelled, cfg, SEMI, seed=seed)
    row["semi"] = accuracy(first, dev)
    proba = predict_proba(first, unlabelled.images)
    keep = np.flatnonzero(proba.max(1) >= CONFIDENCE)
    pseudo = ImageSet(unlabelled.images[keep], proba[keep].argmax(1), unlabelled.ids[keep], labelled.class_names)
    truth = dict(zip(rest.ids, rest.labels, strict=True))  # read only for the report: training never sees it
    row["pl_count"] = int(len(keep))
    row["pl_precision"] = float(np.mean([truth[i] == y for i, y in zip(pseudo.ids, pseudo.labels, strict=True)])) if len(keep) else 0.0
    grown = labelled.concat(pseudo)
    row["semi2"] = accuracy(train_semi(grown, unlabelled, cfg, SEMI, seed=seed + 1), dev)
    row["pl_x4"] = accuracy(train_with(Recipe(policy=preset(POLICY)), grown, seed=seed + 1, cfg=cfg), dev)
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    table = draw_table(rows, command, "A second round of consistency training (weak light, aligned)", ARMS,
                       [("semi2 - semi", "semi2", "semi"), ("pl_x4 - semi", "pl_x4", "semi")])
    pl = ", ".join(f"n{r['n']}s{r['seed']}: {r['pl_count']} at {100 * r['pl_precision']:.1f} %" for r in rows)
    return table + f"\nPseudo-labels kept (confidence >= {CONFIDENCE}) and their precision on the pool's hidden labels: {pl}\n"


def main() -> None:
    check_main("semi_rounds_check", __doc__, run_draw, markdown, ns=[2, 5])


if __name__ == "__main__":
    main()
