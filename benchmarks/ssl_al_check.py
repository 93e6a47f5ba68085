"""Quick check of the label-efficiency levers, SSL init and active learning (digits; Fashion SSL only).

Not the benchmark harness (that one owns the arms, budgets and CIs); a small, honest
measurement that the components work and roughly how much they give, CPU-sized (1 thread).

Protocol (unlabelled-pool): the SSL encoder is trained once on the whole training pool
with labels hidden; every arm's labels come from the pool only; the fixed 500-image test
set is used for reporting, never for choices. Active learning starts from 1 random image
per class and labels batches of 10 chosen by margin; the oracle reveals pool labels kept
aside. One AL run to n=10/class yields the n=2 and n=5 points on the way (the run is
deterministic per round, so a shorter run would pick the same images).

    PYTHONPATH=. python benchmarks/ssl_al_check.py --seeds 0 1
    PYTHONPATH=. python benchmarks/ssl_al_check.py --dataset fashion_mnist --seeds 0 --ns 5 10 20 \\
        --ref-ns 5 10 20 50 100 --skip-al
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from synth.active import SimulatedOracle, active_learning
from synth.config import build
from synth.data import ImageSet, Source, draw_budget
from synth.ssl import fine_tune, linear_probe, load_ssl_config, train_encoder
from synth.training import TrainConfig, accuracy, train_classifier

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def multiplier(acc: float, ref_n: list[int], ref_acc: list[float], n: int) -> str:
    """Labels/class real-only needs for `acc` (interpolated on log n), divided by n."""
    order = np.argsort(ref_acc)
    xs, ys = np.asarray(ref_acc)[order], np.log(np.asarray(ref_n, float))[order]
    if acc <= xs[0]:
        return f"<={np.exp(ys[0]) / n:.1f}" if acc < xs[0] else f"{np.exp(ys[0]) / n:.1f}"
    if acc > xs[-1]:
        return f">{np.exp(ys[-1]) / n:.1f}"
    return f"{float(np.exp(np.interp(acc, xs, ys))) / n:.1f}"


def run_seed(source: Source, encoder, ns: list[int], ref_ns: list[int], seed: int, cfg: TrainConfig,
             with_al: bool = True) -> dict:
    test, truth = source.test, source.pool
    row: dict = {"seed": seed, "real": {}, "ssl_finetune": {}, "ssl_probe": {}}
    for n in sorted(set(ns) | set(ref_ns)):
        labelled = source.splits(n_per_class=n, seed=seed).labelled
        row["real"][n] = accuracy(train_classifier(labelled, cfg, seed=seed), test)
        if n in ns:
            row["ssl_finetune"][n] = accuracy(fine_tune(encoder, labelled, cfg, seed=seed), test)
            row["ssl_probe"][n] = accuracy(linear_probe(encoder, labelled, seed=seed), test)
    if not with_al:
        return row
    initial, _ = draw_budget(truth, n_per_class=1, seed=seed)
    pool = truth.without_labels()
    milestones = {n * truth.n_classes: n for n in ns}
    rounds = (max(ns) * truth.n_classes - len(initial)) // 10

    def curve(name: str, extra=None):
        def on_round(r: int, model, labelled: ImageSet) -> None:
            n = milestones.get(len(labelled))
            if n is not None:  # reporting only: nothing in the loop sees these numbers
                row.setdefault(name, {})[n] = accuracy(model, test)
                if extra:
                    row.setdefault(name + "_finetune", {})[n] = accuracy(extra(labelled), test)
        return on_round

    def real_fn(data: ImageSet, s: int):
        return train_classifier(data, cfg, seed=s)

    for strategy in ("margin", "random"):
        active_learning(initial, pool, SimulatedOracle(truth), rounds=rounds, batch_size=10, train_fn=real_fn,
                        strategy=strategy, seed=seed, on_round=curve(f"al_{strategy}"))
    # SSL + AL: rounds select with the (cheap) linear probe on the encoder; at each milestone
    # both the probe and a fine-tune on the same actively chosen labels are reported.
    active_learning(initial, pool, SimulatedOracle(truth), rounds=rounds, batch_size=10,
                    train_fn=lambda d, s: linear_probe(encoder, d, seed=s), strategy="margin", seed=seed,
                    on_round=curve("ssl_al_probe", extra=lambda d: fine_tune(encoder, d, cfg, seed=seed)))
    return row


def table(rows: list[dict], ns: list[int], ref_ns: list[int]) -> str:
    arms = [a for a in ("real", "ssl_finetune", "ssl_probe", "al_random", "al_margin", "ssl_al_probe",
                        "ssl_al_probe_finetune") if a in rows[0]]
    ref_acc = [float(np.mean([r["real"][n] for r in rows])) for n in ref_ns]
    lines = ["| arm | " + " | ".join(f"n={n}/class acc % (x real)" for n in ns) + " |",
             "|---|" + "---|" * len(ns)]
    for arm in arms:
        cells = []
        for n in ns:
            vals = [r[arm][n] for r in rows]
            m = float(np.mean(vals))
            cells.append(f"{100 * m:.1f} ± {100 * np.std(vals):.1f} ({multiplier(m, ref_ns, ref_acc, n)}x)")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    ref = ", ".join(f"n={n}: {100 * a:.1f}" for n, a in zip(ref_ns, ref_acc, strict=True))
    return "\n".join(lines) + f"\n\nReal-only reference for the multipliers (mean over seeds): {ref}.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--ns", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--ref-ns", type=int, nargs="+", default=[2, 5, 10, 20, 50])
    parser.add_argument("--dataset", default="digits", help="conf/data/<name>.yaml (and conf/ssl/<name>.yaml)")
    parser.add_argument("--ssl-config", default=None, help="default: conf/ssl/<dataset>.yaml")
    parser.add_argument("--skip-al", action="store_true", help="SSL arms only (Fashion-MNIST: AL rounds are slow)")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/ssl_al_<dataset>")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    source: Source = build(OmegaConf.load(REPO / "conf" / "data" / f"{args.dataset}.yaml"), "data")
    ssl_cfg = load_ssl_config(args.ssl_config or REPO / "conf" / "ssl" / f"{args.dataset}.yaml")
    encoder = train_encoder(source.pool.without_labels(), ssl_cfg, seed=0, progress=False)
    print(f"encoder: {encoder.pretrain_info['seconds']} s, NT-Xent {encoder.pretrain_info['loss_first']:.2f} -> "
          f"{encoder.pretrain_info['loss_last']:.2f}", flush=True)
    cfg = TrainConfig()
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(source, encoder, args.ns, args.ref_ns, seed, cfg, with_al=not args.skip_al))
        print(json.dumps(rows[-1]), flush=True)
    md = table(rows, args.ns, args.ref_ns)
    total = round(time.perf_counter() - started, 1)
    out = Path(args.out or RESULTS / f"ssl_al_{args.dataset}")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"dataset": args.dataset, "test_images": len(source.test), "pool_images": len(source.pool),
            "seeds": args.seeds, "ns": args.ns, "ssl": encoder.pretrain_info, "train": vars(cfg),
            "total_seconds": total, "command": " ".join(sys.argv), "threads": 1, "note": "timings on a shared 2-core machine (~8 jobs)"}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    command = "PYTHONPATH=. python benchmarks/ssl_al_check.py " + " ".join(sys.argv[1:])
    out.with_suffix(".md").write_text(f"# SSL + active learning check ({args.dataset})\n\nCommand: `{command}` "
                                      f"({total} s wall on 1 thread, shared 2-core machine)\n\n{md}")
    print(md, f"total {total} s", sep="\n")


if __name__ == "__main__":
    main()
