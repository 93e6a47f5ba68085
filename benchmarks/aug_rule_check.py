"""Design check of the recipe search's augmentation decision on a dev split — never the test set.

The question: under the strict protocol the search adopts an augmentation policy only when its
paired CV gain over real only clears one standard error (the gain rule). On digits that rule
chose "nothing" in 5 of 12 benchmark cells, while strong augmentation on every draw is worth
~2x labels there; on Fashion-MNIST augmentation *hurts* from 20 labels per class, which is what
the rule is for. Would a looser rule (adopt the best policy whose CV mean gain is positive and
shows no harm) keep Fashion-MNIST safe and adopt more on digits?

Per draw (n labels per class, seed) this scores the search's policy candidates (the bench `auto`
arm's: light, strong, light@p0.5, strong@p0.5) beside "nothing" on the search's own 3 folds with
`evaluate_recipes` (the search's code path, pruning included), and trains each candidate on the
whole budget to measure it on dev images. Decision rules are then replayed on the same trials.

    python benchmarks/aug_rule_check.py --data digits --ns 2 5 10 20 --seeds 0 1 2
    python benchmarks/aug_rule_check.py --data fashion_mnist --ns 5 20 50 --seeds 0 1
    python benchmarks/aug_rule_check.py --data digits --from-json benchmarks/results/aug_rule_check_digits.json
        # replays the rules on saved trials (rewrites the .md; no training)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from dev_split import DEV_SIZE, RESULTS, dev_split

from synth.data import draw_budget
from synth.recipe import Recipe, evaluate_recipes, preset
from synth.recipe.evidence import beats, no_harm, paired_gain
from synth.recipe.recipe import TrainContext, fit_and_train
from synth.training import TrainConfig, accuracy

POLICIES = ("light", "strong", "light@p0.5", "strong@p0.5")


def run(data: str, ns: list[int], seeds: list[int]) -> list[dict]:
    dev, rest = dev_split(data)
    cfg, rows = TrainConfig(), []
    for n in ns:
        for seed in seeds:
            labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)
            t0 = time.perf_counter()
            res = evaluate_recipes(labelled, [Recipe(policy=preset(p)) for p in POLICIES], seed=seed, k_folds=3, train_cfg=cfg)
            nothing, cands = res.trials[0], {t.recipe.policy.name: t for t in res.trials[1:]}
            row: dict = {"n": n, "seed": seed, "cv_seconds": round(time.perf_counter() - t0, 1), "candidates": {}}
            ctx = TrainContext(train_cfg=cfg)
            row["real_dev"] = accuracy(fit_and_train(Recipe(), labelled, None, seed, ctx), dev)
            for name in POLICIES:
                trial = cands.get(name)
                c: dict = {"dev": accuracy(fit_and_train(Recipe(policy=preset(name)), labelled, None, seed, ctx), dev)}
                if trial is not None and trial.complete:
                    c.update(brier=paired_gain(trial, nothing, "brier"), acc=paired_gain(trial, nothing, "accuracy"),
                             gain_rule=beats(trial, nothing, 0.005, "brier"), no_harm=no_harm(trial, nothing, "brier"))
                else:
                    c["pruned"] = True
                row["candidates"][name] = c
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


RULES = {
    "gain": "the search's rule: the best candidate by mean Brier gain, if it clears the gain rule",
    "no_harm": "the best by mean Brier gain among candidates with positive mean gains in Brier and accuracy "
               "and no harm beyond 1 SE in either",
    "default_first": "the default policy unless its CV shows harm (beyond 1 SE in Brier or accuracy); else the gain rule",
    "gain_then_default": "the gain rule; if it adopts nothing, the default policy unless its CV shows harm",
}


def choose(row: dict, rule: str, default: str) -> str:
    """The policy `rule` (see RULES) adopts on this draw's trials ("nothing" if none)."""
    ok = {k: c for k, c in row["candidates"].items() if "brier" in c}
    best = max(ok, key=lambda k: ok[k]["brier"][0], default=None)
    gain_pick = best if best and ok[best]["gain_rule"] else "nothing"
    default_ok = default in ok and ok[default]["no_harm"]
    if rule == "gain":
        return gain_pick
    if rule == "default_first":
        return default if default_ok else gain_pick
    if rule == "gain_then_default":
        return gain_pick if gain_pick != "nothing" or not default_ok else default
    fine = {k: c for k, c in ok.items() if c["no_harm"] and c["brier"][0] > 0 and c["acc"][0] >= 0}
    return max(fine, key=lambda k: fine[k]["brier"][0], default="nothing")


