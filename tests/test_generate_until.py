"""`synth generate accept.*`: generate until N per class pass a score; deterministic, resumable, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from synth.errors import ConfigError
from tests.test_generate import cfg_for, digest

# Tiny: 10 labelled digits per class, a 40-step judge, rounds of 6 candidates per class.
FAST = ("budget.n_per_class=10", "n_per_class=6", "chunk_size=16", "generator.working_size=16",
        "+accept.scoring.train.steps=40", "+accept.scoring.heldout_max_images=200")


def gen(out: Path, tmp: Path, *overrides: str):
    from synth.commands import generate

    return generate.run(cfg_for(f"out_dir={out}", "progress=false", f"accept.cache_dir={tmp / 'cache'}",
                                *FAST, *overrides))


def statuses(out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = pq.read_table(out / "manifest.parquet")
    return (np.asarray(t.column("status").to_pylist()), np.asarray(t.column("label")),
            np.asarray(t.column("index")))


def test_accept_reaches_quota_keeps_rejected_and_logs_rate(tmp_path):
    out = tmp_path / "a"
    gen(out, tmp_path, "accept.score=label_consistency", "accept.threshold=0.6", "accept.n_per_class=5")
    status, labels, index = statuses(out)
    np.testing.assert_array_equal(index, np.arange(len(index)))  # no holes, no duplicates
    assert set(status) <= {"accepted", "surplus", "rejected"}
    assert all((status[labels == c] == "accepted").sum() == 5 for c in range(10))
    t = pq.read_table(out / "manifest.parquet")
    cons = np.asarray(t.column("score_label_consistency"))
    assert (cons[status == "rejected"] < 0.6).all() and (cons[status != "rejected"] >= 0.6).all()
    assert np.asarray(t.column("accepted")).sum() == 50
    log = json.loads((out / "runs" / "accept.json").read_text())
    assert log["generated"] == len(status) and 0 < log["acceptance_rate"] <= 1
    assert log["status_counts"]["accepted"] == 50
    assert len(list((out / "images").rglob("*.png"))) == len(status)  # rejected images stay on disk


def test_accept_is_deterministic_and_resumes_without_duplicates(tmp_path):
    args = ("accept.score=gap", "accept.threshold=0.15", "accept.n_per_class=8")
    full = tmp_path / "full"
    gen(full, tmp_path, *args)
    rounds = json.loads((full / "runs" / "accept.json").read_text())["rounds"]
    assert rounds >= 2, "the test needs more than one round to exercise resumption"

    # Interrupted run: stopped by max_rounds=1, then a chunk's scores and the last chunk lost
    # mid-write (as after a kill), then continued with the full bound.
    part = tmp_path / "part"
    with pytest.raises(ConfigError, match="acceptance rate"):
        gen(part, tmp_path, *args, "accept.max_rounds=1")
    parts = sorted((part / "parts").glob("chunk-*.parquet"))
    parts[-1].unlink()
    next((part / "parts").glob("scores-*.parquet")).unlink()
    gen(part, tmp_path, *args)
    assert digest(part) == digest(full)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (("accept.score=sharpness", "accept.threshold=0.3"), "not a per-sample score"),
        (("accept.score=label_consistency", "accept.threshold=1.5"), "outside the range"),
        (("accept.score=gap",), "accept.threshold is required"),
        (("accept.score=gap", "accept.threshold=0.1", "accept.n_per_class=0"), "positive integers"),
        (("accept.score=gap", "accept.threshold=0.1", "num_shards=2"), "num_shards=1"),
    ],
)
def test_bad_accept_values_fail_before_generating(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        gen(tmp_path / "x", tmp_path, *overrides)
    assert not (tmp_path / "x" / "images").exists()


def test_unreachable_quota_names_rate_and_what_to_change(tmp_path):
    with pytest.raises(ConfigError, match=r"acceptance rate .*lower accept.threshold"):
        gen(tmp_path / "y", tmp_path, "accept.score=novelty", "accept.threshold=50", "accept.max_rounds=2")


def test_plain_generate_hash_ignores_disabled_accept():
    from synth.commands.generate import content_config

    assert "accept" not in content_config(cfg_for())
    on = content_config(cfg_for("accept.score=gap", "accept.threshold=0.3"))
    assert on["accept"]["score"] == "gap" and "max_rounds" not in on["accept"]
