"""The benchmark helpers whose mistakes would leak test images into design checks or the glyphs dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import dev_split  # noqa: E402
import make_glyph_folder as glyphs  # noqa: E402

from synth.data.imagefolder import read_image_folder  # noqa: E402

MPL_FONTS = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf")


def test_dev_split_partitions_the_pool_and_never_holds_a_test_image():
    """Design checks choose settings on dev images: they must come from the pool, never from the test split."""
    from omegaconf import OmegaConf

    from synth.config import build

    source = build(OmegaConf.load(dev_split.REPO / "conf" / "data" / "digits.yaml"), "data")
    dev, rest = dev_split.dev_split("digits")
    dev_ids, rest_ids = set(dev.ids), set(rest.ids)
    assert len(dev) == dev_split.DEV_SIZE["digits"] and not dev_ids & rest_ids
    assert dev_ids | rest_ids == set(source.pool.ids)
    assert not (dev_ids | rest_ids) & set(source.test.ids)
    again, _ = dev_split.dev_split("digits")  # one fixed split shared by every check
    assert list(again.ids) == list(dev.ids)


def test_rows_of_one_draw_from_runs_of_different_arms_merge_into_one():
    """A check's arm added later runs on the same draws (`--arms`); its rows join the earlier ones per (n, seed)."""
    first = [{"n": 5, "seed": 1, "x4": 0.7, "sec": 10.0}, {"n": 5, "seed": 0, "x4": 0.6, "sec": 12.0}]
    later = [{"n": 5, "seed": 0, "x4_mixup": 0.65, "sec": 3.0}]
    rows = dev_split.merge_rows(first + later)
    assert rows == [{"n": 5, "seed": 0, "x4": 0.6, "x4_mixup": 0.65, "sec": 15.0},
                    {"n": 5, "seed": 1, "x4": 0.7, "sec": 10.0}]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("glyphs")
    return out, glyphs.export(out, test_share=0.3, seed=0, dirs=(MPL_FONTS,))


def test_glyph_export_holds_out_whole_font_families(export):
    """No weight or italic of a test typeface may sit in the training pool: the split is by family."""
    out, summary = export
    names = {split: {p.stem for p in (out / split / "A").glob("*.png")} for split in ("train", "test")}
    assert names["train"] and names["test"]
    family_of = {glyphs.image_name(p): glyphs.family(p) for p in glyphs.font_files((MPL_FONTS,))}
    fam = {split: {family_of[n] for n in names[split]} for split in names}
    assert not fam["train"] & fam["test"]
    assert summary["images_per_class"] == {"train": len(names["train"]), "test": len(names["test"])}
    assert summary["fonts"] == len(names["train"]) + len(names["test"])
    assert summary["skipped"]["no_letters"] > 0  # matplotlib's symbol fonts lack the Latin letters


def test_glyph_export_loads_as_an_image_folder_and_is_deterministic(export, tmp_path):
    out, summary = export
    train = read_image_folder(out / "train")
    assert train.class_names == tuple(glyphs.LETTERS) and train.image_shape[:2] == (28, 28)
    assert np.all(train.class_counts() == summary["images_per_class"]["train"])
    again = glyphs.export(tmp_path, test_share=0.3, seed=0, dirs=(MPL_FONTS,))
    assert again == summary
    twin = read_image_folder(tmp_path / "train")
    assert list(twin.ids) == list(train.ids) and np.array_equal(twin.images, train.images)


def test_semi_select_reads_fewer_restarts_from_the_recorded_confidences():
    """The K = 3 reading picks the most confident of runs 0-2 only, and skips rows without confidences."""
    import semi_select_check

    rows = [
        {"n": 2, "seed": 0, "semi": 0.90, "members": [0.90, 0.95, 0.80, 0.99, 0.70],
         "confidences": [0.5, 0.9, 0.6, 0.99, 0.1]},  # K = 3 picks run 1 (+5), K = 5 would pick run 3
        {"n": 2, "seed": 1, "semi": 0.92, "members": [0.92, 0.90, 0.93, 0.94, 0.95],
         "confidences": [0.9, 0.8, 0.7, 0.6, 0.95]},  # K = 3 keeps run 0 (0)
        {"n": 5, "seed": 0, "semi": 0.9, "members": [0.9] * 5},  # no confidences recorded: not read
    ]
    text = semi_select_check.fewer_runs(rows, 3)
    assert "- n = 2 (2 draws): +2.50 ± 2.50 points; per draw +5.0, +0.0" in text
    assert "n = 5" not in text
    assert semi_select_check.fewer_runs(rows[2:], 3) == ""


def test_draw_table_reads_an_arm_some_rows_lack_over_the_draws_that_hold_it():
    """An arm added to a check later runs at some budgets or draws only: a budget without it reads "–" (not a
    KeyError), one where some draws hold it reads their mean and says how many (not "–", which hid a measured mean)."""
    rows = [{"data": "digits", "n": 2, "seed": 0, "real": 0.80, "semi": 0.90},
            {"data": "digits", "n": 3, "seed": 0, "real": 0.85, "semi": 0.95, "new": 0.96},
            {"data": "digits", "n": 3, "seed": 1, "real": 0.86, "semi": 0.94, "new": 0.93},
            {"data": "digits", "n": 4, "seed": 0, "real": 0.90, "old": 0.91},
            {"data": "digits", "n": 4, "seed": 1, "real": 0.80, "new": 0.85}]
    md = dev_split.draw_table(rows, "cmd", "t", ("real", "semi", "new", "old"), [("new - semi", "new", "semi")])
    assert "| 2 | 1 (seeds 0) | 80.0 | 90.0 | – | – | – |" in md
    assert "| 3 | 2 (seeds 0, 1) | 85.5 | 94.5 | 94.5 | – | +1.0, -1.0 |" in md
    assert "| 4 | 2 (seeds 0, 1) | 85.0 | – | 85.0 (1 of 2) | 91.0 (1 of 2) | – |" in md


