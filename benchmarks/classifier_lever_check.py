"""Design check on a dev split (never the test set): does a classifier-side lever add to the default policy?

The question: under the strict protocol on digits `auto_default` reaches 1.75x and always using
strong@p0.5 ~2.2x, short of issue 9's 3x. With no pool, what is left are levers on the classifier
itself. Per draw (n labels per class, seed) this trains, on the same labelled images, and scores on
dev images (pool images held out of everything):

- real: real only (the benchmark's baseline);
- sp5: strong@p0.5 (the search's default policy), one classifier;
- sp5_ens3 / sp5_ens5: the mean class probabilities of 3 / 5 such classifiers (seeds seed + 1000 k);
- sp5_1200: strong@p0.5 trained twice as long (1,200 steps);
- strong_1200: strong on every draw, 1,200 steps;
- sp5_w64: strong@p0.5 with a twice-as-wide network (width 64, hidden 256).

    python benchmarks/classifier_lever_check.py --data digits --ns 2 5 10 --seeds 0 1 --out a.jsonl
    python benchmarks/classifier_lever_check.py --data digits --ns 2 5 10 --seeds 2 3 --out b.jsonl
    python benchmarks/classifier_lever_check.py --from-jsonl a.jsonl b.jsonl   # -> results/classifier_lever_check_digits.*

results/classifier_lever_check_digits.* were measured with the bilinear augmenter round trip (commit c7fc8ff,
before `resample: exact` became the default); rerun at that commit to reproduce them.
"""

from __future__ import annotations

import time

import numpy as np
from dev_split import check_main, draw_table

from synth.data import ImageSet, draw_budget
from synth.recipe import preset
from synth.training import TrainConfig, predict_proba, top1, train_classifier

ARMS = ("real", "sp5", "sp5_ens3", "sp5_ens5", "sp5_1200", "strong_1200", "sp5_w64")


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
    sp5, strong = preset("strong@p0.5").build(), preset("strong").build()

    def acc(p: np.ndarray) -> float:
        return top1(p, dev.labels)

    def proba(cfg: TrainConfig, s: int, augment=None) -> np.ndarray:
        return predict_proba(train_classifier(labelled, cfg, seed=s, augment=augment), dev.images)

    t0, row = time.perf_counter(), {"data": data, "n": n, "seed": seed}
    row["real"] = acc(proba(TrainConfig(), seed))
    members = [proba(TrainConfig(), seed + 1000 * k, sp5) for k in range(5)]
    row.update(sp5=acc(members[0]), sp5_ens3=acc(sum(members[:3])), sp5_ens5=acc(sum(members)))
    row["sp5_1200"] = acc(proba(TrainConfig(steps=1200), seed, sp5))
    row["strong_1200"] = acc(proba(TrainConfig(steps=1200), seed, strong))
    row["sp5_w64"] = acc(proba(TrainConfig(width=64, hidden=256), seed, sp5))
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    return draw_table(rows, command, "Classifier-side levers on top of strong@p0.5", ARMS,
                      [("sp5_ens5 - sp5", "sp5_ens5", "sp5"), ("sp5_1200 - sp5", "sp5_1200", "sp5")])

def main() -> None:
    check_main("classifier_lever_check", __doc__, run_draw, markdown, ns=[2, 5, 10])


if __name__ == "__main__":
    main()
