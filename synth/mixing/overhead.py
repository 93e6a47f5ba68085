"""Measure the mixer's overhead: iterate a mixed DataLoader vs real-only ones at the same batch size.

    python -m synth.mixing.overhead --epochs 30 --batch-size 64 --workers 0

Baselines: a plain `TensorDataset` of float images with `shuffle=True` (what a user has
without synth) and `MixedDataset(real)` with `shuffle=True`. The mixed loader draws half of
each batch from a synthetic set (the unlabelled pool's images with their true labels stand
in for one; only the data path is timed). Each loader yields the same number of batches.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from synth.data import DigitsSource
from synth.mixing import MixedBatchSampler, MixedDataset
from synth.training import to_tensor


def _time(loader: DataLoader, epochs: int) -> float:
    t0 = time.perf_counter()
    batches = 0
    for _ in range(epochs):
        for _batch in loader:
            batches += 1
    return (time.perf_counter() - t0) / batches * 1e6  # microseconds per batch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    source = DigitsSource(test_size=500)
    real = source.pool.subset(range(0, 600))
    synthetic = source.pool.subset(range(600, len(source.pool)))
    g = torch.Generator().manual_seed(0)
    kw = {"num_workers": args.workers, "persistent_workers": args.workers > 0}
    loaders = {
        "real-only TensorDataset": DataLoader(
            TensorDataset(to_tensor(real.images), torch.from_numpy(real.labels)), args.batch_size, shuffle=True, generator=g, **kw
        ),
        "real-only MixedDataset": DataLoader(MixedDataset(real), args.batch_size, shuffle=True, generator=g, **kw),
        "mixed 1:1": DataLoader(
            MixedDataset(real, synthetic),
            batch_sampler=MixedBatchSampler(real.labels, synthetic.labels, args.batch_size, ratio=1.0, seed=0), **kw
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(args.repeats):  # interleaved, so contention drifts hit every loader alike
        for name, loader in loaders.items():
            results[name].append(_time(loader, args.epochs))
    base = statistics.median(results["real-only TensorDataset"])
    for name, times in results.items():
        med = statistics.median(times)
        print(f"{name:<26} {med:8.1f} us/batch (median of {args.repeats})  x{med / base:.3f} of TensorDataset")


if __name__ == "__main__":
    main()
