"""Diffusion generators on digits with 10 labelled images per class: the issue-3 numbers.

    python benchmarks/diffusion_check.py                      # ~10 CPU minutes (both generators)
    python benchmarks/diffusion_check.py --train-steps 600 --no-img2img   # quicker look

Both generators are built from the shipped configs (conf/generator/{diffusion,img2img}.yaml), so
the numbers describe the defaults; flags override only what they name. Training starts from a
fresh work directory (a reused one would resume and skip the fit).

Measures, for `DiffusionGenerator` fitted on the 100 labelled images only:
  - training time (one thread) and the novelty curve memorisation control saw;
  - label fidelity: share of samples a judge assigns to their conditioning class. The judge is
    a SmallCNN trained on the FULL digits pool; it only judges, nothing is tuned against it;
  - novelty = novelty_ratio(samples, labelled train, held-out real images from the unlabelled
    pool) and within-class diversity relative to real labelled images;
  - DDIM-25 + guidance sampling throughput at 8x8 with torch threads = 2 (the machine is
    shared by several engineers: the load average is recorded next to it);
  - the same quality numbers per sampling precision (`--sample-dtypes`: bf16 is the fast path);
and, for `Img2ImgGenerator` (prior on labelled + unlabelled), label preservation per strength
(`--strengths`), from which the default strength is chosen (largest keeping >= 95 % of labels).
The test set is never touched except to report the judge's own accuracy.

Writes benchmarks/results/diffusion_check.{json,md} and diffusion_samples.png (+ img2img grid).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generators.diffusion import DiffusionGenerator, Img2ImgGenerator  # noqa: E402
from synth.config import build  # noqa: E402
from synth.data import DigitsSource  # noqa: E402
from synth.neighbors import novelty_ratio, within_class_diversity  # noqa: E402
from synth.training import TrainConfig, accuracy, train_classifier  # noqa: E402
from synth.viz import save_class_grid  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
KEEP_LABELS = 0.95  # img2img: the default strength is the largest one keeping at least this share of labels


def shipped(name: str, **overrides):
    """The generator as conf/generator/<name>.yaml builds it, with `overrides` (None values skipped)."""
    cfg = OmegaConf.load(REPO / "conf" / "generator" / f"{name}.yaml")
    for key, value in overrides.items():
        if value is not None:
            cfg[key] = value
    return build(cfg, "generator")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def fidelity(judge, samples) -> float:
    return accuracy(judge, samples)


def throughput(gen, n: int, threads: int) -> dict:
    """img/s of gen.sample for n images with `threads` torch threads (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen.sample(labels=np.zeros(8, np.int64), seed=0)  # warm-up
        load = os.getloadavg()[0]
        _, sec = timed(lambda: gen.sample(labels=np.arange(n) % 10, seed=1))
    finally:
        torch.set_num_threads(before)
    return {"images": n, "threads": threads, "seconds": round(sec, 2), "img_per_s": round(n / sec, 1),
            "loadavg_1min_before": round(load, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-steps", type=int, default=None, help="default: the config's train_steps")
    ap.add_argument("--guidance", type=float, nargs="+", default=[2.0])
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--throughput-n", type=int, default=1024)
    ap.add_argument("--img2img-steps", type=int, default=None, help="default: the config's train_steps")
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    ap.add_argument("--sample-dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--no-img2img", action="store_true")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override diffusion config keys, e.g. --set block_out_channels=[24,48,48] (results go to --out)")
    ap.add_argument("--out", default="diffusion_check", help="results name under benchmarks/results (no extension)")
    ap.add_argument("--work-dir", default=None, help="default: a fresh temporary directory")
    args = ap.parse_args()
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="diffusion_check_")
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    source = DigitsSource(test_size=500)
    splits = source.splits(n_per_class=10, seed=0)
    labelled = splits.labelled
    heldout = splits.unlabelled.images[:500]  # fresh real images for the novelty reference (never the test set)
    judge, judge_sec = timed(lambda: train_classifier(source.pool, TrainConfig(), seed=0))
    result: dict = {
        "protocol": "digits, 10 labelled/class (splits seed 0); judge = SmallCNN on the full pool",
        "judge": {"test_accuracy": round(accuracy(judge, source.test), 4), "train_seconds": round(judge_sec, 1)},
        "host": platform.node(), "torch_threads_default": 1,
        "command": "python " + " ".join(["benchmarks/diffusion_check.py", *sys.argv[1:]]),
    }

    overrides = OmegaConf.to_container(OmegaConf.from_dotlist(args.set))
    gen = shipped("diffusion", train_steps=args.train_steps, work_dir=f"{args.work_dir}/diffusion", **overrides)
    assert isinstance(gen, DiffusionGenerator)
    _, fit_sec = timed(lambda: gen.fit(labelled))
    info = gen.fit_info
    real_div = within_class_diversity(labelled.images, labelled.labels)
    per_guidance = {}
    for g in args.guidance:
        gen.config["guidance_scale"] = g
        samples, sec = timed(lambda: gen.sample(args.per_class, seed=123))
        per_guidance[str(g)] = {
            "fidelity": round(fidelity(judge, samples), 4),
            "novelty": round(novelty_ratio(samples.images, labelled.images, heldout), 4),
            "diversity_vs_real": round(within_class_diversity(samples.images, samples.labels) / real_div, 4),
            "sample_seconds_1thread": round(sec, 2),
        }
        print(f"guidance {g}: {per_guidance[str(g)]}", flush=True)
        if g == 2.0 and not args.set:
            save_class_grid(RESULTS / "diffusion_samples.png", samples.images, samples.labels, labelled.class_names)
    gen.config["guidance_scale"] = 2.0
    per_dtype = {}
    shipped_dtype = gen.config["sample_dtype"]
    for dtype in args.sample_dtypes:
        gen.config["sample_dtype"] = dtype
        samples, sec = timed(lambda: gen.sample(args.per_class, seed=123))
        per_dtype[dtype] = {
            "fidelity": round(fidelity(judge, samples), 4),
            "novelty": round(novelty_ratio(samples.images, labelled.images, heldout), 4),
            "diversity_vs_real": round(within_class_diversity(samples.images, samples.labels) / real_div, 4),
            "sample_seconds_1thread": round(sec, 2),
        }
        print(f"sample_dtype {dtype}: {per_dtype[dtype]}", flush=True)
    gen.config["sample_dtype"] = shipped_dtype
    result["diffusion"] = {
        "config": {k: gen.config[k] for k in ("block_out_channels", "train_steps", "batch_size", "lr", "augment", "sample_steps", "min_novelty", "eval_every", "sample_dtype")},
        "parameters": info["parameters"], "fit_seconds_1thread": round(fit_sec, 1),
        "steps_trained": info["steps"], "stopped_early": info["stopped_early"],
        "selected_step": info["selected_step"], "selected_novelty_loo": info["selected_novelty"],
        "novelty_curve_loo": info["novelty_curve"], "by_guidance": per_guidance,
        "by_sample_dtype_guidance_2": per_dtype,
        "throughput_ddim25_cfg_8x8": throughput(gen, args.throughput_n, threads=2),
    }
    print(json.dumps(result["diffusion"]["throughput_ddim25_cfg_8x8"]), flush=True)

    if not args.no_img2img:
        result["img2img"] = run_img2img(args, splits, judge)
    result["total_seconds"] = round(time.perf_counter() - t_start, 1)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"{args.out}.md").write_text(markdown(result))
    print(markdown(result))


def run_img2img(args, splits, judge) -> dict:
    gen = shipped("img2img", train_steps=args.img2img_steps, work_dir=f"{args.work_dir}/img2img")
    assert isinstance(gen, Img2ImgGenerator)
    _, fit_sec = timed(lambda: gen.fit(splits.labelled, splits.unlabelled))
    out = {"train_images": gen.fit_info["train_images"], "fit_seconds_1thread": round(fit_sec, 1),
           "steps": gen.fit_info["steps"], "by_strength": {}}
    for s in args.strengths:
        gen.config["strength"] = s
        samples, sec = timed(lambda: gen.sample(args.per_class, seed=123))
        parents = np.array([np.flatnonzero(splits.labelled.ids == p)[0] for p in samples.parent_ids])
        out["by_strength"][str(s)] = {
            "label_kept": round(fidelity(judge, samples), 4),
            "novelty_vs_labelled": round(novelty_ratio(samples.images, splits.labelled.images, splits.unlabelled.images[:500]), 4),
            "mean_abs_change_from_parent": round(float(np.abs(samples.images.astype(float) - splits.labelled.images[parents]).mean()), 2),
            "img_per_s_1thread": round(len(samples) / sec, 1),
        }
        print(f"img2img strength {s}: {out['by_strength'][str(s)]}", flush=True)
        if s == 0.3:
            save_class_grid(RESULTS / "diffusion_img2img_samples.png", samples.images, samples.labels, splits.labelled.class_names)
    kept = [float(s) for s, m in out["by_strength"].items() if m["label_kept"] >= KEEP_LABELS]
    out["largest_strength_keeping_95pct"] = max(kept) if kept else None
    out["sample_dtype"] = gen.config["sample_dtype"]
    return out


def markdown(r: dict) -> str:
    d = r["diffusion"]
    lines = [
        "# Diffusion on digits, 10 labelled per class", "",
        f"Judge (SmallCNN on the full pool) test accuracy: {r['judge']['test_accuracy']:.3f}. "
        f"Shared 2-core machine, timings under contention.", "",
        f"DiffusionGenerator: {d['parameters']:,} params, {d['steps_trained']} steps in {d['fit_seconds_1thread']} s "
        f"(1 thread); selected step {d['selected_step']} (leave-one-out novelty {d['selected_novelty_loo']}).", "",
        "| guidance | label fidelity | novelty | within-class diversity / real |", "|---|---|---|---|",
    ]
    for g, m in d["by_guidance"].items():
        lines.append(f"| {g} | {m['fidelity']:.3f} | {m['novelty']:.3f} | {m['diversity_vs_real']:.3f} |")
    if d.get("by_sample_dtype_guidance_2"):
        lines += ["", f"Sampling precision (guidance 2; shipped: `sample_dtype: {d['config']['sample_dtype']}`):", "",
                  "| sample_dtype | label fidelity | novelty | diversity / real | sampling s (1 thread) |", "|---|---|---|---|---|"]
        for k, m in d["by_sample_dtype_guidance_2"].items():
            lines.append(f"| {k} | {m['fidelity']:.3f} | {m['novelty']:.3f} | {m['diversity_vs_real']:.3f} | {m['sample_seconds_1thread']} |")
    t = d["throughput_ddim25_cfg_8x8"]
    lines += ["", f"DDIM-25 + guidance at 8x8, {t['threads']} threads: **{t['img_per_s']} img/s** "
              f"({t['images']} images, load average {t['loadavg_1min_before']} before).", "",
              "Novelty curve seen by memorisation control (leave-one-out reference): "
              + ", ".join(f"{c['step']}: {c['novelty']:.2f}" for c in d["novelty_curve_loo"])]
    if "img2img" in r:
        i = r["img2img"]
        lines += ["", f"Img2ImgGenerator: prior on {i['train_images']} images (labelled + unlabelled), {i['steps']} steps "
                  f"in {i['fit_seconds_1thread']} s.", "", "| strength | label kept | novelty vs labelled | mean |change| | img/s (1 thread) |",
                  "|---|---|---|---|---|"]
        for s, m in i["by_strength"].items():
            lines.append(f"| {s} | {m['label_kept']:.3f} | {m['novelty_vs_labelled']:.3f} | {m['mean_abs_change_from_parent']} | {m['img_per_s_1thread']} |")
        lines += ["", f"Largest strength keeping >= 95 % of labels: **{i['largest_strength_keeping_95pct']}** "
                  f"(sample_dtype {i['sample_dtype']})."]
    lines += ["", f"Total wall time: {r['total_seconds']} s. Command: `{r['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
