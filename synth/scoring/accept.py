"""`synth generate accept.score=...`: generate in rounds until enough samples per class pass a score.

The on-disk, resumable counterpart of `filtering.generate_until`. The candidate stream is
the ordinary balanced plan (labels 0..K-1 interleaved, one seed per global index), so
every chunk's bytes are the same as in a plain `synth generate` run; rounds only decide
how far along that stream to go. Round r ends at index (r + 1) x n_per_class x K (the
chunk holding that index is finished too).

After a round's chunks are written, each chunk is scored (per-sample realism, novelty,
label consistency, gap against the labelled images, as `synth score` computes them) and
its scores are committed to `parts/scores-<chunk>.parquet`. A sample passes when its score
is >= threshold; in index order, the first `accept.n_per_class` passing samples of each
class are `accepted`, later passing ones `surplus`, the rest `rejected`. All rows stay in
the manifest. Decisions depend only on committed chunks and their committed scores, so a
run killed at any point and started again continues without duplicates or holes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from synth.errors import ConfigError
from synth.fsutil import atomic_write, atomic_write_bytes
from synth.scoring.per_sample import SCORES, Reference, score_samples
from synth.writer import DatasetWriter, Plan

log = logging.getLogger("synth.generate")

#: Valid threshold range per score (gap is signed; realism/novelty are unbounded ratios).
RANGES = {"gap": (-1.0, 1.0), "label_consistency": (0.0, 1.0), "realism": (0.0, np.inf), "novelty": (0.0, np.inf)}
CONF_SCORING = Path(__file__).resolve().parent.parent.parent / "conf" / "scoring" / "smallcnn.yaml"


@dataclass(frozen=True)
class AcceptSettings:
    score: str
    threshold: float
    n_per_class: int
    max_rounds: int

    @classmethod
    def from_config(cls, node: DictConfig | None) -> AcceptSettings | None:
        """None when `accept.score` is unset (plain generation); ConfigError on bad values."""
        if not node or node.get("score") in (None, "", "none"):
            return None
        score = str(node.score).removeprefix("score_")
        if score not in SCORES:
            raise ConfigError(f"accept.score={node.score!r} is not a per-sample score; choose from {', '.join(SCORES)}")
        if node.get("threshold") is None:
            raise ConfigError("accept.threshold is required with accept.score (e.g. accept.threshold=0.3)")
        lo, hi = RANGES[score]
        threshold = float(node.threshold)
        if not lo <= threshold <= hi:
            raise ConfigError(f"accept.threshold={threshold} is outside the range of {score} scores [{lo}, {hi}]")
        n, rounds = node.get("n_per_class"), node.get("max_rounds")
        if n is None or int(n) <= 0 or rounds is None or int(rounds) <= 0:
            raise ConfigError(f"accept.n_per_class and accept.max_rounds must be positive integers, got {n}, {rounds}")
        return cls(score, threshold, int(n), int(rounds))


def candidate_plan(n_per_class: int, n_classes: int, chunk_size: int, max_rounds: int) -> Plan:
    """The balanced plan for max_rounds rounds, padded to whole chunks so that every chunk's
    range (and so its bytes) is the same whatever max_rounds is: raising it continues a run."""
    base = Plan.balanced(n_per_class * max_rounds, n_classes, chunk_size)
    total = base.n_chunks * chunk_size
    return Plan(np.arange(total, dtype=np.int64) % n_classes, chunk_size)


def round_chunks(plan: Plan, round_size: int, r: int) -> list[int]:
    """Chunks that finish round r (those not already written by earlier rounds)."""
    def end_chunk(i: int) -> int:
        return min(plan.n_chunks, -(-min(i * round_size, len(plan.labels)) // plan.chunk_size))

    return list(range(end_chunk(r), end_chunk(r + 1)))


class ChunkScorer:
    """Per-sample scores of written chunks against the labelled images (synth score's defaults)."""

    def __init__(self, splits, seed: int, cache_dir: str | None, scoring: Any = None) -> None:
        from synth.commands.score import extractor_and_judge, reference_sets

        base = OmegaConf.load(CONF_SCORING)
        sc = OmegaConf.merge(base, scoring or {})
        cfg = OmegaConf.create({"scoring": sc, "cache_dir": cache_dir,
                                "heldout": {"max_images": int(sc.get("heldout_max_images", 2000)),
                                            "labelled_fraction": 0.2}})
        train, held = reference_sets(splits, cfg, seed)
        self.extractor, self.judge = extractor_and_judge(cfg, train, seed)
        f_held = self.extractor(held.images) if held is not None and len(held) else None
        self.ref = Reference.fit(self.extractor(train.images), f_held, k=int(sc.get("realism_k", 3)))
        self.copy_threshold = float(sc.get("copy_threshold", 0.1))

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
        if self.judge is self.extractor:
            feats, proba = self.judge.features_and_proba(images)
        else:
            feats, proba = self.extractor(images), self.judge.predict_proba(images)
        scores = score_samples(feats, self.ref, labels, proba, self.copy_threshold)
        scores.pop("copy")
        return scores


def _scores_path(writer: DatasetWriter, chunk: int) -> Path:
    return writer.out / "parts" / f"scores-{chunk:06d}.parquet"


def score_chunk(writer: DatasetWriter, chunk: int, scorer: ChunkScorer) -> None:
    """Score one committed chunk from its PNGs and commit the scores (atomic rename)."""
    from synth.viz import decode_png

    part = pq.read_table(writer.out / "parts" / f"chunk-{chunk:06d}.parquet")
    images = np.stack([decode_png((writer.out / p).read_bytes()) for p in part.column("path").to_pylist()])
    scores = scorer(images, np.asarray(part.column("label"), dtype=np.int64))
    table = pa.table({"sample_id": part.column("sample_id"),
                      **{f"score_{k}": pa.array(np.asarray(v, np.float64)) for k, v in scores.items()}})
    atomic_write(_scores_path(writer, chunk), lambda tmp: pq.write_table(table, tmp))


def decide(tables: list[pa.Table], labels: np.ndarray, s: AcceptSettings, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(passed, status) for every scored row in index order; status accepted/surplus/rejected."""
    values = np.concatenate([np.asarray(t.column(f"score_{s.score}"), np.float64) for t in tables])
    passed = np.isfinite(values) & (values >= s.threshold)
    status = np.where(passed, "surplus", "rejected").astype(object)
    for c in range(n_classes):
        status[np.flatnonzero(passed & (labels == c))[: s.n_per_class]] = "accepted"
    return passed, status


def run_rounds(
    settings: AcceptSettings, writer: DatasetWriter, plan: Plan, round_size: int, n_classes: int,
    write: Any, make_scorer: Any,
) -> tuple[Plan, int, dict[str, Any]]:
    """Write, score and decide round by round until every class has its quota.

    `write(chunks) -> n_written` writes missing chunks; `make_scorer()` builds the scorer
    (only if some chunk still needs scoring). Returns the plan cut at the last written
    chunk, images written in this process, and a summary (also logged).
    """
    scorer, written, done = None, 0, []
    for r in range(settings.max_rounds):
        chunks = round_chunks(plan, round_size, r)
        written += write([c for c in chunks if not writer.is_done(c)])
        for c in chunks:
            if not _scores_path(writer, c).exists():
                scorer = scorer or make_scorer()
                score_chunk(writer, c, scorer)
        done += chunks
        end = plan.chunk_range(done[-1])[1]
        tables = [pq.read_table(_scores_path(writer, c)) for c in done]
        passed, status = decide(tables, plan.labels[:end], settings, n_classes)
        per_class = np.bincount(plan.labels[:end][passed], minlength=n_classes)
        summary = {"rounds": r + 1, "generated": int(end), "passed": int(passed.sum()),
                   "acceptance_rate": float(passed.mean()), "passed_per_class": per_class.tolist(),
                   "rule": f"{settings.score} >= {settings.threshold}", "n_per_class": settings.n_per_class}
        log.info("accept round %d: %d of %d passed %s (acceptance rate %.1f%%), fewest in a class %d/%d", r + 1,
                 summary["passed"], end, summary["rule"], 100 * summary["acceptance_rate"], per_class.min(),
                 settings.n_per_class)
        if per_class.min() >= settings.n_per_class:
            cut = Plan(plan.labels[:end], plan.chunk_size)
            ids = np.concatenate([np.asarray(t.column("sample_id").to_pylist(), dtype=str) for t in tables])
            scores = {k.removeprefix("score_"): np.concatenate([np.asarray(t.column(k), np.float64) for t in tables])
                      for k in tables[0].column_names if k.startswith("score_")}
            summary.update(sample_ids=ids, scores=scores, status=status)
            return cut, written, summary
    short = int(np.argmin(per_class))
    raise ConfigError(
        f"accept: after {settings.max_rounds} rounds ({summary['generated']} samples) only {per_class.min()} of "
        f"{settings.n_per_class} samples of class {short} pass {summary['rule']} (acceptance rate "
        f"{summary['acceptance_rate']:.1%} overall); lower accept.threshold, lower accept.n_per_class or raise "
        "accept.max_rounds (rerunning with a larger max_rounds continues from what is on disk)"
    )


def record(writer: DatasetWriter, summary: dict[str, Any]) -> None:
    """Write the scores and statuses into the merged manifest and runs/accept.json."""
    from synth.scoring.manifest import write_scores

    status = np.asarray(summary["status"], dtype=str)
    write_scores(writer.out, summary["sample_ids"], summary["scores"], status == "accepted", status=status)
    meta = {k: v for k, v in summary.items() if k not in ("sample_ids", "scores", "status")}
    meta["status_counts"] = {s: int((status == s).sum()) for s in ("accepted", "surplus", "rejected")}
    atomic_write_bytes(writer.out / "runs" / "accept.json", json.dumps(meta, indent=1).encode())
