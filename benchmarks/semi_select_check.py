"""Design check on a dev split (never the test set): can a criterion that reads no label pick the better of
several consistency-trained runs at 2 labels per class on digits?

Why: semi_ensemble_check (stop 42) trained five runs per draw (training seeds seed + 1000 k) and found their dev
accuracies spread widely on one draw (seed 7: 88.3 / 87.3 / 94.3 / 93.3 / 93.7 %; seed 1: 93.3 … 97.7 %), while
their mean probabilities land near the members' typical accuracy (+0.33 points over one run). Picking the better
run would gain more than averaging, if something that needs no label can tell which run it is: the labelled
images cannot (every run fits its 20 images) and a fold held out of 2 labels per class is too small. The pool's
predictions can be read without labels. Criteria, computed on the pool (the images consistency training saw,
labels hidden):

- confidence (primary, registered before the run): the mean top-class probability over the pool. A run that
  settled onto a wrong pairing of classes keeps pool images between two clusters it has merged or split, so it
  should be less sure of them;
- balance (exploratory): the entropy of the predicted-class histogram over the pool, highest first (assumes
  roughly balanced classes, which a user's data need not have);
- agreement (exploratory): the share of pool images on which a run's prediction matches the majority vote of all
  runs (the medoid run).

Per draw: the same five runs as semi_ensemble_check (recommend's draw and first semi candidate, no policy; run 0
is what synth ships), each run's dev accuracy, and the dev accuracy of the run each criterion picks.

    python benchmarks/semi_select_check.py --data digits --ns 2 --seeds 0 1 2 3 --out a.jsonl
    python benchmarks/semi_select_check.py --data digits --ns 2 --seeds 4 5 6 7 --out b.jsonl
    python benchmarks/semi_select_check.py --data digits --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import time

import numpy as np
from dev_split import check_main, draw_table, mean_se, recommend_draw, recommend_semi
from semi_ensemble_check import SEED_STRIDE, semi_runs

from synth.data import ImageSet
from synth.training import accuracy, predict_proba, top1, train_classifier

CRITERIA = ("confidence", "balance", "agreement")
ARMS = ("real", "semi", "best", *CRITERIA)


def scores(pool_probs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Each criterion's score per run (higher = picked), from the runs' pool probabilities only."""
    votes = np.stack([p.argmax(1) for p in pool_probs])
    k = pool_probs[0].shape[1]
    majority = np.array([np.bincount(col, minlength=k).argmax() for col in votes.T])
    hist = [np.bincount(v, minlength=k) / len(v) for v in votes]
    return {"confidence": np.array([p.max(1).mean() for p in pool_probs]),
            "balance": np.array([-(h[h > 0] * np.log(h[h > 0])).sum() for h in hist]),
            "agreement": (votes == majority).mean(1)}


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, pool, cfg = recommend_draw(rest, n, seed)
    row, t0 = {"data": data, "n": n, "seed": seed}, time.perf_counter()
    row["real"] = accuracy(train_classifier(labelled, cfg, seed=seed), dev)
    models = semi_runs(labelled, pool, seed, cfg)
    hit = [top1(predict_proba(m, dev.images), dev.labels) for m in models]
    pool_scores = scores([predict_proba(m, pool.images) for m in models])
    picked = {name: int(np.argmax(s)) for name, s in pool_scores.items()}
    row.update(semi=hit[0], best=max(hit), members=hit, picked=picked, **{name: hit[i] for name, i in picked.items()})
    row["confidences"] = [round(float(c), 6) for c in pool_scores["confidence"]]  # so fewer restarts read offline
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    table = draw_table(rows, command, "picking one of five consistency-trained runs without labels", ARMS,
                       [(f"{c} - semi", c, "semi") for c in CRITERIA])
    picks = "; ".join(f"n{r['n']}s{r['seed']}: " + ", ".join(f"{c} {r['picked'][c]}" for c in CRITERIA)
                      for r in sorted(rows, key=lambda r: (r["n"], r["seed"])))
    return table + (f"\n`semi` is run 0 (what synth ships), `best` the best of the five on dev (an oracle, for scale); "
                    f"training seeds seed + {SEED_STRIDE} k, {recommend_semi().label}, no policy.\n\n"
                    f"Run picked by each criterion (0-4): {picks}\n" + fewer_runs(rows, 3))


def fewer_runs(rows: list[dict], k: int) -> str:
    """Confidence's pick among runs 0..k-1 only (exploratory: a cheaper restart count), per n, from the rows that
    record each run's pool confidence."""
    lines = []
    for n in sorted({r["n"] for r in rows}):
        diffs = [100 * (r["members"][int(np.argmax(r["confidences"][:k]))] - r["semi"])
                 for r in sorted(rows, key=lambda r: r["seed"]) if r["n"] == n and "confidences" in r]
        if diffs:
            lines.append(f"- n = {n} ({len(diffs)} draws): {mean_se(diffs)} points; per draw "
                         + ", ".join(f"{d:+.1f}" for d in diffs))
    return (f"\nConfidence's pick among runs 0-{k - 1} only (K = {k}, exploratory), minus run 0:\n\n"
            + "\n".join(lines) + "\n") if lines else ""


if __name__ == "__main__":
    check_main("semi_select_check", __doc__, run_draw, markdown, ns=[2])
