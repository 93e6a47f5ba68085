"""The dev split the design checks share (semi_check.py, al_balance_check.py) — never the test set.

Dev images are pool images whose labels we know but that every check holds out of everything
(labelled draws, pools, training), so settings chosen on them do not read the test set the
harness reports on. One fixed permutation (seed 123) makes the split the same in every check.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from synth.commands.recommend import search_pool
from synth.config import build
from synth.data import draw_budget
from synth.data.imageset import ImageSet
from synth.semi import SemiConfig, semi_candidates
from synth.training import TrainConfig

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DEV_SIZE = {"digits": 300, "fashion_mnist": 2000}
BENCH_PRESET = {"digits": ["bench=digits_labels"], "fashion_mnist": ["bench=fashion_mnist", "data=fashion_mnist"]}


@cache
def data_source(data: str):
    """The harness's data source for `data` (conf/data/<data>.yaml), built once per process."""
    return build(OmegaConf.load(REPO / "conf" / "data" / f"{data}.yaml"), "data")


@cache
def bench_arm(data: str, arm: str) -> tuple[dict, TrainConfig]:
    """`bench.arms.<arm>` and `bench.train` of the harness's preset for `data`, composed as `synth bench` does, so a
    check runs the arm with the params a benchmark cell would."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("bench", overrides=BENCH_PRESET[data])
    return OmegaConf.to_container(cfg.bench.arms[arm]), TrainConfig(**OmegaConf.to_container(cfg.bench.train))


def stack_plan(data: str, rest: ImageSet, n: int, seed: int, arm: str, **overrides):
    """A stack arm's decisions on one draw, as a benchmark cell makes them: n labelled images per class from `rest`,
    the rest of it as the pool (labels hidden; a simulated oracle reads `rest`), the preset's params for `arm`
    (`bench_arm`) with `overrides`. Returns (the labelled draw, the `StackPlan`, the classifier's TrainConfig), so
    the stack checks train their final models on one run of the decisions."""
    from synth.bench.arms import ArmConfig
    from synth.bench.protocol import POOL, ArmData, LabelOracle
    from synth.bench.stack_arm import decide_stack

    params, train = bench_arm(data, arm)
    labelled, pool = draw_budget(rest, n_per_class=n, seed=seed)
    arm_data = ArmData(labelled, pool, POOL)
    cfg = ArmConfig(arm, {**params, **overrides}, train, oracle=LabelOracle(arm_data, rest))
    return labelled, decide_stack(arm_data, n, seed, cfg), train


def dev_split(data: str) -> tuple[ImageSet, ImageSet]:
    """(dev, rest) of the `data` pool's labelled copy; the test split is never touched."""
    pool = data_source(data).pool
    perm = np.random.default_rng(123).permutation(len(pool))
    return pool.subset(np.sort(perm[: DEV_SIZE[data]])), pool.subset(np.sort(perm[DEV_SIZE[data]:]))


def cv_decisions(trial, base, metric: str = "brier") -> dict:
    """The search's evidence for `trial` against `base` on the same folds (`synth.recipe.evidence`): paired
    gains in `metric` (keyed "brier" whatever the metric, for the tables) and accuracy (mean, SE), and whether the
    gain rule (min gain 0.005) or the no-harm test adopts it."""
    from synth.recipe.evidence import beats, no_harm, paired_gain

    return {"brier": paired_gain(trial, base, metric), "acc": paired_gain(trial, base, "accuracy"),
            "gain_rule": bool(beats(trial, base, 0.005, metric)), "no_harm": bool(no_harm(trial, base, metric))}


def policy_cv(labelled: ImageSet, seed: int, policies: Sequence[str], baseline: str | None = None,
              metrics: Sequence[str] = ("brier",)) -> dict[str, dict]:
    """The search's question on one labelled draw, asked on its own 3 folds (`evaluate_recipes`, the final
    classifier's TrainConfig, pruning included): each policy's `cv_decisions` against `baseline` (a policy
    name; None: real only), keyed by policy name, with whether its trial ran to the end. Metrics after the
    first add their decisions under `<metric>/<key>`."""
    from synth.recipe import Recipe, evaluate_recipes, preset
    from synth.training import TrainConfig

    res = evaluate_recipes(labelled, [Recipe(policy=preset(p)) for p in policies], seed=seed, k_folds=3,
                           train_cfg=TrainConfig(), baseline=None if baseline is None else Recipe(policy=preset(baseline)))
    base = res.trials[0]
    out = {}
    for t in res.trials[1:]:
        row = {"complete": t.complete}
        for i, m in enumerate(metrics if t.complete else ()):
            row.update({(f"{m}/{k}" if i else k): v for k, v in cv_decisions(t, base, m).items()})
        out[t.recipe.policy.name] = row
    return out


def cv_cells(row: dict) -> str:
    """A draw's `cv_decisions` as table cells: Brier gain ± SE | accuracy gain ± SE (points) | gain rule adopts."""
    return (f"{row['brier'][0]:+.4f} ± {row['brier'][1]:.4f} | {100 * row['acc'][0]:+.1f} ± {100 * row['acc'][1]:.1f} | "
            f"{'yes' if row['gain_rule'] else 'no'}")


def regulariser_rows(data: str) -> dict[tuple[int, int], dict]:
    """regulariser_check's dev accuracies by (n, seed): the checks that score its draws' CV read them."""
    rows = json.loads((RESULTS / f"regulariser_check_{data}.json").read_text())["rows"]
    return {(r["n"], r["seed"]): r for r in rows}


def semi_config(overrides: Sequence[str] = ()) -> SemiConfig:
    """conf/semi/default.yaml with KEY=VALUE overrides."""
    base = OmegaConf.load(REPO / "conf" / "semi" / "default.yaml")
    return SemiConfig.from_dict(OmegaConf.to_container(OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))))


