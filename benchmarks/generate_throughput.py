"""Throughput of augment -> written PNG (+ manifest part) with 1 and N local worker processes.

Times only the generation phase (`synth.chunk_pool.write_chunks`: sample every chunk,
encode and write its PNGs, commit its manifest part), the part that scales with n; the
fixed start-up of a `synth generate` run (imports, data loading, generator fit, merge) is
timed separately as an end-to-end CLI run. Every trial checks that its output equals the
1-worker output byte for byte.

    python benchmarks/generate_throughput.py                 # digits 8x8 + Fashion-MNIST 28x28
    python benchmarks/generate_throughput.py --datasets digits --repeats 5

Writes benchmarks/results/generate_throughput.{json,md}. The machine is shared: the load
average before and after each trial is recorded next to the timing.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from synth.chunk_pool import ChunkJob, write_chunks  # noqa: E402
from synth.config import build  # noqa: E402
from synth.writer import DatasetWriter, Plan  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DATASETS = {"digits": ("digits", 500), "fashion": ("fashion_mnist", 300)}  # conf name, n_per_class


def load_generator(data_conf: str, preset: str):
    data = OmegaConf.load(REPO / "conf" / "data" / f"{data_conf}.yaml")
    splits = build(data, "data").splits(n_per_class=20, seed=0)
    gen = build(OmegaConf.load(REPO / "conf" / "generator" / f"{preset}.yaml"), "generator")
    return gen.fit(splits.labelled), splits.labelled.class_names


def time_trial(gen, class_names, n_per_class: int, workers: int, out: Path, chunk_size: int) -> tuple[float, float]:
    plan = Plan.balanced(n_per_class, len(class_names), chunk_size)
    writer = DatasetWriter(out, class_names=class_names, generator="bench", content_hash="bench")
    writer.prepare("bench: true\n")
    job = ChunkJob(gen, writer, plan, seed=0)
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    n = write_chunks(job, list(range(plan.n_chunks)), num_workers=workers, progress=False)
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    writer.finalize(plan)
    return n / seconds, n / cpu


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers are joined)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=["runs"])
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def end_to_end(data_conf: str, n_per_class: int, workers: int, tmp: Path) -> dict:
    """One full `synth generate` CLI run: the number a user sees, start-up included."""
    out = tmp / f"cli-{data_conf}-{workers}"
    cmd = [sys.executable, "-m", "synth.cli", "generate", f"data={data_conf}", f"n_per_class={n_per_class}",
           f"num_workers={workers}", f"out_dir={out}", "progress=false"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    wall = time.perf_counter() - t0
    meta = json.loads((out / "runs" / "shard-0-of-1.json").read_text())
    return {"workers": workers, "wall_seconds": round(wall, 2), "images": meta["written"],
            "write_images_per_second": meta["write_images_per_second"], "command": " ".join(cmd[1:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--preset", default="light")
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end CLI runs")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows, cli_rows = [], []
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp_s:
        tmp = Path(tmp_s)
        for key in args.datasets:
            data_conf, n_per_class = DATASETS[key]
            gen, class_names = load_generator(data_conf, args.preset)
            for workers in args.workers:
                rates, per_cpu, loads = [], [], []
                for r in range(args.repeats):
                    out = tmp / f"{key}-w{workers}-r{r}"
                    load0 = os.getloadavg()[0]
                    rate, rate_cpu = time_trial(gen, class_names, n_per_class, workers, out, args.chunk_size)
                    rates.append(rate)
                    per_cpu.append(rate_cpu)
                    loads.append([round(load0, 2), round(os.getloadavg()[0], 2)])
                    reference = tmp / f"{key}-w{args.workers[0]}-r0"
                    if not same_tree(reference, out):
                        raise SystemExit(f"output of {out.name} differs from {reference.name}")
                    if r > 0:
                        shutil.rmtree(out)
                rows.append({
                    "dataset": key, "image_shape": list(gen.image_shape), "preset": args.preset,
                    "images": n_per_class * len(class_names), "workers": workers,
                    "img_per_s_median": round(statistics.median(rates), 1), "img_per_s_best": round(max(rates), 1),
                    "img_per_s_all": [round(x, 1) for x in rates], "loadavg_before_after": loads,
                    "img_per_cpu_s_median": round(statistics.median(per_cpu), 1),
                    "identical_to_1_worker": True,
                })
                print(json.dumps(rows[-1]))
            if not args.no_cli:
                for workers in args.workers:
                    cli_rows.append({"dataset": key, **end_to_end(data_conf, n_per_class, workers, tmp)})
                    print(json.dumps(cli_rows[-1]))
    report = {"phase": rows, "cli": cli_rows, "host": platform.node(), "cpus": os.cpu_count(),
              "command": "python benchmarks/generate_throughput.py " + " ".join(sys.argv[1:]),
              "note": "2-core machine shared with other engineers' jobs (see loadavg); numbers are under contention."}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generate_throughput.json").write_text(json.dumps(report, indent=1))
    (RESULTS / "generate_throughput.md").write_text(to_markdown(report))
    print((RESULTS / "generate_throughput.md").read_text())


def to_markdown(report: dict) -> str:
    lines = ["# Generation throughput: augment -> written PNG", "",
             f"Command: `{report['command']}` ({report['cpus']} CPUs, {report['note']})", "",
             "| data | shape | images | workers | img/s median | img/s best | speed-up vs 1 | img per CPU-s | load avg before/after |",
             "|---|---|---|---|---|---|---|---|---|"]
    base = {r["dataset"]: r["img_per_s_median"] for r in report["phase"] if r["workers"] == 1}
    for r in report["phase"]:
        speed = r["img_per_s_median"] / base[r["dataset"]] if r["dataset"] in base else float("nan")
        shape = "x".join(map(str, r["image_shape"]))
        lines.append(f"| {r['dataset']} | {shape} | {r['images']} | {r['workers']} | {r['img_per_s_median']:.0f} | "
                     f"{r['img_per_s_best']:.0f} | {speed:.2f}x | {r['img_per_cpu_s_median']:.0f} | {r['loadavg_before_after']} |")
    if report["cli"]:
        lines += ["", "End to end (`synth generate`, start-up, data loading and merge included):", "",
                  "| data | workers | images | wall s | generation-phase img/s |", "|---|---|---|---|---|"]
        for r in report["cli"]:
            lines.append(f"| {r['dataset']} | {r['workers']} | {r['images']} | {r['wall_seconds']} | "
                         f"{r['write_images_per_second']} |")
        lines += ["", f"CLI form: `{report['cli'][0]['command']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
