"""Design check on a dev split (never the test set): decide the batch-mix stage on a tempered Brier score?

The search's batch-mix stage (mixup on top of the adopted policy, by the gain rule on the CV Brier score) adopted
mixup in 1 of 7 Fashion-MNIST harness cells while mixup's CV accuracy was above the policy's in all 7. A
mixup-trained model may be right as often but less sure, which the Brier score charges as lost evidence.
`brier_t` (synth/recipe/evidence.py: the Brier score after one temperature per recipe, fitted on the other
folds' held-out predictions) removes global over- or under-confidence. Per draw (n labels per class, seed) this
asks the search's question on the draw's own 3 folds with both metrics and compares each decision with the dev
accuracy (pool images held out of everything) of the two policies trained on the whole draw. Dev accuracies of
draws mix_ls_check already scored are read from its saved rows (same code, same draws), the rest are trained.

    python benchmarks/mix_cal_check.py --data fashion_mnist --ns 5 20 50 --seeds 0 1 --out a.jsonl
    python benchmarks/mix_cal_check.py --data fashion_mnist --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import json
import time

from dev_split import RESULTS, check_main, draw_table, policy_cv

from synth.data import ImageSet, draw_budget
from synth.recipe import Recipe, preset, train_with
from synth.training import TrainConfig, accuracy

DEFAULT, CHALLENGER = "strong@p0.5+ls0.1", "strong@p0.5+mixup+ls0.1"
ARMS = {"ls": DEFAULT, "mixup_ls": CHALLENGER}
METRICS = ("brier", "brier_t")


def _saved(data: str) -> dict[tuple[int, int], dict]:
    path = RESULTS / f"mix_ls_check_{data}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    return {(r["n"], r["seed"]): r for r in rows}


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
    t0 = time.perf_counter()
    row: dict = {"data": data, "n": n, "seed": seed}
    saved = _saved(data).get((n, seed))
    for key, name in ARMS.items():
        row[key] = saved[key] if saved else accuracy(
            train_with(Recipe(policy=preset(name)), labelled, seed=seed, cfg=TrainConfig()), dev)
    row["dev_from"] = "mix_ls_check" if saved else "trained"
    row.update(policy_cv(labelled, seed, [CHALLENGER], baseline=DEFAULT, metrics=METRICS)[CHALLENGER])
    if saved and saved.get("complete") and row.get("complete"):
        row["brier_rule_as_saved"] = saved["gain_rule"] == row["gain_rule"]  # the rerun reproduces mix_ls_check
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def _gain(row: dict, metric: str) -> tuple[float, float]:
    return tuple(row["brier" if metric == "brier" else f"{metric}/brier"])


def _adopts(row: dict, metric: str) -> bool:
    return bool(row.get("gain_rule" if metric == "brier" else f"{metric}/gain_rule"))


def markdown(rows: list[dict], command: str) -> str:
    table = draw_table(rows, command, f"Batch-mix decision on Brier vs tempered Brier ({CHALLENGER} over {DEFAULT})",
                       list(ARMS), [("mixup_ls − ls", "mixup_ls", "ls")])
    lines = ["", "The search's CV on each draw (3 folds); gains of mixup over the smoothed default:", "",
             "| n | seed | Brier gain ± SE | adopts | tempered Brier gain ± SE | adopts | accuracy gain (points) "
             "| dev difference (points) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = 100 * (r["mixup_ls"] - r["ls"])
        if not r["complete"]:
            lines.append(f"| {r['n']} | {r['seed']} | pruned | no | pruned | no | | {diff:+.1f} |")
            continue
        cells = [f"{_gain(r, m)[0]:+.4f} ± {_gain(r, m)[1]:.4f} | {'yes' if _adopts(r, m) else 'no'}" for m in METRICS]
        lines.append(f"| {r['n']} | {r['seed']} | {' | '.join(cells)} | {100 * r['acc'][0]:+.1f} ± {100 * r['acc'][1]:.1f}"
                     f" | {diff:+.1f} |")
    lines.append("")
    for m in METRICS:
        picks = [(_adopts(r, m), 100 * (r["mixup_ls"] - r["ls"])) for r in rows]
        mean = sum(d for a, d in picks if a) / max(len(picks), 1)
        lines.append(f"- Gain rule on {m}: adopted on {sum(a for a, _ in picks)} of {len(picks)} draws "
                     f"({sum(a and d < 0 for a, d in picks)} of them below the default on dev); {mean:+.2f} points "
                     "over the smoothed default on dev, mean over draws.")
    always = sum(100 * (r["mixup_ls"] - r["ls"]) for r in rows) / max(len(rows), 1)
    lines.append(f"- Always mixup: {always:+.2f} points.")
    return table + "\n".join(lines) + "\n"


def main() -> None:
    check_main("mix_cal_check", __doc__, run_draw, markdown, ns=[5, 20, 50])


if __name__ == "__main__":
    main()
