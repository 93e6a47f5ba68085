"""`synth select`: which images to label next, on the bundled digits and on a user's folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from synth.cli import CONF_DIR
from synth.commands.select import run
from synth.errors import ConfigError, DataError
from synth.viz import encode_png
from tests.conftest import write_image_folder


def _run(tmp_path: Path, *overrides: str) -> tuple[list[str], Path]:
    out = tmp_path / "out"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("select", overrides=["trainer=tiny", f"out_dir={out}", *overrides])
    return run(cfg), out


@pytest.mark.parametrize("strategy", ["typiclust", "margin"])
def test_select_on_digits_picks_k_unlabelled_images_deterministically(tmp_path, strategy, digits_source):
    picked, out = _run(tmp_path, f"active={strategy}", "k=12")
    again, _ = _run(tmp_path / "b", f"active={strategy}", "k=12")
    assert picked == again and len(set(picked)) == 12
    splits = digits_source.splits(n_per_class=2, seed=0)
    assert not set(picked) & set(map(str, splits.labelled.ids))  # never an image already labelled
    assert set(picked) <= set(map(str, splits.unlabelled.ids))  # never a test image
    rows = list(csv.DictReader((out / "to_label.csv").open()))
    assert [r["id"] for r in rows] == picked and [int(r["rank"]) for r in rows] == list(range(1, 13))
    assert all(r["predicted"] for r in rows) == (strategy == "margin")  # a classifier only where one is used
    info = json.loads((out / "selection.json").read_text())
    assert info["n_labelled"] == 20 and info["classifier_trained"] == (strategy == "margin")
    assert (out / "to_label.png").read_bytes()[:4] == b"\x89PNG"


def _user_folders(tmp_path: Path, digits_source) -> tuple[Path, Path]:
    pool = digits_source.pool
    take = np.concatenate([np.flatnonzero(pool.labels == c)[:4] for c in (0, 1, 7)])
    labelled = write_image_folder(tmp_path / "labelled", pool.images[take], np.repeat([0, 1, 2], 4), ["0", "1", "7"])
    unlabelled = tmp_path / "unlabelled"
    (unlabelled / "batch2").mkdir(parents=True)
    for i, img in enumerate(pool.images[200:230]):
        (unlabelled / ("batch2" if i % 2 else "") / f"img{i:03d}.png").write_bytes(encode_png(img))
    return labelled, unlabelled


def test_select_reads_a_users_unlabelled_folder_and_names_each_file(tmp_path, digits_source):
    labelled, unlabelled = _user_folders(tmp_path, digits_source)
    picked, out = _run(tmp_path, "data=imagefolder", f"data.root={labelled}", "data.test_size=3",
                       f"unlabelled_root={unlabelled}", "budget.n_per_class=null", "k=5")
    rows = list(csv.DictReader((out / "to_label.csv").open()))
    assert len(rows) == 5 and all(Path(r["path"]).is_file() for r in rows)
    assert all(Path(r["path"]).parent in (unlabelled, unlabelled / "batch2") for r in rows)
    assert json.loads((out / "selection.json").read_text())["n_candidates"] == 30


def test_select_refuses_unlabelled_images_that_do_not_match_and_bad_values(tmp_path, digits_source):
    labelled, unlabelled = _user_folders(tmp_path, digits_source)
    common = ["data=imagefolder", f"data.root={labelled}", "data.test_size=3", "budget.n_per_class=null"]
    (unlabelled / "big.png").write_bytes(encode_png(np.zeros((16, 16, 1), np.uint8)))
    with pytest.raises(DataError, match="mixes image sizes"):
        _run(tmp_path, *common, f"unlabelled_root={unlabelled}")
    (unlabelled / "big.png").unlink()
    (unlabelled / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        _run(tmp_path, *common, f"unlabelled_root={unlabelled}")
    with pytest.raises(DataError, match="does not exist"):
        _run(tmp_path, *common, f"unlabelled_root={tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match="k=0"):
        _run(tmp_path, "k=0")
    with pytest.raises(ConfigError, match="every pool image is labelled"):
        _run(tmp_path, *common)
