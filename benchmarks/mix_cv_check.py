"""Design check on a dev split (never the test set): can the search's CV tell where mixup helps?

benchmarks/regulariser_check.py found mixup (alpha 1) on top of strong@p0.5 worth +1.2 / +1.3 / +0.3
points on the Fashion-MNIST dev split (n = 5 / 20 / 50) and −1.5 on digits: no default for both. The
search could try it as a challenger of the default policy, adopted only when its paired CV gain over
the default clears the gain rule (or, looser, shows no harm). This scores exactly that on the
search's own 3 folds of each labelled draw (`evaluate_recipes` with the default as the baseline:
the search's code path, pruning included) and puts it next to the dev difference regulariser_check
measured on the same draw (same labelled images, same seeds; its rows must exist).

    python benchmarks/mix_cv_check.py --data fashion_mnist --ns 5 20 50 --seeds 0 1 --out a.jsonl
    python benchmarks/mix_cv_check.py --data fashion_mnist --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import time

from dev_split import check_main, cv_cells, policy_cv, regulariser_rows

from synth.data import ImageSet, draw_budget

DEFAULT, CHALLENGER = "strong@p0.5", "strong@p0.5+mixup"


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
    t0 = time.perf_counter()
    cv = policy_cv(labelled, seed, [CHALLENGER], baseline=DEFAULT)[CHALLENGER]
    return {"data": data, "n": n, "seed": seed, "cv_seconds": round(time.perf_counter() - t0, 1), **cv}


def markdown(rows: list[dict], command: str) -> str:
    data = rows[0]["data"]
    dev = regulariser_rows(data)
    lines = [f"# Mixup as a challenger of the default policy, by the search's CV: {data} dev split\n",
             f"Command: `{command}`. CV: 3 folds inside the labelled draw, paired gain of {CHALLENGER} over "
             f"{DEFAULT} ± SE; dev: the same difference on dev images (regulariser_check_{data}.json, same draws).\n",
             "| n | seed | Brier gain ± SE | accuracy gain ± SE (points) | gain rule adopts | no harm | dev difference (points) |",
             "|---|---|---|---|---|---|---|"]
    picked: dict[str, list[tuple[bool, float]]] = {"gain rule": [], "no harm": [], "always": []}
    for r in rows:
        d = dev.get((r["n"], r["seed"]))
        diff = float("nan") if d is None else 100 * (d["sp5_mixup1"] - d["sp5"])
        if not r["complete"]:
            lines.append(f"| {r['n']} | {r['seed']} | pruned | | no | no | {diff:+.1f} |")
        else:
            lines.append(f"| {r['n']} | {r['seed']} | {cv_cells(r)} | {'yes' if r['no_harm'] else 'no'} | {diff:+.1f} |")
        picked["always"].append((True, diff))
        picked["gain rule"].append((bool(r.get("gain_rule")), diff))
        picked["no harm"].append((bool(r.get("no_harm")), diff))
    lines += ["", "Mean dev difference over the default if the rule decides (0 where it keeps the default):", "",
              "| rule | mean (points) | draws adopted | adopted below the default |", "|---|---|---|---|"]
    for rule, vals in picked.items():
        mean = sum(d if a else 0.0 for a, d in vals) / max(len(vals), 1)
        lines.append(f"| {rule} | {mean:+.2f} | {sum(a for a, _ in vals)} of {len(vals)} | "
                     f"{sum(a and d < 0 for a, d in vals)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    check_main("mix_cv_check", __doc__, run_draw, markdown, ns=[5, 20, 50])


if __name__ == "__main__":
    main()