def dev_of(row: dict, pick: str) -> float:
    return row["real_dev"] if pick == "nothing" else row["candidates"][pick]["dev"]


def table(rows: list[dict], data: str, command: str, default: str) -> str:
    lines = [f"# Augmentation decision rules on a dev split of the {data} pool", "",
             f"Command: `{command}` (1 torch thread). Dev: {DEV_SIZE[data]} pool images held out of everything; "
             "the test set is not read. CV: the search's 3 folds inside the labelled draw (paired gain over "
             "nothing ± SE); dev: each candidate trained on the whole draw.", "",
             "| n/class | seed | real (dev) | " + " | ".join(f"{p}: Brier gain ± SE, acc gain, dev − real" for p in POLICIES)
             + " |" + "".join(f" {rule} picks (dev − real) |" for rule in RULES),
             "|---|---|---|" + "---|" * (len(POLICIES) + len(RULES))]
    totals: dict[str, list[float]] = {rule: [] for rule in RULES}
    for r in rows:
        cells = []
        for p in POLICIES:
            c = r["candidates"][p]
            d = 100 * (c["dev"] - r["real_dev"])
            cells.append(f"pruned, {d:+.1f}" if c.get("pruned") else
                         f"{c['brier'][0]:+.3f} ± {c['brier'][1]:.3f}, {100 * c['acc'][0]:+.1f}, {d:+.1f}")
        picks = []
        for rule in totals:
            pick = choose(r, rule, default)
            d = 100 * (dev_of(r, pick) - r["real_dev"])
            totals[rule].append(d)
            picks.append(f"{pick} ({d:+.1f})")
        lines.append(f"| {r['n']} | {r['seed']} | {r['real_dev']:.3f} | " + " | ".join(cells) + " | "
                     + " | ".join(picks) + " |")
    lines += ["", f"Rules replayed on the same trials (default policy: {default}):", "",
              "| rule | what it adopts | mean dev − real (points) | worst | draws below real |", "|---|---|---|---|---|"]
    for rule, d in totals.items():
        lines.append(f"| {rule} | {RULES[rule]} | {np.mean(d):+.2f} | {min(d):+.1f} | {sum(x < 0 for x in d)} / {len(d)} |")
    for pol in POLICIES:  # reference: one policy on every draw, no CV (not a rule the search could know to use)
        d = [100 * (r["candidates"][pol]["dev"] - r["real_dev"]) for r in rows]
        lines.append(f"| always {pol} | reference: this policy on every draw, whatever the CV says | {np.mean(d):+.2f} | "
                     f"{min(d):+.1f} | {sum(x < 0 for x in d)} / {len(d)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits", choices=sorted(DEV_SIZE))
    ap.add_argument("--ns", type=int, nargs="+", default=[2, 5, 10, 20])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--default", default="strong@p0.5", choices=POLICIES, help="the default-policy rules' policy")
    ap.add_argument("--from-json", default=None, help="replay the rules on a results JSON (rewrites its .md) instead of training")
    ap.add_argument("--tag", default=None, help="results file stem (default aug_rule_check_<data>)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.from_json:  # the rules only: same trials, no training
        saved = json.loads(Path(args.from_json).read_text())
        Path(args.from_json).with_suffix(".md").write_text(table(saved["rows"], args.data, saved["command"], args.default))
        print(f"wrote {Path(args.from_json).with_suffix('.md')}")
        return
    rows = run(args.data, args.ns, args.seeds)
    command = "python benchmarks/aug_rule_check.py " + " ".join(
        [f"--data {args.data}", "--ns", *map(str, args.ns), "--seeds", *map(str, args.seeds)]
        + ([f"--tag {args.tag}"] if args.tag else []))
    stem = RESULTS / (args.tag or f"aug_rule_check_{args.data}")
    stem.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(table(rows, args.data, command, args.default))
    print(f"wrote {stem}.json / .md")


if __name__ == "__main__":
    main()
