"""Diagnostic, not a design check: do the Fashion-MNIST dev split and the test split disagree, or the draws?

Dev-split checks saw the x4 default ~3 points above real only at 20 labels per class on Fashion-MNIST, while the
harness's test cells saw ~0 (docs/recipe_log.md). Two explanations: the dev images differ from the test images,
or the labelled draws differ (the checks draw from the pool minus the dev images with their own seeds; the
harness draws from the whole pool with its seeds 0-2). This trains real only and the x4 default on the
harness's own n = 20 draws and scores each model on both splits. It reads the test split to compare splits
only: nothing is chosen from it. Some of the harness's labelled images are dev images (the harness does not
know the dev split); their count is in each row, and they lift the dev score by at most count / 2000.

    python benchmarks/dev_test_gap.py --data fashion_mnist --ns 20 --seeds 0 1 --out a.jsonl   # beside --seeds 2 --out b.jsonl
    python benchmarks/dev_test_gap.py --data fashion_mnist --from-jsonl a.jsonl b.jsonl   # -> results/dev_test_gap_fashion_mnist.*
"""

from __future__ import annotations

import time

from dev_split import check_main, data_source, draw_table

from synth.bench.protocol import split_for
from synth.data import ImageSet
from synth.recipe import preset
from synth.training import TrainConfig, accuracy, train_classifier

ARMS = ("real_test", "x4_test", "real_dev", "x4_dev")


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    """The harness's own draw (`split_for`, not a dev draw from `rest`): real only and the x4 default trained on
    it, each scored on the test split and on the dev split."""
    splits = split_for(data_source(data), n, seed)
    policy = preset("strong@p0.5+ls0.1+x4")
    arms = {"real": (TrainConfig(), {}),
            "x4": (policy.train_config(TrainConfig()), {"augment": policy.build(), "regularise": policy.regularisers()})}
    t0 = time.perf_counter()
    row = {"data": data, "n": n, "seed": seed, "dev_images_labelled": len(set(dev.ids) & set(splits.labelled.ids))}
    for arm, (cfg, extra) in arms.items():
        model = train_classifier(splits.labelled, cfg, seed=seed, **extra)
        row[f"{arm}_test"], row[f"{arm}_dev"] = accuracy(model, splits.test), accuracy(model, dev)
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    table = draw_table(rows, command, "The same models on the test and the dev split, the harness's draws", ARMS,
                       [("x4 - real, test", "x4_test", "real_test"), ("x4 - real, dev", "x4_dev", "real_dev")])
    table = table.replace("Dev accuracy (%)", "Accuracy (%) on the split each column names", 1)
    counts = ", ".join(f"seed {r['seed']}: {r['dev_images_labelled']}" for r in rows)
    return table + f"\nDev images among the harness's labelled images ({counts}): they lift both arms' dev scores alike.\n"


def main() -> None:
    check_main("dev_test_gap", __doc__, run_draw, markdown, ns=[20])


if __name__ == "__main__":
    main()
