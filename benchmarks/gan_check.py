"""Measure the GAN on digits with 10 labelled images per class (issue 3 acceptance numbers).

- label fidelity: a SmallCNN trained on the FULL digits pool (a judge only, never used by
  the GAN) classifies the samples; share that carry their requested class (goal >= 95 %);
- within-class diversity of samples relative to the 10 real labelled images (goal >= 0.7);
- novelty: NN distance sample -> labelled set relative to unlabelled real -> labelled set;
- sampling throughput with torch threads = 2 (goal >= 10,000 img/s) and 1;
- training time. The GAN sees only the 100 labelled images.

    python benchmarks/gan_check.py                       # defaults of conf/generator/gan.yaml
    python benchmarks/gan_check.py --set g_channels=32 --set steps=2000 --tag small

Writes benchmarks/results/gan_<tag>.json, .md and .png (a sample grid, one row per class).
Timings are taken on a shared 2-core machine under contention from other jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from generators.gan import GANGenerator
from synth.data import DigitsSource
from synth.neighbors import novelty_ratio, within_class_diversity
from synth.training import TrainConfig, accuracy, predict_proba, train_classifier
from synth.viz import save_class_grid

RESULTS = Path(__file__).resolve().parent / "results"
CONF = Path(__file__).resolve().parent.parent / "conf" / "generator" / "gan.yaml"


def gan_kwargs(overrides: list[str]) -> dict:
    cfg = yaml.safe_load(CONF.read_text())
    cfg.pop("_target_"), cfg.pop("name")
    for item in overrides:
        key, _, value = item.partition("=")
        cfg[key] = yaml.safe_load(value)
    return cfg


def throughput(gen: GANGenerator, threads: int, n: int = 20000, repeats: int = 3) -> dict:
    """Median-of-`repeats` images/second for n samples at `threads` torch threads, with the load."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen.sample(labels=np.zeros(256, np.int64), seed=99)  # warm-up
        load = os.getloadavg()[0]
        rates = []
        for r in range(repeats):
            labels = np.arange(n) % len(gen.class_names)
            t0 = time.perf_counter()
            gen.sample(labels=labels, seed=100 + r)
            rates.append(n / (time.perf_counter() - t0))
        return {"img_s_median": round(float(np.median(rates))), "img_s_all": [round(x) for x in rates],
                "load_1min_before": round(load, 2), "load_1min_after": round(os.getloadavg()[0], 2)}
    finally:
        torch.set_num_threads(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], help="override a gan.yaml key, e.g. steps=2000")
    parser.add_argument("--seed", type=int, default=0, help="labelled-subset and GAN seed")
    parser.add_argument("--per-class", type=int, default=100, help="samples per class to judge")
    parser.add_argument("--tag", default="digits_n10")
    parser.add_argument("--no-speed", action="store_true", help="skip the sampling-throughput timing (quick sweeps)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    source = DigitsSource(test_size=500)
    splits = source.splits(n_per_class=10, seed=args.seed)
    labelled = splits.labelled
    kwargs = {**gan_kwargs(args.set), "seed": args.seed, "progress": False}

    with tempfile.TemporaryDirectory() as work:
        kwargs["work_dir"] = work
        t0 = time.perf_counter()
        gen = GANGenerator(**kwargs).fit(labelled)
        train_s = time.perf_counter() - t0
    kwargs.pop("work_dir")

    t0 = time.perf_counter()
    judge = train_classifier(source.pool, TrainConfig(), seed=0)  # full pool: judge only
    judge_s = time.perf_counter() - t0

    samples = gen.sample(args.per_class, seed=1)
    pred = predict_proba(judge, samples.images).argmax(1)
    per_class = [float((pred[samples.labels == c] == c).mean()) for c in range(labelled.n_classes)]
    real_div = within_class_diversity(labelled.images, labelled.labels)
    unl = splits.unlabelled.images[:1000]
    result = {
        "data": f"digits 8x8, 10 labelled per class (splits seed {args.seed})",
        "gan_config": kwargs,
        "label_fidelity": float((pred == samples.labels).mean()),
        "label_fidelity_min_class": min(per_class),
        "label_fidelity_per_class": [round(v, 3) for v in per_class],
        "diversity_vs_real": within_class_diversity(samples.images, samples.labels) / real_div,
        "novelty_vs_labelled": novelty_ratio(samples.images, labelled.images, unl),
        "judge_accuracy_on_labelled": accuracy(judge, labelled),
        "train_seconds": round(train_s, 1),
        "judge_train_seconds": round(judge_s, 1),
        "throughput_threads2": None if args.no_speed else throughput(gen, 2),
        "throughput_threads1": None if args.no_speed else throughput(gen, 1),
        "fit_info": {k: v for k, v in gen.fit_info.items() if k != "work_dir"},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "command": "python benchmarks/gan_check.py " + " ".join(f"--set {s}" for s in args.set) + f" --seed {args.seed} --tag {args.tag}"
        + (" --no-speed" if args.no_speed else ""),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"gan_{args.tag}"  # not Path.with_suffix: a tag may contain dots
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1))
    save_class_grid(RESULTS / f"{stem}.png", samples.images, samples.labels, labelled.class_names)
    (RESULTS / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


def _speed(t: dict | None) -> str:
    if t is None:
        return "not measured (--no-speed)"
    return f"{t['img_s_median']:,} (load {t['load_1min_before']} -> {t['load_1min_after']})"


def markdown(r: dict) -> str:
    rows = [
        ("label fidelity (judge: SmallCNN on full pool)", f"{r['label_fidelity']:.3f} (worst class {r['label_fidelity_min_class']:.2f})", ">= 0.95"),
        ("within-class diversity / real", f"{r['diversity_vs_real']:.3f}", ">= 0.7"),
        ("novelty (NN dist to labelled, / real's)", f"{r['novelty_vs_labelled']:.3f}", "-"),
        ("sampling img/s, 2 threads (median of 3)", _speed(r["throughput_threads2"]), ">= 10,000"),
        ("sampling img/s, 1 thread (median of 3)", _speed(r["throughput_threads1"]), "-"),
        ("training seconds (1 thread)", f"{r['train_seconds']}", "-"),
    ]
    curve = ", ".join(f"{s}: {d:.2f}" for s, d in r["fit_info"]["diversity_curve"])
    lines = [
        f"# GAN on {r['data']}",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        f"Diversity curve (step: EMA diversity / real): {curve}",
        f"Stop reason: {r['fit_info']['stop_reason']}; steps done {r['fit_info']['steps_done']}.",
        "Data seen by the GAN (strict protocol): the labelled images only; with cls_weight > 0 its frozen "
        f"class-consistency teacher is trained on those same images (cls_weight={r['gan_config'].get('cls_weight', 0)}, "
        f"ac_weight={r['gan_config'].get('ac_weight', 0)}, ds_weight={r['gan_config'].get('ds_weight', 0)}). "
        "The judge is trained on the full pool and used only to measure.",
        f"Shared 2-core machine, 1-min load average {r['load_average_1min']} at the end: timings are under contention.",
        f"Command: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
