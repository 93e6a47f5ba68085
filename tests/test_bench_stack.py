"""The issue-7 stack arm (synth/bench/stack_arm.py) in the harness on a tiny grid.

Checks: protocol and oracle accounting, determinism under a seed, no labelled/test id ever
selected, pseudo-labels switched off when the gate fails (and on when it passes), the
after-AL gate validating on random slice images only, and the explicit fallback when the
random slice is too small for CV.
"""

from __future__ import annotations

import pytest

from synth.bench.protocol import POOL
from synth.bench.runner import BenchPlan, run_grid
from synth.bench.stack_arm import stack_params
from synth.errors import ConfigError
from synth.recipe.evidence import wilson_lower
from synth.training import TrainConfig

TINY_TRAIN = TrainConfig(steps=8, batch_size=16, width=4, hidden=16)
BASE = {"target": "synth.bench.stack_arm:arm_stack", "uses_unlabelled": True, "protocols": [POOL],
        "batch_size": 10, "presets": ["light"], "k": 2, "max_trials": 2, "pl_k_folds": 2,
        "teacher": {"steps": 5, "batch_size": 16, "width": 4, "hidden": 16}, "max_pool": 300, "threshold": 0.0}


def run(tmp, digits_source, budgets, **params):
    arms = {"real": {}, "stack": {**BASE, **params}}
    plan = BenchPlan(budgets=budgets, seeds=[0], protocols=[POOL], arms=arms, train=TINY_TRAIN, out_dir=tmp,
                     progress=False, all_arm_params=arms)
    cells, _ = run_grid(digits_source, plan)
    assert all(c["status"] == "ok" for c in cells), [c.get("error") for c in cells if c["status"] != "ok"]
    return {(c["arm"], c["budget"]): c for c in cells}


def test_stack_counts_oracle_labels_and_never_selects_labelled_or_test_ids(tmp_path, digits_source):
    by = run(tmp_path, digits_source, [4], min_precision=0.0)
    c = by[("stack", 4)]
    n_classes = digits_source.pool.n_classes
    comps = c["protocol_check"]["components"]
    assert c["meta"]["initial"] == 2 * n_classes  # ceil(0.5 * 4) random labels per class
    assert comps["initial labels"]["seen"] == 2 * n_classes
    assert comps["label oracle"]["seen"] == 2 * n_classes  # the other half of the budget, all queried
    assert comps["label oracle"]["labelled_seen"] == 0  # never one of the harness's labelled images
    assert c["labelled_used"] == 4 * n_classes == c["meta"]["labels_used"]
    # the gate passed (min_precision 0, threshold 0 keeps every prediction): the teacher labelled pool images only, never a test image
    assert c["meta"]["pl_on"] is True and c["meta"]["pseudo_labelled"] > 0
    teacher = comps["pseudo-label teacher (pool, unlabelled)"]
    assert teacher["labelled_seen"] == 0 and teacher["seen"] > 0
    assert c["protocol_check"]["ok"]


def test_stack_is_deterministic_under_a_seed(tmp_path, digits_source):
    a = run(tmp_path / "a", digits_source, [4], min_precision=0.0)[("stack", 4)]
    b = run(tmp_path / "b", digits_source, [4], min_precision=0.0)[("stack", 4)]
    assert a["accuracy"] == b["accuracy"]
    for key in ("augment", "pl_cv_precision", "pseudo_labelled", "min_class_count", "max_class_count"):
        assert a["meta"][key] == b["meta"][key]


def test_stack_switches_pseudo_labels_off_when_the_gate_fails(tmp_path, digits_source):
    # the Wilson lower bound of any finite precision is below 1.0: the gate can never open
    c = run(tmp_path, digits_source, [4], min_precision=1.0)[("stack", 4)]
    assert c["meta"]["pl_on"] is False and "< min_precision" in c["meta"]["pl_choice"]
    assert c["meta"]["pseudo_labelled"] == 0
    assert "pseudo-label teacher (pool, unlabelled)" not in c["protocol_check"]["components"]


def test_stack_falls_back_to_nothing_without_cv_labels(tmp_path, digits_source):
    c = run(tmp_path, digits_source, [2], min_precision=0.0, pl_gate="slice")[("stack", 2)]  # slice: 1 per class
    assert c["meta"]["augment"] == "none" and c["meta"]["augment_choice"].startswith("fallback")
    assert c["meta"]["pl_on"] is False and c["meta"]["pl_choice"].startswith("fallback off")


def test_after_al_gate_validates_on_the_random_slice_only(tmp_path, digits_source):
    n_classes = digits_source.pool.n_classes
    by = run(tmp_path, digits_source, [2, 4], min_precision=0.0)  # default pl_gate: after_al
    # n=2: 1 slice label per class, too few for the augmentation search before AL, enough folds after it
    two = by[("stack", 2)]["meta"]
    assert two["augment_before_al_choice"].startswith("fallback") and two["pl_on"] is True
    assert two["augment_choice"].startswith("after AL")
    assert two["pl_cv_validated"] == n_classes and f"+ {n_classes} AL labels" in two["pl_choice"]
    # n=4: the 20 slice images are validated, never the 20 actively chosen ones (they train every teacher)
    four = by[("stack", 4)]["meta"]
    assert four["pl_cv_validated"] == 2 * n_classes and f"+ {2 * n_classes} AL labels" in four["pl_choice"]


