"""Re-read committed digits multipliers against real only's curve with its n = 30 cells (stop 43).

Real only's curve bends between 20 and 50 labels per class; committed reports read its need off the straight line
between them. This takes each report's per-seed curves, inserts real only's n = 30 cells for the same seeds from the
finer-grid pool report (`benchmarks/results/digits_pool_dense`, real only protocol-independent), and recomputes the
multiplier with the harness's own `multiplier_at_target`. Offline: no cell is rerun and the arms' own crossings stay
interpolated on their grids. Prints one line per report; docs/recipe_log.md quotes them.

    python benchmarks/real_dense_reread.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from synth.bench.curves import multiplier_at_target

RESULTS = Path(__file__).resolve().parent / "results"
#: (report, protocol, arm) whose multipliers the README quotes
REPORTS = [("digits_auto_default_settled", "strict", "auto_default_settled"),
           ("digits_labels", "unlabelled_pool", "semi"),
           ("digits_semi_flex", "unlabelled_pool", "semi_align"),
           ("digits_stack_typiclust", "unlabelled_pool", "full_stack_typiclust")]


def per_seed(report: dict, protocol: str, arm: str) -> np.ndarray:
    rows = report["results"][protocol]["arms"][arm]["curve"]["per_seed"]
    return np.array([[np.nan if v is None else v for v in row] for row in rows], float)


def real_at(n: int) -> dict[int, float]:
    """Real only's accuracy at n per seed, from the finer-grid report."""
    dense = json.loads((RESULTS / "digits_pool_dense" / "report.json").read_text())
    col = dense["n_per_class"].index(float(n))
    return {s: row[col] for s, row in zip(dense["seeds"], per_seed(dense, "unlabelled_pool", "real"), strict=True)}


def reread(name: str, protocol: str, arm: str, extra: dict[int, float], n_new: int = 30) -> str:
    """The report's multiplier, then again with real only's cells at n_new (`extra`, per seed) inserted."""
    r = json.loads((RESULTS / name / "report.json").read_text())
    ns, target = list(r["n_per_class"]), r["target"]["accuracy"]
    real, a = per_seed(r, protocol, "real"), per_seed(r, protocol, arm)
    k = int(np.searchsorted(ns, n_new))
    coarse = multiplier_at_target(ns, real, a, target, seed=0)
    dense = multiplier_at_target(ns[:k] + [n_new] + ns[k:], np.insert(real, k, [extra[s] for s in r["seeds"]], axis=1),
                                 np.insert(a, k, np.nan, axis=1), target, seed=0)
    return (f"{name}/{arm} (seeds {r['seeds']}): {coarse.value:.2f}x [{coarse.lo:.2f}, {coarse.hi:.2f}] "
            f"(real only needs {coarse.base_need.n:.1f}) -> with real only at n = {n_new}: {dense.value:.2f}x "
            f"[{dense.lo:.2f}, {dense.hi:.2f}] (real only needs {dense.base_need.n:.1f}, the arm {dense.arm_need.n:.2f})")


if __name__ == "__main__":
    at30 = real_at(30)
    for name, protocol, arm in REPORTS:
        print(reread(name, protocol, arm, at30))