def test_pooled_difference_reads_only_the_draws_that_hold_both_arms():
    """A variant added to a check later runs on new draws: its difference pools those draws, names their seeds,
    and a difference no draw of a budget holds is left out instead of raising a KeyError."""
    rows = [{"n": 20, "seed": 0, "cur": 0.80, "old": 0.82},
            {"n": 20, "seed": 4, "cur": 0.80, "new": 0.81},
            {"n": 20, "seed": 5, "cur": 0.78, "new": 0.81}]
    md = dev_split.pooled_by_budget(rows, [("new - cur", "new", "cur"), ("old - cur", "old", "cur"),
                                           ("gone - cur", "gone", "cur")], "r")
    assert "- n = 20, new - cur: +2.00 ± 1.00 points over 2 draws (seeds 4, 5)" in md
    assert "- n = 20, old - cur: +2.00" in md and "over 1 draws (seeds 0)" in md
    assert "gone" not in md


def test_stack_presets_check_shows_prediction_agreement_only_where_recorded():
    """Two variants with the same accuracy can still be different models (stop 52's ties): the decisions table
    shows each row's recorded agreement with `current`, and leaves the column out for rows written before it."""
    import stack_presets_check as check

    decided = {"before_al": "none", "augment": "none", "semi_on": False, "pl_on": False, "pl_route": None, "pseudo": 0}
    old = {"data": "digits", "n": 10, "seed": 0, "real": 0.9, "current": 0.95, "after_al_half": 0.95,
           "current_decisions": decided, "after_al_half_decisions": decided}
    assert "agrees with current" not in check.markdown([old], "cmd")
    new = {**old, "seed": 1, "after_al_half_agrees_current": 0.9767}
    md = check.markdown([old, new], "cmd")
    assert "| after_al_half agrees with current |" in md
    assert md.count("97.7%") == 1 and "| 10 | 0 |" in md


#: checks with their own mains (older than `check_main`): how each renders its table from a committed file, the
#: arguments read back from the command it recorded (`aug_rule_check`'s policy is its `--default`'s default)
OWN_MAINS = {
    "al_balance_check": lambda m, rows, cmd: m.table(rows, _flag(cmd, "--data"), cmd),
    "aug_rule_check": lambda m, rows, cmd: m.table(rows, _flag(cmd, "--data"), cmd, "strong@p0.5"),
    "semi_check": lambda m, rows, cmd: m.table(rows, _flag(cmd, "--data"), cmd),
    "semi_gate_check": lambda m, rows, cmd: m.table(rows, _flag(cmd, "--data"), cmd, " --bench-draws" in cmd),
}


def _flag(command: str, flag: str) -> str:
    words = command.split()
    return words[words.index(flag) + 1]


def _check_results() -> list[tuple[str, Path]]:
    """Every committed per-draw check result (results/<check>_[<arm>_]<data>.json with its .md) and its check: the
    longest check name the file's stem starts with, so `semi_route_check_full_stack_digits` reads `semi_route_check`.
    The checks are those built on `check_main` and those in `OWN_MAINS`."""
    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    on_check_main = [p.stem for p in bench.glob("*.py") if "check_main(" in p.read_text() and p.stem != "dev_split"]
    checks = sorted([*on_check_main, *OWN_MAINS], key=len, reverse=True)
    found = []
    for res in sorted((bench / "results").glob("*.json")):
        name = next((c for c in checks if res.stem.startswith(c + "_")), None)
        if name and res.with_suffix(".md").exists():
            found.append((name, res))
    return found


def test_every_own_main_check_has_committed_results():
    """`OWN_MAINS` covers each older check: a renamed check or a moved results file would empty it silently."""
    assert set(OWN_MAINS) <= {check for check, _ in _check_results()}


@pytest.mark.parametrize(("check", "result"), _check_results(), ids=lambda x: getattr(x, "stem", x))
def test_committed_check_results_are_what_their_rows_render(check, result):
    """A committed table is what its check writes from its committed rows (`--from-jsonl`, or the table function of
    a check with its own main): a hand edit, or a renderer change that leaves old files stale, shows here (stop 53
    found 10 files rendered by an older table layout; stop 54 one more among the 20 of the older checks)."""
    import importlib
    import json

    saved = json.loads(result.read_text())
    module = importlib.import_module(check)
    render = OWN_MAINS.get(check, lambda m, rows, cmd: m.markdown(rows, cmd))
    assert render(module, saved["rows"], saved["command"]) == result.with_suffix(".md").read_text()


def test_saved_rows_reads_run_output_and_committed_results_alike(tmp_path):
    """New draws merge with committed ones: `--from-jsonl` reads a run's JSON lines and a committed results file,
    which stop 53 had to convert by hand."""
    import json

    rows = [{"n": 20, "seed": 0, "real": 0.8}, {"n": 20, "seed": 1, "real": 0.7}]
    lines, committed = tmp_path / "a.jsonl", tmp_path / "check_digits.json"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    committed.write_text(json.dumps({"command": "cmd", "rows": rows}))
    assert dev_split.saved_rows(lines) == dev_split.saved_rows(committed) == rows
