"""Does the combined gap score rank synthetic sets by their downstream usefulness?

On digits with 10 labelled images per class, build synthetic sets of deliberately
different usefulness (procedural presets at several strengths, exact/noisy copies,
held-out real pool images with their true labels, wrong-label sets, pure noise, heavy
blur, and learned generators if registered), then for each set measure:

- downstream gain: test accuracy of SmallCNN trained on labelled + set (synthetic_share
  0.5) minus real-only, averaged over seeds. The test set is used here to MEASURE the
  gain, which is the point of a validity study; no score parameter is tuned on it.
- every set-level metric and the combined score (mean per-sample gap), computed only
  from the labelled images and the unlabelled pool.

Reports the Spearman rank correlation of each metric with the gain.

    python benchmarks/score_validity.py            # ~5 min on one CPU thread
    python benchmarks/score_validity.py --speed    # 10k vs 10k Fashion-MNIST timing, 2 and 1 threads
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # repo root: generators/, tests/

from generators import registry
from synth.data import DigitsSource, ImageSet
from synth.scoring.features import EXTRACTOR_TRAIN, judge_augment, train_extractor
from synth.scoring.pipeline import score_images
from synth.training import TrainConfig, accuracy, train_classifier

RESULTS = Path(__file__).resolve().parent / "results"
N_PER_CLASS = 50  # synthetic images per class in every set

LIGHT = [{"name": "Affine", "scale": [0.92, 1.08], "rotate": [-10, 10], "translate_percent": [-0.06, 0.06],
          "shear": [-6, 6], "p": 1.0}, {"name": "RandomBrightnessContrast", "brightness_limit": 0.1,
          "contrast_limit": 0.1, "p": 0.5}, {"name": "GaussNoise", "std_range": [0.01, 0.04], "p": 0.3}]
STRONG = [{"name": "Affine", "scale": [0.85, 1.15], "rotate": [-15, 15], "translate_percent": [-0.08, 0.08],
           "shear": [-10, 10], "p": 1.0}, {"name": "ElasticTransform", "alpha": 12.0, "sigma": 4.0, "p": 0.5},
          {"name": "RandomBrightnessContrast", "brightness_limit": 0.2, "contrast_limit": 0.2, "p": 0.7},
          {"name": "GaussNoise", "std_range": [0.02, 0.08], "p": 0.5}]
EXTREME = [{"name": "Affine", "scale": [0.5, 1.5], "rotate": [-90, 90], "translate_percent": [-0.25, 0.25],
            "shear": [-30, 30], "p": 1.0}, {"name": "ElasticTransform", "alpha": 40.0, "sigma": 3.0, "p": 1.0}]


def balanced_labels(n_classes: int) -> np.ndarray:
    return np.tile(np.arange(n_classes), N_PER_CLASS)


def as_set(images: np.ndarray, labels: np.ndarray, like: ImageSet, tag: str) -> ImageSet:
    return ImageSet.build(images, labels, [f"{tag}-{i}" for i in range(len(images))], like.class_names)


def procedural(labelled: ImageSet, ops: list, tag: str) -> ImageSet:
    from generators.procedural import ProceduralGenerator

    gen = ProceduralGenerator(ops=ops, working_size=32).fit(labelled)
    s = gen.sample(labels=balanced_labels(labelled.n_classes), seed=1)
    return as_set(s.images, s.labels, labelled, tag)


def copies(labelled: ImageSet, rng: np.random.Generator, noise: float = 0.0, blur: float = 0.0) -> np.ndarray:
    """Each synthetic image is one labelled image of its class, optionally noised or blurred."""
    labels = balanced_labels(labelled.n_classes)
    idx = np.array([rng.choice(np.flatnonzero(labelled.labels == c)) for c in labels])
    images = labelled.images[idx].astype(np.float32)
    if blur:
        images = np.stack([cv2.GaussianBlur(im, (0, 0), blur).reshape(im.shape) for im in images])
    if noise:
        images = images + rng.normal(0, noise, images.shape)
    return images.clip(0, 255).astype(np.uint8), labels


def learned(name: str, labelled: ImageSet, unlabelled: ImageSet) -> ImageSet | None:
    """A learned generator at its tiny test config, if one is registered (else None)."""
    try:
        from tests.tiny_configs import TINY

        gen = registry.get_generator_class(name)(**TINY[name]).fit(labelled, unlabelled)
        s = gen.sample(labels=balanced_labels(labelled.n_classes), seed=1)
        return as_set(s.images, s.labels, labelled, name)
    except Exception as exc:  # a generator in progress must not break the study
        print(f"skipping generator {name}: {exc}")
        return None


def build_sets(labelled: ImageSet, pool_real: ImageSet, seed: int = 0) -> dict[str, ImageSet]:
    rng = np.random.default_rng(seed)
    n = N_PER_CLASS * labelled.n_classes
    sets = {
        "procedural_light": procedural(labelled, LIGHT, "light"),
        "procedural_strong": procedural(labelled, STRONG, "strong"),
        "procedural_extreme": procedural(labelled, EXTREME, "extreme"),
        "exact_copies": as_set(*copies(labelled, rng), labelled, "copy"),
        "copies_noise16": as_set(*copies(labelled, rng, noise=16), labelled, "noisy16"),
        "copies_noise64": as_set(*copies(labelled, rng, noise=64), labelled, "noisy64"),
        "heavy_blur": as_set(*copies(labelled, rng, blur=1.5), labelled, "blur"),
    }
    real = pool_real.subset(rng.permutation(len(pool_real))[:n])
    sets["heldout_real"] = real
    half = real.labels.copy()
    flip = rng.random(n) < 0.5
    half[flip] = rng.integers(0, labelled.n_classes, flip.sum())
    sets["real_half_wrong_labels"] = as_set(real.images, half, labelled, "half")
    sets["real_shuffled_labels"] = as_set(real.images, rng.permutation(real.labels), labelled, "shuf")
    noise = rng.integers(0, 256, (n, *labelled.image_shape), dtype=np.uint8)
    sets["pure_noise"] = as_set(noise, balanced_labels(labelled.n_classes), labelled, "noise")
    for name in ("diffusion", "gan"):
        if name in registry.available():
            s = learned(name, labelled, pool_real.without_labels())
            if s is not None:
                sets[name] = s
    return sets


def downstream_gain(labelled: ImageSet, test: ImageSet, sets: dict[str, ImageSet], seeds: list[int], cfg: TrainConfig):
    base = [accuracy(train_classifier(labelled, cfg, seed=s), test) for s in seeds]
    gains = {}
    for name, syn in sets.items():
        accs = [accuracy(train_classifier(labelled, cfg, seed=s, synthetic=syn, synthetic_share=0.5), test) for s in seeds]
        gains[name] = {"acc": float(np.mean(accs)), "gain": float(np.mean(accs) - np.mean(base)),
                       "gain_per_seed": [a - b for a, b in zip(accs, base, strict=True)]}
        print(f"  {name:<24} acc {np.mean(accs):.3f}  gain {gains[name]['gain']:+.3f}", flush=True)
    return float(np.mean(base)), gains


def validity(args) -> None:
    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()
    source = DigitsSource(test_size=500)
    splits = source.splits(n_per_class=10, seed=0)
    labelled, test = splits.labelled, splits.test
    by_id = {i: k for k, i in enumerate(source.pool.ids)}
    pool_real = source.pool.subset([by_id[i] for i in splits.unlabelled.ids])  # pool with its true labels
    order = np.random.default_rng(1).permutation(len(pool_real))
    baseline_part = pool_real.subset(order[:500]).without_labels()  # for real-vs-real baselines only
    candidates = pool_real.subset(order[500:])  # the "held-out real" synthetic sets come from here
    sets = build_sets(labelled, candidates)
    print(f"built {len(sets)} sets in {time.perf_counter() - t0:.0f}s", flush=True)

    ext = train_extractor(labelled, EXTRACTOR_TRAIN, seed=0, augment=judge_augment())  # = synth score defaults
    scores = {}
    for name, syn in sets.items():
        r = score_images(syn, labelled, baseline_part, ext, k=5, seed=0)
        scores[name] = {**r.set_metrics.values, **r.summary}
        base_metrics = r.set_metrics.baseline
    print(f"scored in {time.perf_counter() - t0:.0f}s", flush=True)

    seeds = list(range(args.seeds))
    base_acc, gains = downstream_gain(labelled, test, sets, seeds, TrainConfig())
    names = list(sets)
    gain = np.array([gains[n]["gain"] for n in names])
    metric_names = [m for m in scores[names[0]] if not m.startswith("real_vs_real")]
    rho = {}
    for m in metric_names:
        v = np.array([scores[n][m] for n in names], dtype=float)
        rho[m] = float(spearmanr(v, gain).statistic) if np.ptp(v) > 0 else float("nan")
    result = {
        "command": "python benchmarks/score_validity.py" + (f" --seeds {args.seeds}" if args.seeds != 2 else ""),
        "data": "digits, 10 labelled per class (budget seed 0), 500 fixed test images",
        "synthetic_per_set": N_PER_CLASS * labelled.n_classes, "synthetic_share": 0.5, "seeds": seeds,
        "real_only_acc": base_acc, "gains": gains, "scores": scores, "real_vs_real": base_metrics,
        "spearman_with_gain": rho, "seconds": round(time.perf_counter() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "host": platform.node(), "note": "timings under contention (2 shared cores, torch 1 thread)",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "score_validity.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "score_validity.md").write_text(markdown(result, names, metric_names))
    print(markdown(result, names, metric_names))


def markdown(res: dict, names: list[str], metrics: list[str]) -> str:
    shown = [m for m in metrics if m in ("gap_mean", "realism_mean", "novelty_mean", "label_consistency_mean",
                                          "copy_rate") or not m.endswith(("_mean", "_rate"))]
    lines = ["# Score validity on digits (10 labelled/class)\n", f"Command: `{res['command']}` "
             f"({res['seconds']} s wall, {res['cpu_seconds']} s CPU, {res['note']}). Real-only test accuracy {res['real_only_acc']:.3f}; "
             f"gain = accuracy with the set at synthetic_share 0.5 minus real-only, mean of seeds {res['seeds']}. "
             "The test set is used only to measure the gain.\n",
             "## Spearman rank correlation with downstream gain\n", "| metric | rho |", "|---|---|"]
    for m in sorted(shown, key=lambda m: -abs(res["spearman_with_gain"][m]) if res["spearman_with_gain"][m] == res["spearman_with_gain"][m] else 0):
        lines.append(f"| {m} | {res['spearman_with_gain'][m]:+.2f} |")
    lines += ["", "## Per set\n", "| set | gain | " + " | ".join(shown) + " |", "|---" * (len(shown) + 2) + "|"]
    for n in sorted(names, key=lambda n: -res["gains"][n]["gain"]):
        vals = " | ".join(f"{res['scores'][n][m]:.3g}" for m in shown)
        lines.append(f"| {n} | {res['gains'][n]['gain']:+.3f} | {vals} |")
    rr = " | ".join(f"{res['real_vs_real'].get(m, float('nan')):.3g}" for m in shown)
    lines.append(f"| *real vs real (held-out pool)* | | {rr} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--speed", action="store_true", help="time 10k vs 10k on Fashion-MNIST instead")
    p.add_argument("--threads", type=int, default=None, help="with --speed: one run at this many torch threads")
    args = p.parse_args()
    if args.speed and args.threads:
        print(json.dumps(speed(threads=args.threads)))
    elif args.speed:
        speed_report()
    else:
        validity(args)


def speed(n: int = 10_000, threads: int = 1) -> dict:
    """10k synthetic vs 10k real training images (+10k held-out for baselines), Fashion-MNIST 28x28.

    The "synthetic" set is a random subset of real Fashion-MNIST training images (scoring cost
    does not depend on where images come from). Times the whole pipeline, extractor training
    included, with no cache; peak memory is the process's max RSS.
    """
    from synth.data import FashionMNISTSource

    torch.set_num_threads(threads)
    source = FashionMNISTSource(max_pool=3 * n)
    pool = source.pool
    order = np.random.default_rng(0).permutation(len(pool))
    train, held, syn = (pool.subset(np.sort(order[i * n : (i + 1) * n])) for i in range(3))
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    ext = train_extractor(train, EXTRACTOR_TRAIN, seed=0, augment=judge_augment())  # = synth score defaults
    t1, c1 = time.perf_counter(), time.process_time()
    r = score_images(syn, train, held.without_labels(), ext, seed=0)
    t2, c2 = time.perf_counter(), time.process_time()
    heldout_acc = float((ext.predict_proba(held.images).argmax(1) == held.labels).mean())  # untimed check
    return {
        "torch_threads": threads, "n_train": len(train), "n_synthetic": len(syn), "n_heldout": len(held),
        "image": "28x28x1", "extractor": {"train": vars(EXTRACTOR_TRAIN), "heldout_accuracy": round(heldout_acc, 4)},
        "wall_s": {"extractor_training": round(t1 - t0, 1), "scoring": round(t2 - t1, 1), "total": round(t2 - t0, 1),
                   **{k: round(v, 1) for k, v in r.seconds.items()}},
        "cpu_s": {"extractor_training": round(c1 - c0, 1), "scoring": round(c2 - c1, 1), "total": round(c2 - c0, 1)},
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
        "load_average_1min": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        "gap_mean": r.summary["gap_mean"], "set_metrics": r.set_metrics.values,
        "real_vs_real": r.set_metrics.baseline,
    }


def speed_report(threads: tuple[int, ...] = (2, 1)) -> None:
    """One fresh process per thread count (peak RSS is per process); JSON + a short .md."""
    runs = []
    for t in threads:
        out = subprocess.run([sys.executable, __file__, "--speed", "--threads", str(t)], check=True,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(runs[-1], indent=1), flush=True)
    res = {"command": "python benchmarks/score_validity.py --speed", "goal": "total wall <= 60 s, peak RSS <= 4 GB",
           "host": platform.node(), "cpu_count": os.cpu_count(), "runs": runs,
           "note": "2 CPU cores shared with other jobs (see load averages): wall time is inflated by contention"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "score_validity.speed.json").write_text(json.dumps(res, indent=1))
    lines = ["# Scoring speed: 10k synthetic vs 10k real (+10k held-out real), Fashion-MNIST 28x28\n",
             f"Command: `{res['command']}` (goal: {res['goal']}; {res['note']}).\n",
             "| threads | total wall s | extractor training s | features s | per-sample s | set metrics s | CPU s "
             "| peak RSS GB | load 1-min before/after | extractor held-out acc |", "|---" * 10 + "|"]
    for r in runs:
        w = r["wall_s"]
        lines.append(f"| {r['torch_threads']} | {w['total']} | {w['extractor_training']} | {w['features']} | "
                     f"{w['per_sample']} | {w['set_metrics']} | {r['cpu_s']['total']} | {r['peak_rss_gb']} | "
                     f"{r['load_average_1min']['before']} / {r['load_average_1min']['after']} | "
                     f"{r['extractor']['heldout_accuracy']} |")
    (RESULTS / "score_validity.speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
