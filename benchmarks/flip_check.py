"""Design check on a dev split (never the test set): does mirroring help the smoothed default policy?

The question: under the strict protocol on Fashion-MNIST `auto_default_mix` reaches 1.38x, short of issue 9's
1.5x (~+0.4 points at 20 labels per class would reach it). The default policy strong@p0.5+ls0.1 has no flip,
because a mirrored 2, 5 or letter changes its label; clothing is mirror-symmetric and horizontal flips are the
standard augmentation there. Per draw (n labels per class, seed) this trains on the same labelled images and
scores on dev images (pool images held out of everything):

- real: real only (the benchmark's baseline); sp5ls: strong@p0.5+ls0.1 (the shipped default policy);
- sfp5ls: strong_flip@p0.5+ls0.1 (the flip inside the policy: a quarter of draws mirrored);
- flip_sp5ls: every draw mirrored with probability 0.5, then strong@p0.5, + ls0.1;
- flip_ls: mirrored with probability 0.5, nothing else, + ls0.1;
- sp5ls_2400 / flip_sp5ls_2400: sp5ls / flip_sp5ls trained 4x as long (2,400 steps), the lever that gained on
  every digits dev draw at 2 and 20 labels per class (results/steps_check_digits.md).

    python benchmarks/flip_check.py --data fashion_mnist --ns 5 20 50 --seeds 0 1 --out a.jsonl
    python benchmarks/flip_check.py --data fashion_mnist --ns 5 20 50 --seeds 2 3 --out b.jsonl
    python benchmarks/flip_check.py --data fashion_mnist --from-jsonl a.jsonl b.jsonl   # -> results/flip_check_*
"""

from __future__ import annotations

import time

import numpy as np
from dev_split import check_main, draw_table

from synth.data import ImageSet, draw_budget
from synth.recipe import preset
from synth.regularisers import parse
from synth.training import TrainConfig, accuracy, train_classifier

ARMS = ("real", "sp5ls", "sfp5ls", "flip_sp5ls", "flip_ls", "sp5ls_2400", "flip_sp5ls_2400")


class FlipThen:
    """Mirror each image with probability 0.5 (a coin from its own rng), then apply `inner` (or nothing)."""

    def __init__(self, inner=None):
        self.inner = inner

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.batch(image[None], [rng])[0]

    def batch(self, images: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        from generators.procedural import augment_batch

        out = np.stack([im[:, ::-1] if rng.random() < 0.5 else im for im, rng in zip(images, rngs, strict=True)])
        return out if self.inner is None else augment_batch(self.inner, np.ascontiguousarray(out), rngs)


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
    smooth = parse(None, 0.1)
    sp5 = preset("strong@p0.5").build()

    def acc(augment=None, regularise=None, steps: int = 600) -> float:
        extra = {"regularise": regularise} if regularise is not None else {}
        model = train_classifier(labelled, TrainConfig(steps=steps), seed=seed, augment=augment, **extra)
        return accuracy(model, dev)

    t0, row = time.perf_counter(), {"data": data, "n": n, "seed": seed}
    row["real"] = acc()
    row["sp5ls"] = acc(sp5, smooth)
    row["sfp5ls"] = acc(preset("strong_flip@p0.5").build(), smooth)
    row["flip_sp5ls"] = acc(FlipThen(sp5), smooth)
    row["flip_ls"] = acc(FlipThen(), smooth)
    row["sp5ls_2400"] = acc(sp5, smooth, 2400)
    row["flip_sp5ls_2400"] = acc(FlipThen(sp5), smooth, 2400)
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    return draw_table(rows, command, "Horizontal flips beside strong@p0.5+ls0.1", ARMS,
                      [("sfp5ls - sp5ls", "sfp5ls", "sp5ls"), ("flip_sp5ls - sp5ls", "flip_sp5ls", "sp5ls"),
                       ("sp5ls_2400 - sp5ls", "sp5ls_2400", "sp5ls")])


def main() -> None:
    check_main("flip_check", __doc__, run_draw, markdown, ns=[5, 20, 50])


if __name__ == "__main__":
    main()
