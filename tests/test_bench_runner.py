"""Benchmark runner end to end on a tiny grid: cells, resume, cache, protocol enforcement, report files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synth.bench import arms as arm_registry
from synth.bench.arms import ArmOutput, register_arm
from synth.bench.protocol import ProtocolViolation
from synth.bench.report import _compute, analyse, write_report
from synth.bench.runner import BenchPlan, run_grid
from synth.training import TrainConfig, train_classifier

TINY_TRAIN = TrainConfig(steps=15, batch_size=16, width=4, hidden=16)
OFFLINE = {"generator": "procedural", "generator_conf": "light", "generator_params": {"working_size": 16},
           "synthetic_per_real": 2, "share": 0.5}


def leaky_arm(data, budget, seed, cfg) -> ArmOutput:
    """A deliberately broken arm: its 'generator' claims to have seen unlabelled images under strict."""
    model = train_classifier(data.labelled, cfg.train, seed=seed)
    return ArmOutput(model, {}, {"generator:leaky": [*data.labelled.ids, "digits-not-allowed"]})


def pool_arm(data, budget, seed, cfg) -> ArmOutput:
    """Uses the unlabelled pool (as an SSL/img2img arm would) and reports it."""
    model = train_classifier(data.labelled, cfg.train, seed=seed)
    seen = list(data.labelled.ids) + ([] if data.unlabelled is None else list(data.unlabelled.ids[:7]))
    return ArmOutput(model, {"pool": data.unlabelled is not None}, {"encoder": seen})


def oracle_arm(data, budget, seed, cfg) -> ArmOutput:
    """Active-learning style: label 3 pool images through the harness's oracle (pool protocol only)."""
    labelled = data.labelled
    if cfg.oracle is not None:
        pick = data.unlabelled.subset(np.arange(3))
        labels = cfg.oracle(pick.ids)
        from synth.data.imageset import ImageSet

        labelled = labelled.concat(ImageSet.build(pick.images, labels, pick.ids, pick.class_names))
    return ArmOutput(train_classifier(labelled, cfg.train, seed=seed), {}, {})


register_arm("_test_leaky", f"{__name__}:leaky_arm")
register_arm("_test_pool", f"{__name__}:pool_arm", uses_unlabelled=True)
register_arm("_test_missing", "synth.no_such_module:arm")


def plan(tmp: Path, arms: dict, **kw) -> BenchPlan:
    return BenchPlan(budgets=kw.get("budgets", [2, 4]), seeds=kw.get("seeds", [0, 1]),
                     protocols=["strict", "unlabelled_pool"], arms=arms, train=TINY_TRAIN, out_dir=tmp,
                     cache_dir=tmp / "gens", progress=False, all_arm_params=arms)


def test_grid_resumes_caches_and_reports(tmp_path, digits_source):
    arms = {"real": {}, "aug_offline": OFFLINE, "_test_pool": {}, "_test_missing": {}}
    p = plan(tmp_path, arms)
    cells, unavailable = run_grid(digits_source, p)
    assert set(unavailable) == {"_test_missing"}
    assert all(c["status"] == "ok" for c in cells)
    import torch

    assert all(c["environment"]["torch"] == torch.__version__ and c["environment"]["cpu"] for c in cells)
    kernels = torch.backends.cpu.get_cpu_capability()  # what makes floats differ between CPUs (stop 51)
    assert all(c["environment"]["torch_cpu_kernels"] == kernels for c in cells)
    # protocol-independent arms run once; the pool arm runs under both protocols and sees the pool only there
    assert len([c for c in cells if c["arm"] == "aug_offline"]) == 4
    pool_cells = {c["protocol"]: c for c in cells if c["arm"] == "_test_pool" and c["seed"] == 0 and c["budget"] == 2}
    assert pool_cells["strict"]["protocol_check"]["components"]["encoder"]["unlabelled_seen"] == 0
    assert pool_cells["unlabelled_pool"]["protocol_check"]["components"]["encoder"]["unlabelled_seen"] == 7
    assert len(list((tmp_path / "gens" / "aug_offline" / "strict").iterdir())) == 4

    again, _ = run_grid(digits_source, p)  # a rerun (or a resumed kill) computes nothing
    assert all(c["resumed"] for c in again)
    assert [c["accuracy"] for c in again] == [c["accuracy"] for c in cells]

    (tmp_path / "cells" / "strict" / "real" / "n4-seed1.json").unlink()  # as if killed before this cell
    p2 = plan(tmp_path, {**arms, "aug_offline": {**OFFLINE, "share": 0.25}})
    third, _ = run_grid(digits_source, p2)
    recomputed = {(c["arm"], c["budget"], c["seed"]) for c in third if not c["resumed"]}
    assert ("real", 4, 1) in recomputed and ("real", 2, 0) not in recomputed
    assert {("aug_offline", b, s) for b in (2, 4) for s in (0, 1)} <= recomputed
    offline = [c for c in third if c["arm"] == "aug_offline"]
    assert all(c["meta"]["cached"] for c in offline)  # same generator config: fitted generators reused

    third[0] = {k: v for k, v in third[0].items() if k != "environment"}  # as if computed before they were recorded
    report = analyse(third, p2, unavailable, n_boot=100)
    envs = report["environments"]
    assert [e["cells"] for e in envs] == [len(third) - 1, 1] and envs[1]["environment"] is None
    assert report["not_available"]["_test_missing"].startswith("cannot import")
    assert "vs_aug_online" not in report["results"]["strict"]["arms"]["aug_offline"]
    paths = write_report(report, tmp_path / "report")
    assert json.loads(paths["json"].read_text())["target"]["accuracy"] == pytest.approx(report["target"]["accuracy"])
    md = paths["md"].read_text()
    assert "## Protocol: unlabelled_pool" in md and "_test_missing" in md and "aug_offline (protocol-independent)" in md
    assert "more than one environment" in md and f"torch {torch.__version__}" in md and "not recorded" in md
    assert f"(torch kernels: {kernels})" in md
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    curve = report["results"]["strict"]["arms"]["real"]["curve"]
    assert np.isfinite(curve["mean"]).all() and curve["n"] == [2.0, 4.0]