def test_gate_takes_the_lowest_confidence_threshold_that_passes(tmp_path, digits_source):
    c = run(tmp_path, digits_source, [4], min_precision=0.0, pl_thresholds=[0.5, 0.0])[("stack", 4)]["meta"]
    assert c["pl_on"] is True and c["pl_threshold"] == 0.0  # both pass at min_precision 0: the lower one
    assert [r["threshold"] for r in c["pl_by_threshold"]] == [0.0, 0.5]
    shut = run(tmp_path / "shut", digits_source, [4], min_precision=1.0, pl_thresholds=[0.0, 0.5])[("stack", 4)]
    assert shut["meta"]["pl_on"] is False and shut["meta"]["pseudo_labelled"] == 0


def test_wilson_lower_bound_and_param_checks():
    assert wilson_lower(0, 0) == 0.0
    assert wilson_lower(20, 20) < 1.0 and wilson_lower(20, 20) > wilson_lower(19, 20)
    assert wilson_lower(200, 200) > wilson_lower(20, 20)
    with pytest.raises(ConfigError, match="unknown key"):
        stack_params({"treshold": 0.9})
    with pytest.raises(ConfigError, match="initial_fraction"):
        stack_params({"initial_fraction": 0})
    with pytest.raises(ConfigError, match="pl_gate"):
        stack_params({"pl_gate": "before"})
    with pytest.raises(ConfigError, match="pl_max_class_ratio"):
        stack_params({"pl_max_class_ratio": 0.5})


def test_stack_spends_its_whole_budget_when_the_batch_does_not_divide_it(tmp_path, digits_source):
    # budget 4: a slice of 2 per class (20), 20 labels left, batches of 15 -> 15 + a partial 5 (not 15 alone)
    c = run(tmp_path, digits_source, [4], min_precision=1.0, batch_size=15)[("stack", 4)]
    n_classes = digits_source.pool.n_classes
    assert c["labelled_used"] == 4 * n_classes == c["meta"]["labels_used"]
    assert c["protocol_check"]["components"]["label oracle"]["seen"] == 2 * n_classes


def test_benefit_route_opens_the_gate_only_when_students_beat_their_teachers(tmp_path, digits_source):
    # pl_z 50 pushes every Wilson bound to ~0: the precision route fails, the point estimate (>= 0.01) does not
    params = {"min_precision": 0.01, "pl_z": 50.0, "pl_thresholds": [0.0]}
    c = run(tmp_path, digits_source, [4], **params)[("stack", 4)]
    m = c["meta"]
    assert "benefit:" in m["pl_choice"] and len(m["pl_benefit"]["kept_per_fold"]) == 2
    assert m["pl_on"] is m["pl_benefit"]["passes"] and m["pl_route"] == ("benefit" if m["pl_on"] else None)
    teachers = c["protocol_check"]["components"]["after-AL fold students (pool, unlabelled)"]
    assert teachers["labelled_seen"] == 0 and teachers["seen"] > 0
    off = run(tmp_path / "off", digits_source, [4], pl_benefit=False, **params)[("stack", 4)]["meta"]
    assert off["pl_on"] is False and "pl_benefit" not in off and "benefit:" not in off["pl_choice"]


def test_augment_after_al_false_keeps_the_before_al_choice(tmp_path, digits_source):
    m = run(tmp_path, digits_source, [4], min_precision=1.0, augment_after_al=False)[("stack", 4)]["meta"]
    assert m["augment"] == m["augment_before_al"] and set(m["after_al_brier"]) == {m["augment"]}  # no other policy trained


SEMI = {"steps": 40, "unlabelled_ratio": 1, "threshold": 0.5}


def test_stack_adopts_consistency_training_only_when_fold_students_beat_the_fold_models(tmp_path, digits_source):
    # 5-step fold models against 40-step consistency students: the students win on the held-out slice
    c = run(tmp_path, digits_source, [4], min_precision=1.0, semi=SEMI)[("stack", 4)]
    m, comps = c["meta"], c["protocol_check"]["components"]
    assert m["semi_on"] is True and m["semi"]["passes"] is True and len(m["semi"]["confident_share_per_fold"]) == 2
    assert m["pl_on"] is False and m["pseudo_labelled"] == 0 and m["semi_info"]["steps"] == 40
    for name in ("semi-supervised training (pool, unlabelled)", "after-AL fold students (pool, unlabelled)"):
        assert comps[name]["labelled_seen"] == 0 and comps[name]["seen"] > 0
    assert comps["decision after AL (slice + AL labels)"]["seen"] == c["labelled_used"]  # its CV read every label
    # a gain no Brier score can reach: the students lose, the pseudo-label gate decides as before
    off = run(tmp_path / "off", digits_source, [4], min_precision=1.0, semi=SEMI, min_gain=10.0)[("stack", 4)]
    assert off["meta"]["semi_on"] is False and "semi_info" not in off["meta"]
    assert "semi-supervised training (pool, unlabelled)" not in off["protocol_check"]["components"]
    assert "< min_precision" in off["meta"]["pl_choice"]


