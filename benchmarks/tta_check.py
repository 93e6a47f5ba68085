"""Design check on a dev split (never the test set): does test-time augmentation add to the default policy?

The question (issue 9's strict digits goal, 3x; `auto_default` 1.75x): with no pool, the levers left act
on the classifier (classifier_lever_check.py: ensembles, longer training, a wider network: none worth it).
Test-time augmentation (TTA) is the one that reuses the augmentation policy at inference: predict the
mean class probabilities of the clean image and k augmented views. Per draw (n labels per class, seed),
on the same labelled images, scored on dev images held out of everything:

- real / sp5: real only, and strong@p0.5 (the search's default policy), plain predictions;
- real_tta_light8: real only, clean + 8 `light` views;
- sp5_tta_light8 / sp5_tta_light16 / sp5_tta_strong8: strong@p0.5, clean + 8 or 16 `light` views, or 8 `strong`.

The views are drawn per image from seeded generators, so every number is reproducible.

    python benchmarks/tta_check.py --data digits --ns 2 5 10 --seeds 0 1 --out a.jsonl
    python benchmarks/tta_check.py --data digits --ns 2 5 10 --seeds 2 3 --out b.jsonl
    python benchmarks/tta_check.py --data digits --from-jsonl a.jsonl b.jsonl   # -> results/tta_check_digits.*
"""

from __future__ import annotations

import time

import numpy as np
from dev_split import check_main, draw_table
from torch import nn

from generators.procedural import augment_batch
from synth.data import ImageSet, draw_budget
from synth.recipe import preset
from synth.training import TrainConfig, predict_proba, top1, train_classifier

ARMS = ("real", "real_tta_light8", "sp5", "sp5_tta_light8", "sp5_tta_light16", "sp5_tta_strong8")


def tta_proba(model: nn.Module, images: np.ndarray, augment, k: int, seed: int) -> np.ndarray:
    """Mean class probabilities over the clean images and `k` augmented views (view j of image i: seed [seed, j, i])."""
    p = predict_proba(model, images)
    for j in range(k):
        rngs = [np.random.default_rng([seed, j, i]) for i in range(len(images))]
        p = p + predict_proba(model, augment_batch(augment, images, rngs))
    return p / (k + 1)


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
    light, strong = preset("light").build(), preset("strong").build()

    def acc(p: np.ndarray) -> float:
        return top1(p, dev.labels)

    t0 = time.perf_counter()
    real = train_classifier(labelled, TrainConfig(), seed=seed)
    sp5 = train_classifier(labelled, TrainConfig(), seed=seed, augment=preset("strong@p0.5").build())
    row = {"data": data, "n": n, "seed": seed,
           "real": acc(predict_proba(real, dev.images)), "real_tta_light8": acc(tta_proba(real, dev.images, light, 8, seed)),
           "sp5": acc(predict_proba(sp5, dev.images)), "sp5_tta_light8": acc(tta_proba(sp5, dev.images, light, 8, seed)),
           "sp5_tta_light16": acc(tta_proba(sp5, dev.images, light, 16, seed)),
           "sp5_tta_strong8": acc(tta_proba(sp5, dev.images, strong, 8, seed))}
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    return draw_table(rows, command, "Test-time augmentation on top of strong@p0.5", ARMS,
                      [("sp5_tta_light8 - sp5", "sp5_tta_light8", "sp5")])

def main() -> None:
    check_main("tta_check", __doc__, run_draw, markdown, ns=[2, 5, 10])


if __name__ == "__main__":
    main()
