"""Design check on a dev split (never the test set): does the augmenter's resize round trip cost accuracy?

Why: the augmenters run their ops at a working size (32 px) and return to the native size. With bilinear
up and area down, a draw no op touches still comes back blurred: on 500 pool images the mean absolute
change is 17 grey levels on digits (8 px, 4x: a [1/8, 3/4, 1/8] kernel per axis) and 12 on Fashion-MNIST
(28 -> 32 -> 28), where augmentation on every draw has lost accuracy. `resample: exact` upsamples by a whole
factor with nearest neighbours (8 -> 32; 28 stays 28), so an untouched draw comes back unchanged and only
the ops change pixels. Per draw (n labels per class, seed), on the same labelled images, scored on dev
images held out of everything: real only, and each policy with either round trip.

    python benchmarks/resample_check.py --data digits --ns 2 5 10 20 --seeds 0 1 2 3 --out d.jsonl
    python benchmarks/resample_check.py --data fashion_mnist --ns 5 20 50 --seeds 0 1 2 3 --out f.jsonl
    python benchmarks/resample_check.py --data digits --from-jsonl d.jsonl   # -> results/resample_check_digits.*
"""

from __future__ import annotations

import time

from dev_split import check_main, draw_table

from generators.procedural.torch_backend import TorchAugmenter
from synth.data import ImageSet, draw_budget
from synth.recipe import preset
from synth.recipe.policy import Sometimes
from synth.training import TrainConfig, accuracy, train_classifier

POLICIES = ("strong@p0.5", "strong", "light@p0.5")
ARMS = ("real", *(f"{p} {r}" for p in POLICIES for r in ("bilinear", "exact")))


def augmenter(policy: str, resample: str):
    pol = preset(policy)
    aug = TorchAugmenter([dict(op) for op in pol.ops], pol.working_size, resample=resample)
    return aug if pol.prob >= 1.0 else Sometimes(aug, pol.prob)


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
    t0, row = time.perf_counter(), {"data": data, "n": n, "seed": seed}
    for arm in ARMS:
        augment = None if arm == "real" else augmenter(*arm.split(" "))
        model = train_classifier(labelled, TrainConfig(), seed=seed, augment=augment)
        row[arm] = accuracy(model, dev)
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    return draw_table(rows, command, "Augmenter resize round trip, bilinear vs exact", ARMS,
                      [(f"{p}: exact - bilinear", f"{p} exact", f"{p} bilinear") for p in ("strong@p0.5", "strong")])

def main() -> None:
    check_main("resample_check", __doc__, run_draw, markdown, ns=[2, 5, 10, 20])


if __name__ == "__main__":
    main()