def test_a_leaking_arm_aborts_the_benchmark(tmp_path, digits_source):
    with pytest.raises(ProtocolViolation, match="_test_leaky"):
        run_grid(digits_source, plan(tmp_path, {"real": {}, "_test_leaky": {}}, budgets=[2], seeds=[0]))


def test_a_failing_arm_is_reported_not_fatal(tmp_path, digits_source):
    arms = {"real": {}, "aug_offline": {**OFFLINE, "generator_params": {"working_size": -3}}}
    cells, _ = run_grid(digits_source, plan(tmp_path, arms, budgets=[2], seeds=[0]))
    failed = [c for c in cells if c["status"] != "ok"]
    assert [c["arm"] for c in failed] == ["aug_offline"] and failed[0]["error"]


def test_an_arm_can_be_restricted_to_some_budgets(tmp_path, digits_source):
    from synth.bench.runner import plan_tasks

    p = plan(tmp_path, {"real": {}, "aug_offline": {**OFFLINE, "budgets": [4]}})
    tasks, _ = plan_tasks(p)
    assert sorted({t.budget for t in tasks if t.arm == "aug_offline"}) == [4]
    assert sorted({t.budget for t in tasks if t.arm == "real"}) == [2, 4]


def test_an_arm_budget_outside_the_grid_is_named_not_silently_dropped(tmp_path, caplog):
    from synth.bench.runner import plan_tasks

    p = plan(tmp_path, {"real": {"budgets": [2, 3]}})
    with caplog.at_level("WARNING", logger="synth.bench"):
        tasks, _ = plan_tasks(p)
    assert sorted({t.budget for t in tasks}) == [2]
    assert "arm real: budgets [3] are not in bench.budgets [2, 4]" in caplog.text


def test_costly_cells_start_first_and_cost_is_not_part_of_the_cell_hash(tmp_path, digits_source):
    from synth.bench.runner import plan_tasks
    from synth.errors import ConfigError

    p = plan(tmp_path, {"real": {"cost": 1}, "aug_offline": {**OFFLINE, "cost": 50}}, seeds=[0])
    order = [(t.arm, t.budget) for t in plan_tasks(p)[0]]
    assert order == [("aug_offline", 4), ("aug_offline", 2), ("real", 4), ("real", 2)]
    first, _ = run_grid(digits_source, p)
    cheaper = plan(tmp_path, {"real": {"cost": 3}, "aug_offline": {**OFFLINE, "cost": 2}}, seeds=[0])
    again, _ = run_grid(digits_source, cheaper)  # a new scheduling hint recomputes nothing
    assert all(c["resumed"] for c in again) and len(again) == len(first) == 4
    with pytest.raises(ConfigError, match="cost must be a number > 0"):
        plan_tasks(plan(tmp_path, {"real": {"cost": "high"}}))


