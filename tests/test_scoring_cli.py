"""`synth score` end to end on a tiny generated digits set: report files, manifest write-back
(rejected rows stay listed), filter errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir

from synth.commands import generate, score
from synth.errors import ConfigError, DataError
from tests.conftest import CONF

FAST = ("scoring.train.steps=60", "skip=[c2st,kid]", "budget.n_per_class=10", "heldout.max_images=200")


def cfg_for(name: str, *overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "light"
    generate.run(cfg_for("generate", f"out_dir={out}", "progress=false", "n_per_class=8", "budget.n_per_class=10",
                         "generator.working_size=16"))
    return out


def run_score(synthetic: Path, tmp: Path, *overrides: str):
    return score.run(cfg_for("score", f"synthetic={synthetic}", f"cache_dir={tmp / 'cache'}", *FAST, *overrides))


def test_score_writes_report_histograms_grid_and_filters_without_dropping(synthetic, tmp_path):
    res = run_score(synthetic, tmp_path, "filter.column=gap", "filter.quantile=0.5")
    out = synthetic / "score"
    for name in ("report.json", "report.md", "best_worst.png", "hist_gap.png", "hist_novelty.png",
                 "hist_realism.png", "hist_label_consistency.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    metrics = {r["metric"]: r for r in report["set_metrics"]}
    assert "FD_smallcnn" in metrics and "FID" not in " ".join(metrics)
    assert metrics["FD_smallcnn"]["real_vs_real"] is not None
    assert report["filter"]["accepted"] == 40 and report["filter"]["total"] == 80
    table = pq.read_table(synthetic / "manifest.parquet").to_pandas()
    assert len(table) == 80  # rejected samples stay listed
    assert table["status"].value_counts().to_dict() == {"accepted": 40, "rejected": 40}
    assert table["score_gap"].notna().all() and table["score_copy"].dtype == bool
    kept = table.loc[table["accepted"], "score_gap"].min()
    assert kept >= table.loc[~table["accepted"], "score_gap"].max()
    np.testing.assert_allclose(np.sort(table["score_gap"]), np.sort(res.result.per_sample["gap"]))

    # a second run without a filter clears the decision but keeps every row (and hits the caches)
    run_score(synthetic, tmp_path)
    table = pq.read_table(synthetic / "manifest.parquet").to_pandas()
    assert len(table) == 80 and (table["status"] == "unfiltered").all()
    assert any((tmp_path / "cache" / "features").iterdir()) and any((tmp_path / "cache" / "extractors").iterdir())


def test_score_errors_are_actionable(synthetic, tmp_path):
    with pytest.raises(ConfigError, match="unknown score column 'sharpness'"):
        run_score(synthetic, tmp_path, "filter.column=sharpness", "filter.threshold=0.5", "write_manifest=false")
    with pytest.raises(ConfigError, match="without filter.column"):
        run_score(synthetic, tmp_path, "filter.threshold=0.5")
    with pytest.raises(ConfigError, match="skip"):
        run_score(synthetic, tmp_path, "skip=[fid]")
    with pytest.raises(DataError, match="not a finished synth dataset"):
        run_score(tmp_path / "missing", tmp_path)
