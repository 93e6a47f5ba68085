"""Design check on a dev split (never the test set): should confident pseudo-labels be capped per class?

The question: on Fashion-MNIST at 20 labels per class the stack's precision gate once opened pseudo-labels
(confidence 0.99) that the teacher had spread 212 / 731 / 32 / 208 / 2 / 570 / 2 / 230 / 799 / 694 across the
ten classes, and its student lost 2.8 points to real only (docs/label_efficiency_log.md, stop 46). That was seen
on the test set, so a guard against it is chosen here, on dev images. Class-balanced self-training keeps at most
a fixed share per class; `PseudoLabelGenerator(max_class_ratio=r)` keeps at most r x the smallest class's count
per class, most confident first. On every digits stack cell that opened pseudo-labels they were balanced
within 1.4x, so a cap of 2 would not have touched them.

Per draw (n labels per class drawn at random, seed) the same teacher as the stack's final one (the `strong`
policy, the arm's classifier recipe, threshold 0.99, no second gate) labels the rest of the pool, and on dev
images (pool images held out of everything) this scores:

- teacher: the policy trained on the labelled images alone (the stack's final model with the gate shut);
- pl: labelled + every confident pseudo-label, joined as if labelled (the stack's `pl_share: null`);
- pl_cap2: the same with `max_class_ratio: 2`.

The decision rule was committed before the first draw (docs/label_efficiency_log.md, "A per-class cap on
pseudo-labels").

    python benchmarks/pl_balance_check.py --data fashion_mnist --ns 20 --seeds 0 1 2 --out a.jsonl
    python benchmarks/pl_balance_check.py --data fashion_mnist --ns 20 --seeds 3 4 5 --out b.jsonl
    python benchmarks/pl_balance_check.py --data fashion_mnist --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import time

import numpy as np
from dev_split import check_main, draw_table, pooled_by_budget

from generators.pseudo_label import PseudoLabelGenerator
from synth.bench.stack_arm import pl_kwargs, stack_params
from synth.data import ImageSet, draw_budget
from synth.recipe import preset
from synth.training import TrainConfig, accuracy, train_classifier

ARMS = ("teacher", "pl", "pl_cap2")
THRESHOLD = 0.99


def _generator(policy, train: TrainConfig, seed: int, ratio: float | None) -> PseudoLabelGenerator:
    """The stack's final teacher, built as `stack_arm.final_model` builds it (its default params, the gate's
    threshold, k_folds 0: no second gate), with the cap under test."""
    kwargs = {**pl_kwargs(stack_params({}), policy, train, seed), "threshold": THRESHOLD, "k_folds": 0,
              "max_class_ratio": ratio}
    return PseudoLabelGenerator(min_precision=0.0, **kwargs)


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int, arms: tuple[str, ...] = ARMS) -> dict:
    labelled, pool = draw_budget(rest, n_per_class=n, seed=seed)  # pool: labels hidden
    policy, train = preset("strong"), TrainConfig()
    t0, row = time.perf_counter(), {"data": data, "n": n, "seed": seed}
    if "teacher" in arms:
        row["teacher"] = accuracy(train_classifier(labelled, train, seed=seed, augment=policy.build()), dev)
    truth = dict(zip(map(str, rest.ids), rest.labels.tolist(), strict=True))  # the check knows the pool's labels; the teacher never saw them
    for arm, ratio in (("pl", None), ("pl_cap2", 2.0)):
        if arm not in arms:
            continue
        gen = _generator(policy, train, seed, ratio)
        gen.fit(labelled, pool)
        row[f"{arm}_kept"] = gen.kept_counts.tolist()
        if not gen.active:
            row[arm] = row.get("teacher")
            continue
        extra = gen.pseudo_labelled()
        row[f"{arm}_precision"] = float(np.mean([truth[str(i)] == int(y) for i, y in zip(extra.ids, extra.labels, strict=True)]))
        row[arm] = accuracy(train_classifier(labelled.concat(extra), train, seed=seed, augment=policy.build()), dev)
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    """The per-draw table, then the pooled differences the registered rule reads, then each draw's kept counts."""
    diffs = [("pl_cap2 - pl", "pl_cap2", "pl"), ("pl - teacher", "pl", "teacher")]
    kept = [f"| {r['n']} | {r['seed']} | {' / '.join(map(str, r['pl_kept']))} | {max(r['pl_kept']) / max(min(r['pl_kept']), 1):.1f}x | "
            f"{100 * r.get('pl_precision', float('nan')):.1f} | {100 * r.get('pl_cap2_precision', float('nan')):.1f} | {sum(r['pl_cap2_kept'])} |"
            for r in rows if "pl_kept" in r and "pl_cap2_kept" in r]
    return (draw_table(rows, command, "A per-class cap on confident pseudo-labels (threshold 0.99, strong teacher)", ARMS, diffs)
            + pooled_by_budget(rows, diffs, "the registered rule reads Fashion-MNIST n = 20 and digits n = 5")
            + "\nKept pseudo-labels per class (uncapped), their skew (largest ÷ smallest class), precision (%) uncapped / "
            "capped, and how many the cap keeps:\n\n| n | seed | kept per class | skew | precision | capped precision | capped kept |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(kept) + "\n")


def main() -> None:
    check_main("pl_balance_check", __doc__, run_draw, markdown, ns=[20], arms=ARMS)


if __name__ == "__main__":
    main()