def test_config_registered_arm_with_label_oracle(tmp_path, digits_source):
    arms = {"real": {}, "_test_oracle": {"target": f"{__name__}:oracle_arm", "uses_unlabelled": True}}
    cells, unavailable = run_grid(digits_source, plan(tmp_path, arms, budgets=[2], seeds=[0]))
    assert not unavailable
    by = {(c["arm"], c["protocol"]): c for c in cells}
    pool_cell = by[("_test_oracle", "unlabelled_pool")]
    assert pool_cell["labelled_used"] == 20 + 3 and by[("_test_oracle", "strict")]["labelled_used"] == 20
    assert pool_cell["protocol_check"]["components"]["label oracle"]["unlabelled_seen"] == 3


def test_oracle_refuses_ids_outside_the_pool(digits_splits, digits_source):
    from synth.bench.protocol import POOL, LabelOracle, arm_data

    data = arm_data(digits_splits, POOL)
    oracle = LabelOracle(data, digits_source.pool)
    ids = list(data.unlabelled.ids[:2])
    truth = {str(i): int(lab) for i, lab in zip(digits_source.pool.ids, digits_source.pool.labels, strict=True)}
    assert oracle(ids).tolist() == [truth[i] for i in ids]
    with pytest.raises(ProtocolViolation):
        oracle([str(data.labelled.ids[0])])  # already labelled: not the oracle's to answer
    with pytest.raises(ProtocolViolation):
        oracle([str(digits_splits.test.ids[0])])
    assert oracle.queried == ids


def test_combined_arm_with_the_mixers_tuner(tmp_path, digits_source):
    combined = {"tuner": "mixing", "source": "aug_offline", "augment": "light",
                "augment_params": {"working_size": 16}, "k": 2, "cv_steps": 5, "ratios": [0.0, 1.0]}
    arms = {"real": {}, "aug_offline": OFFLINE, "combined": combined}
    p = plan(tmp_path, {"real": {}, "combined": combined}, budgets=[2], seeds=[0])
    p.all_arm_params = arms
    cells, _ = run_grid(digits_source, p)
    cell = next(c for c in cells if c["arm"] == "combined")
    assert cell["status"] == "ok", cell.get("error")
    assert len(cell["meta"]["tuning"]["candidates"]) == 4  # ratio {0, 1} x augment {off, on}
    assert cell["protocol_check"]["components"]["generator:aug_offline"]["labelled_seen"] == 20


def test_unregistered_generator_makes_an_arm_unavailable():
    why = arm_registry.availability("diffusion", {"generator": "no_such_generator"})
    assert why and "no_such_generator" in why
    assert arm_registry.availability("real", {}) is None


def test_an_arm_at_one_budget_is_reported_per_budget_against_real_and_augmentation(tmp_path):
    # hand-made cells: real and aug_online at every budget, a costly generator arm at n=4 only
    accs = {"real": {2: 0.6, 4: 0.7, 8: 0.8}, "aug_online": {2: 0.65, 4: 0.75, 8: 0.85}, "gen": {4: 0.8}}
    cells = [{"protocol": "strict", "arm": a, "budget": b, "seed": s, "status": "ok", "accuracy": acc + 0.01 * s}
             for a, by in accs.items() for b, acc in by.items() for s in (0, 1, 2)]
    arms = {a: {} for a in accs}
    p = BenchPlan(budgets=[2, 4, 8], seeds=[0, 1, 2], protocols=["strict"], arms=arms, train=TINY_TRAIN,
                  out_dir=tmp_path, progress=False, all_arm_params=arms)
    gen = analyse(cells, p, {}, n_boot=100)["results"]["strict"]["arms"]["gen"]
    assert gen["vs_real"]["bound"] == "n/a" and gen["vs_real"]["verdict"].startswith("single budget (n=4)")
    assert gen["need"]["censor"] == "single budget"
    at4 = {k: gen[k][1] for k in ("per_budget_vs_real", "per_budget_vs_aug_online")}
    assert at4["per_budget_vs_real"]["value"] == pytest.approx(2.0)  # real reaches 0.8 at n=8
    assert 1.0 < at4["per_budget_vs_aug_online"]["value"] < 2.0  # aug_online reaches it between 4 and 8
    md = write_report(analyse(cells, p, {}, n_boot=100), tmp_path / "r")["md"].read_text()
    assert "### Multiplier at each budget vs aug_online" in md and "| gen | – | 2.00x" in md