@cache
def recommend_config() -> DictConfig:
    """conf/recommend.yaml, read once: the checks that ask about `synth recommend`'s own choices start from it."""
    return OmegaConf.load(REPO / "conf" / "recommend.yaml")


def recommend_semi() -> SemiConfig:
    """`synth recommend`'s first semi candidate, read from conf/recommend.yaml (search.semi[0]: weak light, aligned),
    which the consistency-training checks start from."""
    return semi_candidates(recommend_config().search.semi)[0]


def recommend_draw(rest: ImageSet, n: int, seed: int) -> tuple[ImageSet, ImageSet, TrainConfig]:
    """A draw as `synth recommend` makes it: n labelled images per class from `rest`, the pool from the rest of it
    (labels hidden, at most conf/recommend.yaml's `max_unlabelled`, by `search_pool`'s seeded stream), recommend's
    final TrainConfig: what the checks that ask about recommend's own choices train on."""
    recommend = recommend_config()
    labelled, unlabelled = draw_budget(rest, n_per_class=n, seed=seed)  # unlabelled: labels hidden
    pool = search_pool(OmegaConf.create({"use_unlabelled": True, "max_unlabelled": recommend.max_unlabelled,
                                         "seed": seed}), unlabelled)
    return labelled, pool, TrainConfig(**OmegaConf.to_container(recommend.train))


