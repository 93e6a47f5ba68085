"""What `synth score` leaves behind: report.json, report.md, one histogram per score, a
grid of the best and worst samples by the combined score."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from synth.data.imageset import ImageSet
from synth.fsutil import atomic_write_text
from synth.scoring.pipeline import ScoreResult
from synth.viz import image_grid, write_png


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def build_report(result: ScoreResult, meta: dict[str, Any], filter_info: dict[str, Any] | None) -> dict[str, Any]:
    m = result.set_metrics
    return _clean({
        **meta,
        "extractor": m.extractor, "n_real": m.n_real, "n_synthetic": m.n_synthetic, "n_baseline": m.n_baseline,
        "set_metrics": m.rows(), "summary": result.summary, "warnings": m.warnings, "filter": filter_info,
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "gap_formula": "gap = (2 * label_consistency - 1) * min(1, novelty / novelty_target) * min(1, realism)",
    })


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    fmt = lambda v: "n/a" if v is None else f"{v:.4g}"  # noqa: E731
    lines = [
        f"# Domain-gap report: {report.get('synthetic')}", "",
        f"Reference: {report.get('reference')}; extractor `{report['extractor']}`; "
        f"{report['n_synthetic']} synthetic vs {report['n_real']} real training images; "
        f"real-vs-real baseline on {report['n_baseline']} held-out real images.", "",
        f"**Combined gap score (mean, higher = more useful, range -1..1): {fmt(report['summary'].get('gap_mean'))}** "
        f"(held-out real: {fmt(report['summary'].get('real_vs_real_gap_mean'))}); copies flagged: "
        f"{fmt(report['summary'].get('copy_rate'))} of samples.", "",
        f"Formula: `{report['gap_formula']}`.", "",
        "| metric | synthetic | real vs real | ideal | better |", "|---|---|---|---|---|",
    ]
    lines += [f"| {r['metric']} | {fmt(r['value'])} | {fmt(r['real_vs_real'])} | {fmt(r['ideal'])} | {r['better']} |"
              for r in report["set_metrics"]]
    lines += ["", "| per-sample score (mean) | synthetic | held-out real |", "|---|---|---|"]
    for key, value in report["summary"].items():
        if not key.startswith("real_vs_real_"):
            lines.append(f"| {key} | {fmt(value)} | {fmt(report['summary'].get('real_vs_real_' + key))} |")
    if report.get("filter"):
        f = report["filter"]
        lines += ["", f"Filter: {f['rule']} -> {f['accepted']} of {f['total']} accepted "
                      f"({100 * f['acceptance_rate']:.1f} %); rejected samples stay in the manifest (status=rejected)."]
    if report["warnings"]:
        lines += ["", "## Warnings", *[f"- {w}" for w in report["warnings"]]]
    lines += ["", "FD/KID rank exact copies of the training images best: read them with authenticity, novelty "
              "and copy_rate, never alone.", "", "![best/worst](best_worst.png)"]
    path.write_text("\n".join(lines) + "\n")


def write_histograms(out: Path, scores: dict[str, np.ndarray], baseline: dict[str, np.ndarray]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, values in scores.items():
        if name == "copy":
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2))
        v = np.asarray(values, dtype=float)
        top = float(np.quantile(v, 0.99)) if name == "realism" else np.inf  # realism of copies is unbounded
        ax.hist(np.minimum(v, top), bins=40, alpha=0.7, label="synthetic", density=True)
        if name in baseline:
            ax.hist(np.minimum(np.asarray(baseline[name], float), top), bins=40, alpha=0.5, label="held-out real",
                    density=True)
        ax.set_xlabel(name + (" (clipped at 99th pct)" if np.isfinite(top) else ""))
        ax.set_ylabel("density")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"hist_{name}.png", dpi=90)
        plt.close(fig)
        written.append(f"hist_{name}.png")
    return written


def write_best_worst(path: Path, data: ImageSet, gap: np.ndarray, per_side: int = 16) -> None:
    """Top row block: best samples by gap score; bottom block: worst."""
    order = np.argsort(-gap, kind="stable")
    n = min(per_side, len(order))
    picks = np.concatenate([order[:n], order[::-1][:n]])
    cols = min(8, n)
    rows = 2 * -(-n // cols)
    blank = np.zeros((cols * (rows // 2) - n, *data.image_shape), np.uint8)
    images = np.concatenate([data.images[picks[:n]], blank, data.images[picks[n:]], blank])
    write_png(path, image_grid(images, rows, cols))


def write_all(out: Path, report: dict[str, Any], result: ScoreResult, data: ImageSet, per_side: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report["histograms"] = write_histograms(out, result.per_sample, result.baseline_per_sample)
    write_best_worst(out / "best_worst.png", data, result.per_sample["gap"], per_side)
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    write_markdown(out / "report.md", report)
