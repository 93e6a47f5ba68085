"""Diagnostic, not a design check: do the Fashion-MNIST dev split and the test split disagree, or the draws?

Dev-split checks saw the x4 default ~3 points above real only at 20 labels per class on Fashion-MNIST, while the
harness's test cells saw ~0 (docs/recipe_log.md). Two explanations: the dev images differ from the test images,
or the labelled draws differ (the checks draw from the pool minus the dev images with their own seeds; the
harness draws from the whole pool with its seeds 0-2). This trains real only and the x4 default on the
harness's own n = 20 draws and scores each model on both splits. It reads the test split to compare splits
only: nothing is chosen from it. Some of the harness's labelled images are dev images (the harness does not
know the dev split); their count is in each row, and they lift the dev score by at most count / 2000.

    python benchmarks/dev_test_gap.py --seeds 0 1 --out a.jsonl   # beside --seeds 2 --out b.jsonl
    python benchmarks/dev_test_gap.py --from-jsonl a.jsonl b.jsonl   # -> results/dev_test_gap_fashion_mnist.*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from dev_split import REPO, RESULTS, dev_split
from omegaconf import OmegaConf

from synth.bench.protocol import split_for
from synth.config import build
from synth.recipe import preset
from synth.training import TrainConfig, predict_proba, train_classifier

N = 20


def run_seed(source, dev, seed: int) -> list[dict]:
    splits = split_for(source, N, seed)
    policy = preset("strong@p0.5+ls0.1+x4")
    arms = {"real": (TrainConfig(), {}),
            "x4 default": (policy.train_config(TrainConfig()), {"augment": policy.build(), "regularise": policy.regularisers()})}
    overlap = len(set(dev.ids) & set(splits.labelled.ids))
    rows = []
    for arm, (cfg, extra) in arms.items():
        model = train_classifier(splits.labelled, cfg, seed=seed, **extra)
        acc = {name: float((predict_proba(model, s.images).argmax(1) == s.labels).mean())
               for name, s in (("test", splits.test), ("dev", dev))}
        rows.append({"seed": seed, "arm": arm, **acc, "dev_images_labelled": overlap})
    return rows


def markdown(rows: list[dict], command: str) -> str:
    lines = ["# Fashion-MNIST: the same models on the dev and the test split (n = 20, the harness's draws)\n",
             f"Command: `{command}`\n", "| seed | arm | test | dev | dev images among the labelled |", "|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['arm']} | {100 * r['test']:.1f} | {100 * r['dev']:.1f} | {r['dev_images_labelled']} |"
              for r in sorted(rows, key=lambda r: (r["seed"], r["arm"] != "real"))]
    for arm in ("real", "x4 default"):
        rs = [r for r in rows if r["arm"] == arm]
        lines.append(f"\n{arm}: mean test {100 * np.mean([r['test'] for r in rs]):.1f}, "
                     f"dev {100 * np.mean([r['dev'] for r in rs]):.1f} over {len(rs)} draws.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--from-jsonl", type=Path, nargs="+")
    args = ap.parse_args()
    if args.from_jsonl:
        rows = [json.loads(line) for p in args.from_jsonl for line in p.read_text().splitlines() if line.strip()]
        command = f"python benchmarks/dev_test_gap.py --seeds {' '.join(str(s) for s in sorted({r['seed'] for r in rows}))}"
        stem = RESULTS / "dev_test_gap_fashion_mnist"
        stem.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
        stem.with_suffix(".md").write_text(markdown(rows, command))
        print(f"wrote {stem}.json / .md")
        return
    torch.set_num_threads(1)
    source = build(OmegaConf.load(REPO / "conf" / "data" / "fashion_mnist.yaml"), "data")
    dev, _ = dev_split("fashion_mnist")
    for seed in args.seeds:
        for row in run_seed(source, dev, seed):
            print(json.dumps(row), flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
