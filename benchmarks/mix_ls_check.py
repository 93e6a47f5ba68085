"""Design check on a dev split (never the test set): does mixup still add on top of the smoothed default?

`synth recommend` now ships `default_policy: [strong@p0.5+ls0.1, strong@p0.5]`. Mixup on top of strong@p0.5 gained
on the Fashion-MNIST dev split and lost on digits (benchmarks/results/regulariser_check_*.md), and the search's gain
rule adopted it where it helped (mix_cv_check). Whether it adds to label smoothing was never scored: both soften
the targets. Per draw (n labels per class, seed) this trains both policies through synth's own trainer on the same
labelled images, scores them on dev images (pool images held out of everything), and asks the search's question on
its own 3 folds inside the draw (`evaluate_recipes` with the smoothed default as the baseline; smoothed models read
on the labels' scale): would the gain rule adopt mixup as the default's challenger?

    python benchmarks/mix_ls_check.py --data fashion_mnist --ns 5 20 --seeds 0 1 --out a.jsonl
    python benchmarks/mix_ls_check.py --data fashion_mnist --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import time

from dev_split import check_main, cv_cells, draw_table, policy_cv

from synth.data import ImageSet, draw_budget
from synth.recipe import Recipe, preset, train_with
from synth.training import TrainConfig, accuracy

DEFAULT, CHALLENGER = "strong@p0.5+ls0.1", "strong@p0.5+mixup+ls0.1"
ARMS = {"ls": DEFAULT, "mixup_ls": CHALLENGER}


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
    t0 = time.perf_counter()
    row: dict = {"data": data, "n": n, "seed": seed}
    for key, name in ARMS.items():
        row[key] = accuracy(train_with(Recipe(policy=preset(name)), labelled, seed=seed, cfg=TrainConfig()), dev)
    row.update(policy_cv(labelled, seed, [CHALLENGER], baseline=DEFAULT)[CHALLENGER])
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    table = draw_table(rows, command, f"Mixup on top of the smoothed default ({DEFAULT})", list(ARMS),
                       [("mixup_ls − ls", "mixup_ls", "ls")])
    lines = ["", f"The search's CV on each draw (3 folds, {CHALLENGER} against {DEFAULT}):", "",
             "| n | seed | Brier gain ± SE | accuracy gain ± SE (points) | gain rule adopts | dev difference (points) |",
             "|---|---|---|---|---|---|"]
    adopted = []
    for r in rows:
        diff = 100 * (r["mixup_ls"] - r["ls"])
        if not r["complete"]:
            lines.append(f"| {r['n']} | {r['seed']} | pruned | | no | {diff:+.1f} |")
        else:
            lines.append(f"| {r['n']} | {r['seed']} | {cv_cells(r)} | {diff:+.1f} |")
        adopted.append((bool(r.get("gain_rule")), diff))
    mean = sum(d if a else 0.0 for a, d in adopted) / max(len(adopted), 1)
    always = sum(d for _, d in adopted) / max(len(adopted), 1)
    lines += ["", f"If the gain rule decides: {mean:+.2f} points over the smoothed default on dev (adopted on "
              f"{sum(a for a, _ in adopted)} of {len(adopted)} draws, {sum(a and d < 0 for a, d in adopted)} of them "
              f"below it); always mixup: {always:+.2f}."]
    return table + "\n".join(lines) + "\n"


def main() -> None:
    check_main("mix_ls_check", __doc__, run_draw, markdown, ns=[5, 20])


if __name__ == "__main__":
    main()
