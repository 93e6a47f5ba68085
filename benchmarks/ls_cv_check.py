"""Design check on a dev split (never the test set): does the search's default route adopt label smoothing?

benchmarks/regulariser_check.py found label smoothing 0.1 on top of strong@p0.5 worth +1.7 / +0.8 / +0.5 / +0.3
points on the digits dev split (n = 2 / 5 / 10 / 20, no draw below) and +0.1 / +0.5 / +0.2 on Fashion-MNIST, but
the search refused `strong@p0.5+ls0.1` as its default policy on held-out Brier (2 of 2 harness cells): a smoothed
model answers a sure image with ~0.91. Since the search reads a smoothed model's probabilities back on the
labels' scale (`synth.regularisers.unsmooth`), this asks, on the search's own 3 folds of each labelled draw
(`evaluate_recipes` against real only: the search's code path, pruning included), how often the default route
(no harm in Brier and accuracy, `no_harm`) adopts each default, and the smoothed one with the plain one as its
fallback (`default_policy: [strong@p0.5+ls0.1, strong@p0.5]`), and what that is worth on dev images
(regulariser_check's dev accuracies of the same draws: same labelled images, same seeds; its rows must exist).

    python benchmarks/ls_cv_check.py --data digits --ns 2 5 10 20 --seeds 0 1 --out a.jsonl
    python benchmarks/ls_cv_check.py --data digits --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import time

from dev_split import check_main, policy_cv, regulariser_rows

from synth.data import ImageSet, draw_budget

#: default policy -> its column in regulariser_check's rows
DEFAULTS = {"strong@p0.5": "sp5", "strong@p0.5+ls0.1": "sp5_ls01"}


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
    t0 = time.perf_counter()
    cv = policy_cv(labelled, seed, list(DEFAULTS))
    row: dict = {"data": data, "n": n, "seed": seed, "cv_seconds": round(time.perf_counter() - t0, 1)}
    return row | {key: cv[name] for name, key in DEFAULTS.items()}


def markdown(rows: list[dict], command: str) -> str:
    data = rows[0]["data"]
    dev = regulariser_rows(data)
    lines = [f"# Label smoothing as the search's default policy: {data} dev split\n",
             f"Command: `{command}`. CV: 3 folds inside the labelled draw, paired gain of each default over real only "
             f"± SE (Brier of a smoothed model read on the labels' scale); route: the default route's no-harm test; "
             f"dev: accuracy on dev images minus real only (regulariser_check_{data}.json, same draws), points.\n",
             "| n | seed | " + " | ".join(f"{p}: Brier gain ± SE | acc gain | route | dev" for p in DEFAULTS) + " |",
             "|---|---|" + "---|---|---|---|" * len(DEFAULTS)]
    outcome: dict[str, list[tuple[bool, float]]] = {p: [] for p in DEFAULTS}
    for r in rows:
        d = dev.get((r["n"], r["seed"]))
        cells = []
        for p, key in DEFAULTS.items():
            diff = float("nan") if d is None else 100 * (d[key] - d["real"])
            c = r[key]
            adopted = bool(c.get("no_harm"))
            outcome[p].append((adopted, diff))
            if not c["complete"]:
                cells.append(f"pruned | | no | {diff:+.1f}")
                continue
            cells.append(f"{c['brier'][0]:+.4f} ± {c['brier'][1]:.4f} | {100 * c['acc'][0]:+.1f} ± {100 * c['acc'][1]:.1f} | "
                         f"{'adopts' if adopted else 'refuses'} | {diff:+.1f}")
        lines.append(f"| {r['n']} | {r['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "If the route decides (where it refuses: real only, 0; the search's gain rule may still pick another "
              "policy there): mean dev gain over real only.", "",
              "| default | mean (points) | draws adopted | adopted and below real only |", "|---|---|---|---|"]
    # the search's fallbacks (default_policy: [ls, plain]): the plain default where the smoothed one is refused
    ls, plain = outcome["strong@p0.5+ls0.1"], outcome["strong@p0.5"]
    outcome["strong@p0.5+ls0.1, else strong@p0.5"] = [a if a[0] else b for a, b in zip(ls, plain, strict=True)]
    for p, vals in outcome.items():
        mean = sum(d if a else 0.0 for a, d in vals) / max(len(vals), 1)
        lines.append(f"| {p} | {mean:+.2f} | {sum(a for a, _ in vals)} of {len(vals)} | {sum(a and d < 0 for a, d in vals)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    check_main("ls_cv_check", __doc__, run_draw, markdown, ns=[2, 5, 10, 20])


if __name__ == "__main__":
    main()