def test_the_report_names_crossings_read_across_a_wide_gap_between_budgets(tmp_path):
    # target 0.89 (real at n = 10 minus 0.01): real crosses between 5 and 10 (2x apart: not named),
    # the arm between 2 and 5 (2.5x apart: named)
    accs = {"real": {2: 0.6, 5: 0.7, 10: 0.9}, "arm": {2: 0.7, 5: 0.95, 10: 0.97}}
    cells = [{"protocol": "strict", "arm": a, "budget": b, "seed": s, "status": "ok", "accuracy": acc}
             for a, by in accs.items() for b, acc in by.items() for s in (0, 1)]
    arms = {a: {} for a in accs}
    p = BenchPlan(budgets=[2, 5, 10], seeds=[0, 1], protocols=["strict"], arms=arms, train=TINY_TRAIN,
                  out_dir=tmp_path, progress=False, all_arm_params=arms)
    md = write_report(analyse(cells, p, {}, n_boot=20), tmp_path / "r")["md"].read_text()
    note = next(line for line in md.splitlines() if line.startswith("Read on a straight line"))
    assert "arm (n = 2 → 5)" in note and "real (" not in note


def _search_cell(budget: int, seed: int, recipe: str, acc: float, gain: float = 0.04) -> dict:
    cand = {"nothing": {"gain_vs_nothing": 0.0, "gain_se": 0.0, "brier_gain_vs_nothing": 0.0, "brier_gain_se": 0.0},
            recipe: {"gain_vs_nothing": 0.02, "gain_se": 0.01, "brier_gain_vs_nothing": gain, "brier_gain_se": 0.01}}
    return {"protocol": "unlabelled_pool", "arm": "auto", "budget": budget, "seed": seed, "status": "ok",
            "accuracy": acc, "meta": {"recipe": recipe, "candidates": cand, "search_seconds": 12.0}}


def test_the_report_lists_every_recipe_search_decision_against_real_on_the_same_cell(tmp_path):
    # real runs under strict only; the search's cells (pool protocol) are paired with it by budget and seed
    real = {(2, 0): 0.60, (2, 1): 0.62, (4, 0): 0.70, (4, 1): 0.72}
    cells = [{"protocol": "strict", "arm": "real", "budget": b, "seed": s, "status": "ok", "accuracy": a}
             for (b, s), a in real.items()]
    gated = _search_cell(2, 1, "semi", 0.70)
    gated["meta"]["reason"] = "consistency training adopted by the precision gate: 40 of 40 held-out predictions ..."
    defaulted = _search_cell(4, 1, "aug=light", 0.72)
    defaulted["meta"]["reason"] = "default augmentation policy adopted: CV shows no harm (light); vs real only: ..."
    cells += [_search_cell(2, 0, "nothing", 0.60), gated,
              _search_cell(4, 0, "aug=light", 0.69), defaulted,
              _search_cell(4, 7, "semi", 0.99),  # a seed outside the report's grid is not listed
              {"protocol": "unlabelled_pool", "arm": "other", "budget": 2, "seed": 0, "status": "ok",
               "accuracy": 0.5, "meta": {"steps": 3}}]
    arms = {"real": {}, "auto": {}, "other": {}}
    p = BenchPlan(budgets=[2, 4], seeds=[0, 1], protocols=["strict", "unlabelled_pool"], arms=arms,
                  train=TINY_TRAIN, out_dir=tmp_path, progress=False, all_arm_params=arms)
    report = analyse(cells, p, {}, n_boot=50)
    assert list(report["decisions"]) == ["unlabelled_pool/auto"]  # arms without a search record are not listed
    auto = report["decisions"]["unlabelled_pool/auto"]
    assert [(r["budget"], r["seed"], r["recipe"]) for r in auto["rows"]] == [
        ("n2", 0, "nothing"), ("n2", 1, "semi"), ("n4", 0, "aug=light"), ("n4", 1, "aug=light")]
    assert auto["rows"][1]["diff"] == pytest.approx(0.08) and auto["rows"][1]["cv"]["metric"] == "brier"
    assert [r["route"] for r in auto["rows"]] == [None, "precision gate", "gain", "default policy"]
    assert auto["summary"] == {"cells": 4, "adopted": 3, "above": 1, "tied": 1, "below": 1,
                               "worst": pytest.approx(-0.01), "best": pytest.approx(0.08)}
    md = write_report(report, tmp_path / "r")["md"].read_text()
    assert "| unlabelled_pool/auto | 4 | 3 | 1 / 1 / 1 | -0.0100 · +0.0800 |" in md
    assert "| unlabelled_pool/auto | n2 | 1 | semi *(gate)* | brier +0.040 ± 0.010 | 0.7000 | 0.6200 | +0.0800 |" in md
    assert "| unlabelled_pool/auto | n4 | 0 | aug=light | brier" in md
    assert "| unlabelled_pool/auto | n4 | 1 | aug=light *(default)* | brier" in md
    assert "batch-mix stage" not in md  # no cell mixed: the legend says nothing about it
    defaulted["meta"]["recipe"] = "aug=light+mixup"  # mixup added on top of the default by the gain rule
    defaulted["meta"]["candidates"]["aug=light+mixup"] = defaulted["meta"]["candidates"].pop("aug=light")
    md = write_report(analyse(cells, p, {}, n_boot=50), tmp_path / "r")["md"].read_text()
    assert "| unlabelled_pool/auto | n4 | 1 | aug=light+mixup *(default)* | brier" in md
    assert "was added on top of the default by the batch-mix stage, by the gain rule" in md
    assert "(run k of K)" not in md  # no cell restarted: the legend says nothing about it
    gated["meta"]["restarts"] = {"runs": 5, "max_labels": 2, "picked": 3, "pool_confidence": [0.9, 0.9, 0.9, 0.99, 0.9]}
    md = write_report(analyse(cells, p, {}, n_boot=50), tmp_path / "r")["md"].read_text()
    assert "| unlabelled_pool/auto | n2 | 1 | semi *(gate)* *(run 3 of 5)* | brier +0.040 ± 0.010 |" in md
    assert "run k (0: the single run) kept, the most confident on the pool" in md


