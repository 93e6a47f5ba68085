"""Issue-7 arms (ssl, active, full_stack) in the harness on a tiny grid: protocol, oracle accounting, cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth.bench.protocol import POOL, STRICT
from synth.bench.runner import BenchPlan, plan_tasks, run_grid
from synth.training import TrainConfig

TINY_TRAIN = TrainConfig(steps=10, batch_size=16, width=4, hidden=16)
TINY_SSL = {"ssl_conf": "digits", "ssl_params": {"steps": 2, "batch_size": 16, "working_size": 16}}
ARMS = {
    "real": {},
    "ssl": {"target": "synth.bench.label_arms:arm_ssl", "uses_unlabelled": True, "protocols": [POOL],
            **TINY_SSL, "head": "auto", "probe_max_n": 2, "k": 2, "cv_steps": 5},
    "active": {"target": "synth.bench.label_arms:arm_active", "uses_unlabelled": True, "protocols": [POOL],
               "strategy": "margin", "initial_per_class": 1, "batch_size": 10},
    "typiclust": {"target": "synth.bench.label_arms:arm_active", "uses_unlabelled": True, "protocols": [POOL],
                  "strategy": "typiclust", "initial_per_class": 1, "batch_size": 10},
    "full_stack": {"target": "synth.bench.label_arms:arm_full_stack", "uses_unlabelled": True,
                   "protocols": [POOL], **TINY_SSL, "strategy": "margin", "initial_per_class": 1,
                   "batch_size": 10, "augment": "light", "augment_params": {"working_size": 16},
                   "head": "auto", "probe_max_n": 0, "k": 2, "cv_steps": 5},
}


def plan(tmp: Path, **kw) -> BenchPlan:
    return BenchPlan(budgets=kw.get("budgets", [2, 4]), seeds=[0], protocols=[STRICT, POOL], arms=ARMS,
                     train=TINY_TRAIN, out_dir=tmp, cache_dir=tmp / "gens", progress=False, all_arm_params=ARMS)


def test_label_arms_run_only_under_the_pool_protocol(tmp_path):
    tasks, unavailable = plan_tasks(plan(tmp_path))
    assert not unavailable
    for arm in ("ssl", "active", "typiclust", "full_stack"):
        assert {t.protocol for t in tasks if t.arm == arm} == {POOL}
    assert {t.protocol for t in tasks if t.arm == "real"} == {STRICT}


def test_label_arms_respect_the_protocol_and_count_oracle_queries(tmp_path, digits_source):
    p = plan(tmp_path)
    cells, _ = run_grid(digits_source, p)
    assert all(c["status"] == "ok" for c in cells), [c.get("error") for c in cells if c["status"] != "ok"]
    by = {(c["arm"], c["budget"]): c for c in cells}
    n_classes = digits_source.pool.n_classes
    pool_ids = set(map(str, digits_source.pool.ids))
    for budget in (2, 4):
        for arm in ("active", "typiclust", "full_stack"):
            c = by[(arm, budget)]
            comps = c["protocol_check"]["components"]
            # every label beyond the initial 1/class came through the oracle, and all are counted
            assert comps["label oracle"]["seen"] == budget * n_classes - n_classes
            assert comps["label oracle"]["labelled_seen"] == 0  # queries are pool images only
            assert c["labelled_used"] == budget * n_classes
            assert comps["initial labels"]["seen"] == n_classes
            assert c["meta"]["labels_used"] == budget * n_classes
        ssl = by[("ssl", budget)]
        enc = ssl["protocol_check"]["components"]["ssl encoder"]
        assert enc["seen"] == len(pool_ids)  # the whole training pool, never a test image
        assert ssl["labelled_used"] == budget * n_classes
    # one encoder per seed serves every budget and both arms: trained once, then loaded
    assert len(list((tmp_path / "gens" / "ssl_encoders").glob("seed0-*/encoder_config.json"))) == 1
    assert sum(not c["meta"]["encoder_cached"] for c in cells if c["arm"] in ("ssl", "full_stack")) == 1
    # the probe rule at n <= probe_max_n, CV above it
    assert by[("ssl", 2)]["meta"]["head"] == "probe" and by[("ssl", 2)]["meta"]["head_choice"].startswith("rule")
    assert by[("ssl", 4)]["meta"]["head_choice"].startswith("cv")
    # the report lists pool-only arms under the pool protocol and says they were not run under strict
    from synth.bench.report import analyse

    report = analyse(cells, p, {}, n_boot=50)
    assert set(report["results"][STRICT]["not_run_under_this_protocol"]) == {"ssl", "active", "typiclust", "full_stack"}
    assert {"ssl", "active", "full_stack"} <= set(report["results"][POOL]["arms"])
    assert "active" not in report["results"][STRICT]["arms"]


def test_active_learning_is_deterministic_under_a_seed(tmp_path, digits_source):
    arms_only = {"real": {}, "active": ARMS["active"]}
    plans = [BenchPlan(budgets=[2], seeds=[0], protocols=[POOL], arms=arms_only, train=TINY_TRAIN,
                       out_dir=tmp_path / d, progress=False, all_arm_params=arms_only) for d in ("a", "b")]
    first, second = (
        {c["arm"]: c for c in run_grid(digits_source, p)[0]} for p in plans
    )
    assert first["active"]["accuracy"] == pytest.approx(second["active"]["accuracy"])
    assert first["active"]["meta"] == second["active"]["meta"]


def test_active_learning_with_online_augmentation_records_it_and_counts_labels(tmp_path, digits_source):
    aug = {**ARMS["active"], "augment": "light", "augment_params": {"working_size": 16}}
    arms = {"real": {}, "active": ARMS["active"], "active_aug": aug}
    p = BenchPlan(budgets=[2], seeds=[0], protocols=[POOL], arms=arms, train=TINY_TRAIN, out_dir=tmp_path,
                  progress=False, all_arm_params=arms)
    cells = {c["arm"]: c for c in run_grid(digits_source, p)[0]}
    assert cells["active_aug"]["status"] == "ok", cells["active_aug"].get("error")
    assert cells["active_aug"]["meta"]["augment"] == "light" and cells["active"]["meta"]["augment"] is None
    n = 2 * digits_source.pool.n_classes
    assert cells["active_aug"]["labelled_used"] == cells["active"]["labelled_used"] == n


def test_active_arm_spends_its_whole_budget_when_the_batch_does_not_divide_it(tmp_path, digits_source):
    # budget 3 x 10 classes = 30 labels, 10 initial, batches of 15: one full batch + a partial one of 5
    # (flooring the rounds used to stop at 25 labels, under-charging and under-training the arm).
    arms = {"real": {}, "active": {**ARMS["active"], "batch_size": 15}}
    p = BenchPlan(budgets=[3], seeds=[0], protocols=[POOL], arms=arms, train=TINY_TRAIN, out_dir=tmp_path,
                  progress=False, all_arm_params=arms)
    c = {c["arm"]: c for c in run_grid(digits_source, p)[0]}["active"]
    assert c["status"] == "ok", c.get("error")
    n = 3 * digits_source.pool.n_classes
    assert c["labelled_used"] == c["meta"]["labels_used"] == n
    oracle = c["protocol_check"]["components"]["label oracle"]
    assert oracle["seen"] == n - digits_source.pool.n_classes and oracle["labelled_seen"] == 0
    assert c["protocol_check"]["ok"]  # no test image (nor any disallowed image) was seen


def test_semi_arm_trains_on_the_pool_without_its_labels_and_only_under_the_pool_protocol(tmp_path, digits_source):
    semi = {"target": "synth.bench.label_arms:arm_semi", "uses_unlabelled": True, "protocols": [POOL],
            "semi": {"steps": 4, "unlabelled_ratio": 1, "threshold": 0.0}}
    arms = {"real": {}, "semi": semi}
    p = BenchPlan(budgets=[2], seeds=[0], protocols=[STRICT, POOL], arms=arms, train=TINY_TRAIN, out_dir=tmp_path,
                  progress=False, all_arm_params=arms)
    cells = run_grid(digits_source, p)[0]
    c = {x["arm"]: x for x in cells}["semi"]
    assert c["status"] == "ok" and c["protocol"] == POOL and sum(x["arm"] == "semi" for x in cells) == 1
    comp = c["protocol_check"]["components"]["semi-supervised training (pool, unlabelled)"]
    n_labelled = 2 * digits_source.pool.n_classes
    assert comp["labelled_seen"] == 0 and comp["seen"] == len(digits_source.pool) - n_labelled
    assert c["labelled_used"] == n_labelled and c["meta"]["steps"] == 4 and c["meta"]["confident_share"] == 1.0


def test_active_semi_trains_the_final_model_on_the_chosen_labels_and_the_unlabelled_rest(tmp_path, digits_source):
    semi = {"steps": 4, "unlabelled_ratio": 1, "threshold": 0.0}
    arms = {"real": {}, "active_semi": {**ARMS["active"], "semi": semi}}
    p = BenchPlan(budgets=[2], seeds=[0], protocols=[POOL], arms=arms, train=TINY_TRAIN, out_dir=tmp_path,
                  progress=False, all_arm_params=arms)
    c = {c["arm"]: c for c in run_grid(digits_source, p)[0]}["active_semi"]
    assert c["status"] == "ok", c.get("error")
    n = 2 * digits_source.pool.n_classes
    comps = c["protocol_check"]["components"]
    pool = comps["semi-supervised training (pool, unlabelled)"]
    # the unlabelled pool (the arm's n random labels held out) minus the images AL queried labels for
    queried = n - digits_source.pool.n_classes
    assert pool["labelled_seen"] == 0 and pool["seen"] == len(digits_source.pool) - n - queried
    assert comps["label oracle"]["seen"] == queried
    assert c["labelled_used"] == n and c["meta"]["semi"]["steps"] == 4 and c["protocol_check"]["ok"]