def test_small_slice_adopts_consistency_training_without_its_cv(tmp_path, digits_source):
    # min_gain 10: the CV would decline (as in the test above); at budget 4 the slice holds 2 labels a class
    on = run(tmp_path, digits_source, [4], min_precision=1.0, semi=SEMI, min_gain=10.0, semi_max_slice=2)[("stack", 4)]
    m, comps = on["meta"], on["protocol_check"]["components"]
    assert m["slice_min"] == 2 and m["semi_on"] is True and m["semi"] == {"passes": True, "route": "small slice"}
    assert "semi_max_slice 2" in m["semi_choice"] and m["semi_info"]["steps"] == 40 and m["pseudo_labelled"] == 0
    assert "after-AL fold students (pool, unlabelled)" not in comps  # no fold student trained
    assert "decision after AL (slice + AL labels)" not in comps  # and no CV read the AL labels
    assert comps["semi-supervised training (pool, unlabelled)"]["labelled_seen"] == 0
    # one label short of the route: the CV decides again, and declines
    off = run(tmp_path / "off", digits_source, [4], min_precision=1.0, semi=SEMI, min_gain=10.0,
              semi_max_slice=1)[("stack", 4)]
    assert off["meta"]["semi_on"] is False and off["meta"]["semi"]["passes"] is False


def test_stack_semi_settings_are_checked_before_training():
    with pytest.raises(ConfigError, match="unknown key"):
        stack_params({"semi": {"treshold": 0.9}})
    with pytest.raises(ConfigError, match="after_al"):
        stack_params({"semi": SEMI, "pl_gate": "slice"})
    with pytest.raises(ConfigError, match="semi_max_slice"):
        stack_params({"semi_max_slice": 3})  # nothing to adopt
    with pytest.raises(ConfigError, match="semi_max_slice"):
        stack_params({"semi": SEMI, "semi_max_slice": -1})


def test_without_the_precision_route_a_passing_bound_needs_the_benefit_test(tmp_path, digits_source):
    # min_precision 0 at threshold 0: every bound passes; min_gain 10: no student can beat its teacher
    params = {"min_precision": 0.0, "pl_thresholds": [0.0], "min_gain": 10.0}
    on = run(tmp_path / "on", digits_source, [4], **params)[("stack", 4)]["meta"]
    assert on["pl_on"] is True and on["pl_route"] == "precision" and "pl_benefit" not in on
    off = run(tmp_path / "off", digits_source, [4], pl_precision_route=False, **params)[("stack", 4)]
    m = off["meta"]
    assert m["pl_precision_passes"] is True and m["pl_benefit"]["passes"] is False
    assert m["pl_on"] is False and m["pl_route"] is None and m["pseudo_labelled"] == 0
    assert "the benefit test decides" in m["pl_choice"]
    assert "pseudo-label teacher (pool, unlabelled)" not in off["protocol_check"]["components"]


def test_the_precision_route_can_only_be_dropped_for_the_benefit_route():
    assert stack_params({"pl_precision_route": False})["pl_benefit"] is True
    for bad in ({"pl_benefit": False}, {"pl_gate": "slice"}):
        with pytest.raises(ConfigError, match="pl_precision_route"):
            stack_params({"pl_precision_route": False, **bad})
    assert stack_params({"pl_precision_route": False, "pl_benefit": False, "pseudo_labels": False})


def test_after_al_presets_change_the_final_candidates_not_the_al_learner(tmp_path, digits_source):
    """`after_al_presets` swaps the policies the after-AL CV trains (so the AL learner, hence the labels active
    learning buys, stay those of `presets`); a bad name fails before any training."""
    shipped = run(tmp_path / "a", digits_source, [4], min_precision=1.0)[("stack", 4)]["meta"]
    half = run(tmp_path / "b", digits_source, [4], min_precision=1.0,
               after_al_presets=["light@p0.5"])[("stack", 4)]["meta"]
    assert half["augment_before_al"] == shipped["augment_before_al"]
    assert half["labels_used"] == shipped["labels_used"]
    assert set(shipped["after_al_brier"]) == {"none", "light"}
    assert set(half["after_al_brier"]) == {"none", "light@p0.5", half["augment_before_al"]}  # the AL learner's stays
    with pytest.raises(ConfigError, match="nope"):
        stack_params({**BASE, "after_al_presets": ["nope"]})
