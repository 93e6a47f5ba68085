"""Real data: sources, stratified splits, label budgets, ImageFolder strictness."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from synth.data import DigitsSource, FashionMNISTSource, ImageFolderSource, ImageSet, read_image_folder
from synth.data.imagefolder import read_unlabelled_folder
from synth.errors import ConfigError, DataError
from tests.conftest import write_image_folder


def test_digits_split_is_stratified_fixed_and_disjoint(digits_source):
    a = digits_source.splits(n_per_class=5, seed=0)
    b = digits_source.splits(n_per_class=5, seed=1)
    assert len(a.test) == 500 and np.array_equal(a.test.ids, b.test.ids), "test set must not depend on seed"
    assert not np.array_equal(a.labelled.ids, b.labelled.ids), "seeds must draw different budgets"
    assert np.all(a.labelled.class_counts() == 5)
    full = np.bincount(DigitsSource()._load()[0].labels)
    assert np.all(np.abs(a.test.class_counts() - full * 500 / 1797) <= 1), "test set not stratified"
    ids = [set(a.labelled.ids), set(a.unlabelled.ids), set(a.test.ids)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == 1797
    assert np.all(a.unlabelled.labels == -1), "unlabelled pool must hide its labels"


def test_budget_fraction_and_whole_pool(digits_source):
    whole = digits_source.splits(seed=0)
    assert len(whole.unlabelled) == 0 and len(whole.labelled) == 1297
    frac = digits_source.splits(fraction=0.1, seed=0)
    assert abs(len(frac.labelled) - 130) <= 10


@pytest.mark.parametrize("kwargs", [{"n_per_class": 0}, {"fraction": 1.5}, {"n_per_class": 2, "fraction": 0.1}])
def test_bad_budgets_are_config_errors(digits_source, kwargs):
    with pytest.raises(ConfigError, match="budget"):
        digits_source.splits(**kwargs)


def test_budget_larger_than_class_names_the_class(digits_source):
    with pytest.raises(DataError, match="class '0'"):
        digits_source.splits(n_per_class=10_000)


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    src = FashionMNISTSource(root=str(tmp_path))
    splits = src.splits(n_per_class=2, seed=0)
    assert splits.labelled.image_shape == (28, 28, 1) and len(splits.test) == 20
    assert splits.labelled.class_names[0] == "t-shirt"
    # writable like every other source's arrays: torch warns of "undefined behavior" on read-only ones
    assert src.pool.images.flags.writeable and splits.test.images.flags.writeable


def test_fashion_mnist_missing_directory_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        _ = FashionMNISTSource(root=str(tmp_path / "nope")).pool


def test_fashion_mnist_truncated_idx(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 28, 28)))
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())[:-10]
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(DataError, match="truncated"):
        FashionMNISTSource(root=str(tmp_path))._part("train", "train")


@pytest.fixture()
def folder(tmp_path, digits_splits):
    ls = digits_splits.labelled
    return write_image_folder(tmp_path / "imgs", ls.images, ls.labels, ls.class_names)


def test_image_folder_round_trip(folder, digits_splits):
    data = read_image_folder(folder)
    ls = digits_splits.labelled
    assert data.class_names == ls.class_names and data.image_shape == (8, 8, 1)
    assert len(data) == len(ls) and data.ids[0].startswith("0/")
    assert np.array_equal(np.sort(data.images.reshape(len(data), -1), axis=0),
                          np.sort(ls.images.reshape(len(ls), -1), axis=0))


def test_truncated_png_is_named(folder):
    victim = sorted((folder / "3").glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(DataError, match=victim.name):
        read_image_folder(folder)
    skipped = read_image_folder(folder, skip_corrupt=True)
    assert victim.relative_to(folder).as_posix() not in set(skipped.ids)
    assert victim.exists(), "reading must never delete user files"


def test_empty_class_folder_is_named(folder):
    (folder / "empty_class").mkdir()
    with pytest.raises(DataError, match="empty_class"):
        read_image_folder(folder)


def test_mixed_sizes_and_modes(folder):
    from PIL import Image

    Image.new("L", (9, 9)).save(folder / "0" / "big.png")
    with pytest.raises(DataError, match="image_size"):
        read_image_folder(folder)
    assert read_image_folder(folder, image_size=8).image_shape == (8, 8, 1)
    Image.new("RGB", (8, 8)).save(folder / "1" / "colour.png")
    with pytest.raises(DataError, match="data.mode=RGB"):
        read_image_folder(folder, image_size=8)
    assert read_image_folder(folder, image_size=8, mode="RGB").image_shape == (8, 8, 3)


def test_every_problem_in_a_messy_folder_is_named_in_one_error(folder):
    """A folder with several problems names them all at once, each with its fix, so a user
    mends it in one pass; fixing them all (here, by the switches named) then reads it."""
    from PIL import Image

    victims = sorted((folder / "3").glob("*.png"))[:5]
    for v in victims:
        v.write_bytes(v.read_bytes()[:40])
    Image.new("L", (9, 9)).save(folder / "0" / "big.png")
    Image.new("RGB", (8, 8)).save(folder / "1" / "colour.png")
    (folder / "empty_class").mkdir()
    with pytest.raises(DataError) as err:
        read_image_folder(folder)
    msg = str(err.value)
    assert "4 problems" in msg and msg.count("\n  - ") == 4
    assert "cannot read 5 image(s)" in msg and victims[0].name in msg and "(and 2 more)" in msg
    for fix in ("data.skip_corrupt=true", "data.mode=RGB", "data.image_size", "empty_class"):
        assert fix in msg
    (folder / "empty_class").rmdir()
    data = read_image_folder(folder, skip_corrupt=True, mode="RGB", image_size=8)
    assert data.image_shape == (8, 8, 3) and not {v.relative_to(folder).as_posix() for v in victims} & set(data.ids)


def test_unlabelled_folder_names_every_unreadable_file(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("L", (8, 8)).save(tmp_path / f"ok{i}.png")
        (tmp_path / f"bad{i}.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read 3 image\(s\)") as err:
        read_unlabelled_folder(tmp_path, class_names=["a"])
    assert all(f"bad{i}.png" in str(err.value) for i in range(3))
    assert len(read_unlabelled_folder(tmp_path, class_names=["a"], skip_corrupt=True)) == 3


def test_image_folder_source_with_test_root(folder, tmp_path, digits_splits):
    t = digits_splits.test.subset(np.arange(30))
    test_root = write_image_folder(tmp_path / "test", t.images, t.labels, t.class_names)
    src = ImageFolderSource(root=str(folder), test_root=str(test_root))
    splits = src.splits(n_per_class=3, seed=0)
    assert len(splits.test) == 30 and len(splits.labelled) == 30


def test_imageset_validation():
    with pytest.raises(DataError):
        ImageSet.build(np.zeros((2, 4, 4), np.float32), [0, 1], ["a", "b"], ["x", "y"])
    with pytest.raises(DataError, match="unique"):
        ImageSet.build(np.zeros((2, 4, 4), np.uint8), [0, 1], ["a", "a"], ["x", "y"])


def test_without_ids_keeps_the_other_images_in_order():
    s = ImageSet.build(np.arange(4, dtype=np.uint8).reshape(4, 1, 1), [0, 1, 0, 1], ["a", "b", "c", "d"], ["x", "y"])
    rest = s.without_ids(np.array(["c", "a", "zz"]))  # an id not in the set is ignored
    assert rest.ids.tolist() == ["b", "d"] and rest.labels.tolist() == [1, 1]
    assert rest.images.ravel().tolist() == [1, 3]
    assert s.without_ids([]).ids.tolist() == ["a", "b", "c", "d"]


def test_missing_imagefolder_root_is_config_error():
    with pytest.raises(ConfigError, match="data.root"):
        ImageFolderSource()
