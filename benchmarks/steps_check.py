"""Design check on a dev split (never the test set): does training longer help the smoothed default policy?

The question: under the strict protocol on digits `auto_default_ls` (the default policy strong@p0.5 with
label smoothing 0.1) reaches 2.73x, short of issue 9's 3x; it crosses the 97.6 % target between 5 and 10
labels per class, so ~+0.3 points at n = 10 (or ~+1.3 at n = 5) would reach 3x. Twice the steps on top of
strong@p0.5 *without* smoothing gained +0.5 points at n = 10 on a dev split (no draw below;
results/classifier_lever_check_digits.md) but was mixed at n = 2. Label smoothing keeps a model from becoming
overconfident on its few labels, so a longer schedule may pay more with it. Per draw (n labels per class,
seed) this trains on the same labelled images and scores on dev images (pool images held out of everything):

- real / real_1200: real only (the benchmark's baseline) at 600 / 1,200 steps (does length alone help?);
- sp5ls / sp5ls_1200 / sp5ls_2400: strong@p0.5+ls0.1 at 600 / 1,200 / 2,400 steps (cosine schedule over
  the whole run, as always);
- sp5ls_ens3: the mean class probabilities of 3 sp5ls classifiers (seeds seed + 1000 k), 1,800 steps of
  compute in all (a compute-matched alternative to training longer).

    python benchmarks/steps_check.py --data digits --ns 2 5 10 20 --seeds 0 1 --out a.jsonl
    python benchmarks/steps_check.py --data digits --ns 2 5 10 20 --seeds 2 3 --out b.jsonl
    python benchmarks/steps_check.py --data digits --from-jsonl a.jsonl b.jsonl   # -> results/steps_check_digits.*
"""

from __future__ import annotations

import time

import numpy as np
from dev_split import check_main, draw_table

from synth.data import ImageSet, draw_budget
from synth.recipe import preset
from synth.training import TrainConfig, predict_proba, top1, train_classifier

ARMS = ("real", "real_1200", "sp5ls", "sp5ls_1200", "sp5ls_2400", "sp5ls_ens3")


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
    policy = preset("strong@p0.5+ls0.1")
    augment, regularise = policy.build(), policy.regularisers()

    def acc(p: np.ndarray) -> float:
        return top1(p, dev.labels)

    def proba(steps: int, s: int, smoothed: bool) -> np.ndarray:
        extra = {"augment": augment, "regularise": regularise} if smoothed else {}
        return predict_proba(train_classifier(labelled, TrainConfig(steps=steps), seed=s, **extra), dev.images)

    t0, row = time.perf_counter(), {"data": data, "n": n, "seed": seed}
    row["real"], row["real_1200"] = acc(proba(600, seed, False)), acc(proba(1200, seed, False))
    members = [proba(600, seed + 1000 * k, True) for k in range(3)]
    row.update(sp5ls=acc(members[0]), sp5ls_ens3=acc(sum(members)))
    row["sp5ls_1200"], row["sp5ls_2400"] = acc(proba(1200, seed, True)), acc(proba(2400, seed, True))
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    return draw_table(rows, command, "Training length on top of strong@p0.5+ls0.1", ARMS,
                      [("sp5ls_1200 - sp5ls", "sp5ls_1200", "sp5ls"), ("sp5ls_2400 - sp5ls", "sp5ls_2400", "sp5ls"),
                       ("real_1200 - real", "real_1200", "real")])


def main() -> None:
    check_main("steps_check", __doc__, run_draw, markdown, ns=[2, 5, 10, 20])


if __name__ == "__main__":
    main()
