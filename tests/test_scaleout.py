"""Scale-out: local worker processes, sharded Hydra multiruns, kill/resume of one shard, WebDataset.

The equality checks compare every file of the output (images, manifest, grid, config)
byte for byte; run metadata (runs/) and Hydra's own folder are allowed to differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir

from synth.commands import generate
from tests.conftest import CONF, REPO

SMALL = ("n_per_class=12", "chunk_size=8", "progress=false")


def cfg_for(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("generate", overrides=list(overrides))


def content(out: Path) -> dict[str, str]:
    """sha256 of every content file (run metadata, Hydra's folder and the lock file aside)."""
    skip = ("runs", ".hydra", ".synth.lock")
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).parts[0] not in skip
    }


def cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synth.cli", "generate", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("unsharded") / "out"
    generate.run(cfg_for(f"out_dir={out}", *SMALL))
    digest = content(out)
    assert "manifest.parquet" in digest and sum(k.startswith("images/") for k in digest) == 120
    return digest


def test_num_workers_output_equals_one_worker(tmp_path, unsharded):
    result = generate.run(cfg_for(f"out_dir={tmp_path / 'out'}", "num_workers=2", *SMALL))
    assert result.complete and result.written == 120
    assert content(tmp_path / "out") == unsharded


def test_two_shard_joblib_multirun_equals_unsharded_and_rerun_skips(tmp_path, unsharded):
    out = tmp_path / "out"
    args = ("--multirun", "shard_index=0,1", "num_shards=2", "hydra/launcher=joblib", f"out_dir={out}", *SMALL)
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert content(out) == unsharded
    markers = {p.name: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}
    assert set(markers) == {"shard-0-of-2.json", "shard-1-of-2.json"}
    assert all(m["done"] and m["written"] > 0 for m in markers.values())
    assert sorted(markers["shard-0-of-2.json"]["chunks"] + markers["shard-1-of-2.json"]["chunks"]) == list(range(15))

    for shard in (0, 1):  # a rerun (in-process: the launcher is not what decides to skip) writes nothing
        again = generate.run(cfg_for(f"out_dir={out}", f"shard_index={shard}", "num_shards=2", *SMALL))
        assert again.written == 0 and again.complete
    assert {p.name: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))} == markers
    assert content(out) == unsharded


@pytest.mark.slow  # ~10 s idle, 45 s on the shared 2-core machine; test_generate.py covers resume by default
def test_shard_killed_mid_run_completes_on_rerun(tmp_path):
    """SIGKILL shard 1 after its first committed chunk; rerunning it gives the unsharded bytes."""
    many = ("n_per_class=40", "chunk_size=4", "progress=false")  # 100 chunks: time to kill mid-way
    out = tmp_path / "out"
    generate.run(cfg_for(f"out_dir={out}", "shard_index=0", "num_shards=2", *many))
    proc = subprocess.Popen(
        [sys.executable, "-m", "synth.cli", "generate", "shard_index=1", "num_shards=2", f"out_dir={out}", *many],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not any(int(p.stem.split("-")[1]) % 2 for p in (out / "parts").glob("chunk-*.parquet")):
        assert proc.poll() is None, "shard finished before it could be killed"
        assert time.monotonic() < deadline, "shard 1 never committed a chunk"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.parquet").exists() and not (out / "runs" / "shard-1-of-2.json").exists()
    done_odd = sum(int(p.stem.split("-")[1]) % 2 for p in (out / "parts").glob("chunk-*.parquet"))
    assert 0 < done_odd < 50, f"expected a partial shard, found {done_odd} of 50 chunks"

    rerun = cli("shard_index=1", "num_shards=2", f"out_dir={out}", *many)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "[complete]" in rerun.stdout  # the last shard to finish merges
    reference = tmp_path / "reference"
    generate.run(cfg_for(f"out_dir={reference}", *many))
    assert content(out) == content(reference)
    assert not list(out.rglob("*.tmp"))


def test_concurrent_prepare_on_a_fresh_directory_keeps_both_shards(tmp_path, unsharded):
    """Two shards started at the same instant: neither may clear the other's work."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    out = tmp_path / "out"
    with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as pool:
        results = list(pool.map(_run_shard, [(str(out), 0), (str(out), 1)]))
    assert sorted(results) == [False, True] or results == [True, True]
    assert content(out) == unsharded


def _run_shard(arg: tuple[str, int]) -> bool:
    out, shard = arg
    return generate.run(cfg_for(f"out_dir={out}", f"shard_index={shard}", "num_shards=2", *SMALL)).complete


def test_manifest_rows_follow_sample_index(tmp_path):
    generate.run(cfg_for(f"out_dir={tmp_path / 'out'}", "num_workers=2", *SMALL))
    table = pq.read_table(tmp_path / "out" / "manifest.parquet")
    assert np.array_equal(np.asarray(table.column("index")), np.arange(120))


def merge_cfg(out: Path, *overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("merge", overrides=[f"out_dir={out}", *overrides])


def test_merge_unions_shards_and_names_missing_ones(tmp_path, unsharded):
    from synth.commands import merge
    from synth.errors import DataError

    out = tmp_path / "out"
    generate.run(cfg_for(f"out_dir={out}", "shard_index=1", "num_shards=3", *SMALL))
    with pytest.raises(DataError, match=r"shard_index in \[0, 2\]"):
        merge.run(merge_cfg(out))
    for shard in (0, 2):
        generate.run(cfg_for(f"out_dir={out}", f"shard_index={shard}", "num_shards=3", *SMALL))
    (out / "manifest.parquet").unlink()
    (out / "samples_grid.png").unlink()
    assert merge.run(merge_cfg(out))
    assert content(out) == unsharded


def test_webdataset_round_trip_is_deterministic(tmp_path):
    from synth.commands import merge
    from synth.viz import decode_png
    from synth.webdataset_io import iter_webdataset, shard_paths, webdataset_iterable

    out = tmp_path / "out"
    generate.run(cfg_for(f"out_dir={out}", "webdataset=true", *SMALL))
    table = pq.read_table(out / "manifest.parquet").to_pylist()
    samples = list(iter_webdataset(out))
    assert [s.sample_id for s in samples] == [r["sample_id"] for r in table]
    assert [s.label for s in samples] == [r["label"] for r in table]
    assert all(s.is_synthetic for s in samples)
    for s, row in zip(samples[:20], table[:20], strict=True):
        assert s.image.dtype == np.uint8 and np.array_equal(s.image, decode_png((out / row["path"]).read_bytes()))

    before = {p.name: p.read_bytes() for p in shard_paths(out)}
    merge.run(merge_cfg(out, "webdataset=true", "wds_maxcount=50"))  # rewrite in 3 shards of <= 50
    assert [p.name for p in shard_paths(out)] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    merge.run(merge_cfg(out, "webdataset=true"))
    assert {p.name: p.read_bytes() for p in shard_paths(out)} == before  # same dataset, same tar bytes

    image, label, sample_id, synthetic = next(iter(webdataset_iterable(out)))
    assert image.shape == (8, 8, 1) and (label, sample_id, synthetic) == (0, "s00000000", True)


@pytest.mark.slow  # submitit's local executor polls its jobs: ~40 s on the shared machine
def test_two_shard_submitit_local_multirun_equals_unsharded(tmp_path, unsharded):
    out = tmp_path / "out"
    proc = cli("--multirun", "shard_index=0,1", "num_shards=2", "hydra/launcher=submitit_local", f"out_dir={out}", *SMALL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert content(out) == unsharded
