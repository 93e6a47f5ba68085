"""The smoke benchmark config through the real command (every arm whose generator is registered)."""

from __future__ import annotations

import time

import pytest
from hydra import compose, initialize_config_dir

from synth.commands.bench import run
from tests.conftest import CONF


def smoke_cfg(tmp_path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("bench", overrides=["bench=smoke", f"out_dir={tmp_path}", "progress=false", *overrides])


def test_bench_config_composes_for_every_preset(tmp_path):
    from synth.commands.bench import make_plan

    presets = sorted(f.stem for f in (CONF / "bench").glob("*.yaml") if f.stem != "base")
    assert {"smoke", "digits", "digits_labels", "fashion_mnist", "glyphs"} <= set(presets)
    for preset in presets:
        p = make_plan(smoke_cfg(tmp_path, f"bench={preset}"))
        assert p.arms and "real" in p.arms and p.seeds, preset


@pytest.mark.slow
def test_smoke_benchmark_runs_within_two_minutes(tmp_path):
    t0 = time.perf_counter()
    report = run(smoke_cfg(tmp_path))
    assert time.perf_counter() - t0 < 120
    assert (tmp_path / "report.md").is_file() and (tmp_path / "learning_curve.png").is_file()
    strict = report["results"]["strict"]["arms"]
    assert {"real", "aug_online", "aug_offline", "combined"} <= set(strict)
    assert set(strict) | set(report["not_available"]) == {
        "real", "aug_online", "aug_offline", "diffusion", "gan", "img2img", "combined"}
    assert not report["failed_cells"]
    assert all(v["cells_checked"] for v in report["protocol_checks"].values())
    rerun = run(smoke_cfg(tmp_path))
    assert rerun["meta"]["cells_computed_this_run"] == 0