def test_compute_totals_do_not_depend_on_the_order_cells_are_read_in(tmp_path):
    # rounding each partial sum to 0.1 s once gave 10925.0 or 10925.1 for the same cells
    secs = [0.04, 0.04, 0.04, 1.26, 2.37, 3.33]
    cells = [{"protocol": "strict", "arm": "real", "budget": 2, "seed": i, "status": "ok", "accuracy": 0.5,
              "seconds": s} for i, s in enumerate(secs)]
    totals = {_compute(order)["strict/real"]["seconds"] for order in (cells, cells[::-1], cells[3:] + cells[:3])}
    assert totals == {7.1}


def test_a_late_key_at_its_off_value_leaves_the_cell_hash_alone():
    """`batch_mixes: []` added to the auto entry must not recompute the auto cells computed before it existed;
    on, it must (it changes what the search tries)."""
    from omegaconf import OmegaConf

    from synth.bench.arms import hashed_params

    before = {"k_folds": 3, "budgets": [2, 5]}
    assert hashed_params({**before, "batch_mixes": []}) == hashed_params(before) == {"k_folds": 3}
    assert hashed_params(OmegaConf.create({**before, "batch_mixes": []})) == {"k_folds": 3}
    assert hashed_params({**before, "batch_mixes": ["mixup"]}) == {"k_folds": 3, "batch_mixes": ["mixup"]}
    assert hashed_params({**before, "batch_mix_metric": None}) == {"k_folds": 3}
    assert hashed_params({**before, "batch_mix_metric": "brier_t"}) == {"k_folds": 3, "batch_mix_metric": "brier_t"}
    assert hashed_params({**before, "prune_default": True}) == {"k_folds": 3}
    assert hashed_params({**before, "prune_default": False}) == {"k_folds": 3, "prune_default": False}
    assert hashed_params({**before, "semi_restarts": None}) == {"k_folds": 3}
    on = {"runs": 5, "max_labels": 2}
    assert hashed_params({**before, "semi_restarts": on}) == {"k_folds": 3, "semi_restarts": on}


def test_report_lists_protocol_components_in_one_order_however_cells_were_read():
    """A report re-rendered from disk must equal the one written when the cells were computed (stop 51: the
    component order followed the cell's dict order, which a JSON round trip sorts)."""
    from synth.bench.report import _checks

    def cell(components):
        rec = {name: {"labelled_seen": 1, "unlabelled_seen": 2} for name in components}
        return {"protocol": "unlabelled_pool", "arm": "stack", "protocol_check": {"components": rec}}

    fresh, read_back = _checks([cell(["teacher", "oracle"])]), _checks([cell(["oracle", "teacher"])])
    assert fresh == read_back and list(fresh["unlabelled_pool/stack"]["components"]) == ["oracle", "teacher"]