def write_results(stem: Path, command: str, semi: SemiConfig, rows: list[dict], markdown: str) -> None:
    """`stem`.json (command, semi settings, rows) and `stem`.md (the readable table)."""
    stem.with_suffix(".json").write_text(json.dumps({"command": command, "semi": semi.to_dict(), "rows": rows},
                                                    indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(f"wrote {stem}.json / .md")


def check_main(name: str, doc: str, run_draw: Callable[..., dict],
               markdown: Callable[[list[dict], str], str], ns: Sequence[int], arms: Sequence[str] = (),
               bench_arms: Sequence[str] = ()) -> None:
    """The command line the per-draw checks share (`<name>.py`).

    Either run draws, one JSON row per (n, seed) printed and appended to `--out` (so two processes can split
    the seeds and a killed run keeps what it finished), or, with `--from-jsonl`, write
    results/<name>_<data>.json / .md from saved rows, with the command that reproduces them.

    With `arms`, `--arms` picks which of them a run computes (`run_draw(..., arms=...)`), so an arm added later
    runs on the same draws without recomputing the others; `--from-jsonl` merges the rows of one draw.

    With `bench_arms` (preset arms the check can run, the first the default), `--arm` picks one
    (`run_draw(..., bench_arm=...)`); another arm's results are written to results/<name>_<arm>_<data>.*, so one
    check script serves each arm's registered rule without overwriting the default arm's committed files.
    """
    import torch

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--ns", type=int, nargs="+", default=list(ns))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--out", type=Path, help="append one JSON row per draw here")
    ap.add_argument("--from-jsonl", type=Path, nargs="+",
                    help="write the results files from saved rows (JSON lines, or a committed results .json)")
    if arms:
        ap.add_argument("--arms", nargs="+", choices=list(arms), default=list(arms), help="compute only these arms")
    if bench_arms:
        ap.add_argument("--arm", choices=list(bench_arms), default=bench_arms[0], help="the preset arm to check")
    args = ap.parse_args()
    other = bench_arms and args.arm != bench_arms[0]
    if args.from_jsonl:
        rows = merge_rows({"data": args.data, **r} for p in args.from_jsonl for r in saved_rows(p))
        stem = RESULTS / (f"{name}_{args.arm}_{args.data}" if other else f"{name}_{args.data}")
        command = (f"python benchmarks/{name}.py --data {args.data}{f' --arm {args.arm}' if other else ''} --ns {' '.join(str(n) for n in sorted({r['n'] for r in rows}))}"
                   f" --seeds {' '.join(str(s) for s in sorted({r['seed'] for r in rows}))}")
        stem.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
        stem.with_suffix(".md").write_text(markdown(rows, command))
        print(f"wrote {stem}.json / .md")
        return
    torch.set_num_threads(1)
    dev, rest = dev_split(args.data)  # once: the split is fixed, every draw reads the same dev images
    kw = {"arms": tuple(args.arms)} if arms else {}
    if bench_arms:
        kw["bench_arm"] = args.arm
    for n in args.ns:
        for seed in args.seeds:
            row = run_draw(args.data, dev, rest, n, seed, **kw)
            print(json.dumps(row), flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")


def saved_rows(path: Path) -> list[dict]:
    """The rows in `path`: JSON lines as a run's `--out` appends them, or a committed results file
    (`{"command": ..., "rows": [...]}`), so new draws merge with committed ones without a hand conversion."""
    if path.suffix == ".json":
        return list(json.loads(path.read_text())["rows"])
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def merge_rows(rows: Iterable[dict]) -> list[dict]:
    """One row per draw (n, seed), sorted: rows of the same draw from several runs (different arms) merged,
    their seconds added."""
    merged: dict[tuple[int, int], dict] = {}
    for r in rows:
        key = (r["n"], r["seed"])
        if key in merged:
            sec = merged[key].get("sec", 0.0) + r.get("sec", 0.0)
            merged[key].update(r)
            merged[key]["sec"] = round(sec, 1)
        else:
            merged[key] = dict(r)
    return [merged[k] for k in sorted(merged)]


def _mean_cell(values: Sequence[float], draws: int) -> str:
    """A mean accuracy cell of `draw_table`: over the draws that hold the arm, saying so when that is not all."""
    if not values:
        return "–"
    return f"{100 * np.mean(values):.1f}" + (f" ({len(values)} of {draws})" if len(values) < draws else "")


def mean_se(points: Sequence[float]) -> str:
    """`+m.mm ± s.ss` over draws (the SE is nan for one draw): how the checks' decision rules read a difference."""
    se = np.std(points, ddof=1) / np.sqrt(len(points)) if len(points) > 1 else float("nan")
    return f"{np.mean(points):+.2f} ± {se:.2f}"


def pooled_by_budget(rows: list[dict], diffs: Sequence[tuple[str, str, str]], reads: str) -> str:
    """Markdown: per budget and `(label, a, b)`, the mean ± SE over that budget's draws of a - b in points, under a
    line saying which of them the check's registered rule `reads`. A difference reads the draws that hold both arms
    (an arm added to a check later runs on its own draws), and is left out where none does."""
    bullets = [f"- n = {n}, {label}: {mean_se([100 * (r[a] - r[b]) for r in rs])} points over {len(rs)} draws"
               f" (seeds {', '.join(str(r['seed']) for r in rs)})"
               for n in sorted({r["n"] for r in rows}) for label, a, b in diffs
               for rs in [[r for r in rows if r["n"] == n and a in r and b in r]] if rs]
    return f"\nMean ± SE over the draws of each budget ({reads}):\n\n" + "\n".join(bullets) + "\n"


def draw_table(rows: list[dict], command: str, title: str, arms: Sequence[str],
               diffs: Sequence[tuple[str, str, str]]) -> str:
    """Markdown for a per-draw check: mean dev accuracy per arm and budget, then for each `(label, a, b)` the
    per-draw difference a - b in points (the mean hides whether a lever helps on every draw). An arm added to a
    check later runs on some draws only: its mean reads those draws, with how many ("78.7 (4 of 8)"); a budget
    none of whose draws holds it reads "–"."""
    by = defaultdict(list)
    for r in rows:
        by[r["n"]].append(r)
    lines = [f"# {title}: {rows[0]['data']} dev split\n", f"Command: `{command}`\n",
             "Dev accuracy (%), mean over draws; then per draw, the differences named, in points.\n",
             "| n | draws | " + " | ".join(arms) + "".join(f" | {label} per draw" for label, _, _ in diffs) + " |",
             "|---" * (len(arms) + 2 + len(diffs)) + "|"]
    for n in sorted(by):
        rs = by[n]
        cells = [_mean_cell([r[a] for r in rs if a in r], len(rs)) for a in arms]
        cells += [", ".join(f"{100 * (r[a] - r[b]):+.1f}" for r in rs if a in r and b in r) or "–" for _, a, b in diffs]
        lines.append(f"| {n} | {len(rs)} (seeds {', '.join(str(r['seed']) for r in rs)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
