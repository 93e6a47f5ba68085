"""Design check of the recipe search's semi precision gate on a dev split — never the test set.

The question: at 5-20 labels per class, 3-fold CV inside the budget often cannot *see* a gain of
consistency training (on digits n = 10 real only scores ~97-98 % on its ~33-image held-out folds,
so there are 2-3 errors for a lever to fix), while consistency training gains several points on
new images. Consistency training trusts the model's predictions above `threshold` as labels, so
a second, cheaper piece of evidence is whether those predictions are right: the precision of
the "nothing" fold models' held-out predictions at that threshold (already computed by the
search's first trial). This check prints, per draw, that precision (and its Wilson lower bound)
beside the dev accuracy of real only and of consistency training trained on the whole budget,
so the gate's floor is set on dev data, not on the harness's test set.

Dev images are held out of everything (labelled draws, pools, training): benchmarks/dev_split.py.

    python benchmarks/semi_gate_check.py --data digits --ns 5 10 20 --seeds 0 1 2 3 --semi-dev
    python benchmarks/semi_gate_check.py --data fashion_mnist --ns 5 20 --seeds 0 1 2 3

`--bench-draws` reads the harness's own labelled draws (`synth bench` cells of those budgets and
seeds) instead of dev-split draws, and only them: it says where the gate can open in a benchmark
before it runs, from the labelled images alone (no dev, pool or test image is read).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from dev_split import DEV_SIZE, RESULTS, data_source, dev_split, semi_config, write_results

from synth.bench.protocol import split_for
from synth.data import draw_budget
from synth.recipe import Recipe, evaluate_recipes, preset
from synth.recipe.evidence import confident_precision, no_harm, paired_gain
from synth.semi import train_semi
from synth.training import TrainConfig, accuracy, train_classifier

THRESHOLDS = (0.9, 0.95)


def run(data: str, ns: list[int], seeds: list[int], semi_dev: bool, semi_overrides: list[str],
        bench_draws: bool = False, policy: str = "none", semi_cv: bool = False) -> list[dict]:
    if bench_draws:
        source = data_source(data)
    else:
        dev, rest = dev_split(data)
    cfg, semi = TrainConfig(), semi_config(semi_overrides)
    rows = []
    for n in ns:
        for seed in seeds:
            if bench_draws:
                labelled, unlabelled = split_for(source, n, seed).labelled, None
            else:
                labelled, unlabelled = draw_budget(rest, n_per_class=n, seed=seed)
            # the search's own fold models: its folds, seeds and held-out (confidence, correct)
            recipes = [Recipe(semi=semi)] if semi_cv and policy == "none" else []
            t0 = time.perf_counter()
            res = evaluate_recipes(labelled, recipes, unlabelled, seed=seed, k_folds=3, train_cfg=cfg,
                                   baseline=Recipe(policy=preset(policy)))
            conf, right = res.trials[0].confidence, res.trials[0].correct
            row: dict = {"n": n, "seed": seed, "policy": policy, "held_out": int(len(conf))}
            for t in THRESHOLDS:
                row[f"p{t}"] = confident_precision(conf, right, t)
            if bench_draws:
                print(json.dumps(row), flush=True)
                rows.append(row)
                continue
            row["real_dev"] = accuracy(train_classifier(labelled, cfg, seed=seed), dev)
            if semi_cv:  # the gate's other half: would the search's CV have shown semi's harm?
                if policy != "none":  # semi is scored against real only, as the gate's no-harm test does
                    t0 = time.perf_counter()
                    res = evaluate_recipes(labelled, [Recipe(semi=semi)], unlabelled, seed=seed, k_folds=3,
                                           train_cfg=cfg)
                nothing, trial = res.trials[0], res.trials[1]
                row["semi_cv"] = {"brier_gain": paired_gain(trial, nothing, "brier"),
                                  "acc_gain": paired_gain(trial, nothing, "accuracy"),
                                  "no_harm": no_harm(trial, nothing, "brier"), "seconds": round(time.perf_counter() - t0, 1)}
            if semi_dev:
                t0 = time.perf_counter()
                row["semi_dev"] = accuracy(train_semi(labelled, unlabelled, cfg, semi, seed=seed), dev)
                row["semi_seconds"] = round(time.perf_counter() - t0, 1)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict], data: str, command: str, bench_draws: bool = False) -> str:
    head = " | ".join(f"kept / correct @ {t}: precision, Wilson lower (z = 1)" for t in THRESHOLDS)
    where = (f"the harness's labelled draws of {data} (only they are read: no dev, pool or test image)" if bench_draws
             else f"a dev split of the {data} pool")
    lines = [f"# Semi precision gate on {where}", "",
             f"Command: `{command}` (1 torch thread). "
             + ("" if bench_draws else f"Dev: {DEV_SIZE[data]} pool images held out of everything; the test set is not read. ")
             + "Precision: real-only fold models (3 folds, the search's seeds) on their held-out labelled images.", "",
             f"| n/class | seed | held out | {head} |" + ("" if bench_draws else " real (dev) | semi (dev) | semi − real |"),
             "|---|---|---|" + "---|" * len(THRESHOLDS) + ("" if bench_draws else "---|---|---|")]
    for r in rows:
        cells = [f"{r[f'p{t}']['kept']} / {r[f'p{t}']['correct']}: {r[f'p{t}']['precision']:.3f}, "
                 f"{r[f'p{t}']['lower']:.3f}" for t in THRESHOLDS]
        semi, real = r.get("semi_dev"), r.get("real_dev")
        dev = "" if bench_draws else (f" {real:.3f} | " + (f"{semi:.3f} | {100 * (semi - real):+.1f} |" if semi is not None
                                                          else "– | – |"))
        lines.append(f"| {r['n']} | {r['seed']} | {r['held_out']} | " + " | ".join(cells) + " |" + dev)
    cv = [r for r in rows if "semi_cv" in r]
    if cv:
        lines += ["", "Semi beside real only on the search's 3 folds (paired gain ± SE; no harm: both >= -1 SE):", "",
                  "| n/class | seed | Brier gain | accuracy gain (points) | no harm | seconds |", "|---|---|---|---|---|---|"]
        for r in cv:
            c = r["semi_cv"]
            (b, bse), (a, ase) = c["brier_gain"], c["acc_gain"]
            lines.append(f"| {r['n']} | {r['seed']} | {b:+.4f} ± {bse:.4f} | {100 * a:+.1f} ± {100 * ase:.1f} | "
                         f"{'yes' if c['no_harm'] else 'no'} | {c['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits", choices=sorted(DEV_SIZE))
    ap.add_argument("--ns", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--semi-dev", action="store_true", help="also train consistency training on the whole budget")
    ap.add_argument("--bench-draws", action="store_true", help="the harness's labelled draws, precision only")
    ap.add_argument("--semi-cv", action="store_true",
                    help="also score semi beside real only on the search's 3 folds (paired gain, the gate's no-harm test)")
    ap.add_argument("--policy", default="none", help="the fold models' augmentation, e.g. strong@p0.5 (default none)")
    ap.add_argument("--tag", default=None, help="results file stem (default semi_gate_check_<data>[_bench_draws][_<policy>])")
    ap.add_argument("--semi", nargs="*", default=["align=true"], metavar="KEY=VALUE",
                    help="override conf/semi/default.yaml (default: align=true, recommend's first candidate)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.bench_draws and (args.semi_dev or args.semi_cv):
        ap.error("--bench-draws reads labelled images only: it cannot train semi on a pool or score it")
    rows = run(args.data, args.ns, args.seeds, args.semi_dev, args.semi, args.bench_draws, args.policy, args.semi_cv)
    command = "python benchmarks/semi_gate_check.py " + " ".join(
        [f"--data {args.data}", "--ns", *map(str, args.ns), "--seeds", *map(str, args.seeds)]
        + (["--semi-dev"] if args.semi_dev else []) + (["--semi-cv"] if args.semi_cv else [])
        + (["--bench-draws"] if args.bench_draws else [])
        + ([f"--policy {args.policy}"] if args.policy != "none" else []) + ([f"--tag {args.tag}"] if args.tag else [])
        + ["--semi", *args.semi])
    stem = args.tag or (f"semi_gate_check_{args.data}" + ("_bench_draws" if args.bench_draws else "")
            + (f"_{args.policy.replace('@', '_').replace('.', '')}" if args.policy != "none" else ""))
    write_results(RESULTS / stem, command, semi_config(args.semi), rows, table(rows, args.data, command, args.bench_draws))


if __name__ == "__main__":
    main()
