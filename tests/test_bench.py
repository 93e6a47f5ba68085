"""Benchmark harness: interpolation, bootstrap multipliers, verdicts, protocol enforcement (fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.bench import curves
from synth.bench.protocol import (
    POOL,
    STRICT,
    ArmData,
    ProtocolViolation,
    arm_data,
    check_seen,
    parse_budgets,
    parse_seeds,
)
from synth.errors import ConfigError
from synth.training import TrainConfig

NS = [2.0, 5.0, 10.0, 20.0, 50.0]


def test_need_interpolates_on_log_n():
    need = curves.need_for_target([10, 40], [0.8, 0.9], 0.85)
    assert need.censor == ""
    assert need.n == pytest.approx(20.0)  # halfway in log space between 10 and 40 is 20, not 25


def test_need_is_censored_not_extrapolated():
    assert curves.need_for_target(NS, [0.9, 0.92, 0.95, 0.96, 0.97], 0.85) == curves.Need(2.0, curves.BELOW)
    above = curves.need_for_target(NS, [0.5, 0.6, 0.7, 0.75, 0.8], 0.85)
    assert above.censor == curves.ABOVE and np.isinf(above.n)


def test_need_takes_the_first_crossing_and_skips_missing_budgets():
    need = curves.need_for_target(NS, [0.5, 0.9, 0.8, np.nan, 0.95], 0.85)
    assert 2.0 < need.n < 5.0
    assert curves.need_for_target(NS, [0.5, np.nan, 0.9, 0.9, 0.95], 0.7).n > 2.0


def test_crossing_bracket_names_the_budgets_either_side_of_the_interpolated_crossing():
    assert curves.crossing_bracket(NS, [0.5, 0.9, 0.8, np.nan, 0.95], 0.85) == (2.0, 5.0)
    assert curves.crossing_bracket(NS, [0.5, np.nan, 0.8, 0.84, 0.95], 0.85) == (20.0, 50.0)  # skips a missing budget
    assert curves.crossing_bracket(NS, [0.9, 0.92, 0.95, 0.96, 0.97], 0.85) is None  # reached at the first budget
    assert curves.crossing_bracket(NS, [0.5, 0.6, 0.7, 0.75, 0.8], 0.85) is None  # never reached


def test_interp_log_is_nan_outside_the_measured_range():
    assert curves.interp_log([2, 8], [0.6, 0.8], 4) == pytest.approx(0.7)
    assert np.isnan(curves.interp_log([2, 8], [0.6, 0.8], 1))


def _curves(shift: float, noise: float, seeds: int = 3, seed: int = 0) -> np.ndarray:
    """Accuracy = a + b log n, with `shift` in log n (a 2x data multiplier is shift = log 2)."""
    rng = np.random.default_rng(seed)
    base = 0.5 + 0.1 * (np.log(NS) + shift)
    return np.clip(base + rng.normal(0, noise, size=(seeds, len(NS))), 0, 1)


def test_multiplier_recovers_a_known_shift_with_a_ci_above_one():
    real, arm = _curves(0.0, 0.002), _curves(np.log(2.0), 0.002, seed=1)
    m = curves.multiplier_at_target(NS, real, arm, target=0.5 + 0.1 * np.log(20.0), n_boot=500)
    assert m.value == pytest.approx(2.0, rel=0.1)
    assert m.lo > 1.0 and m.verdict == "gain"


def test_equal_arms_are_called_no_gain_plainly():
    real, arm = _curves(0.0, 0.03, seed=2), _curves(0.0, 0.03, seed=3)
    m = curves.multiplier_at_target(NS, real, arm, target=0.5 + 0.1 * np.log(15.0), n_boot=500)
    assert m.lo <= 1.0 <= m.hi
    assert m.verdict == "no gain: CI includes 1.0x"


def test_an_arm_that_never_reaches_the_target_is_worse_with_an_upper_bound():
    real, arm = _curves(0.0, 0.0), _curves(-3.0, 0.0)
    m = curves.multiplier_at_target(NS, real, arm, target=0.5 + 0.1 * np.log(30.0), n_boot=50)
    assert m.bound == "<" and m.value == pytest.approx(30.0 / 50.0, rel=1e-6)
    assert m.verdict.startswith("worse")


def test_an_arm_measured_only_at_small_budgets_is_inconclusive_not_worse():
    real, arm = _curves(0.0, 0.0), _curves(0.0, 0.0)
    arm[:, 2:] = np.nan  # run cut short after n=5
    m = curves.multiplier_at_target(NS, real, arm, target=0.5 + 0.1 * np.log(30.0), n_boot=50)
    assert m.bound == "<" and m.value == pytest.approx(30.0 / 5.0, rel=1e-6)
    assert m.verdict.startswith("inconclusive")


def test_an_arm_at_target_from_the_smallest_budget_gives_a_lower_bound():
    real, arm = _curves(0.0, 0.0), _curves(3.0, 0.0)
    m = curves.multiplier_at_target(NS, real, arm, target=0.5 + 0.1 * np.log(30.0), n_boot=50)
    assert m.bound == ">=" and m.value == pytest.approx(15.0, rel=1e-6)


def test_a_baseline_that_never_reaches_the_target_gives_a_finite_lower_bound():
    real, arm = _curves(-3.0, 0.0), _curves(0.0, 0.0)
    m = curves.multiplier_at_target(NS, real, arm, target=0.5 + 0.1 * np.log(25.0), n_boot=50)
    assert m.bound == ">=" and m.value == pytest.approx(50.0 / 25.0, rel=1e-6)
    assert np.isfinite(m.lo) and np.isfinite(m.hi) and m.verdict == "gain"


def test_a_ci_bound_at_one_up_to_float_rounding_is_not_a_gain():
    assert curves.verdict(1.5, 1.0000000000000002, 2.0, n_seeds=3) == "no gain: CI includes 1.0x"
    assert curves.verdict(0.8, 0.5, 0.9999999999999998, n_seeds=3) == "no gain: CI includes 1.0x"
    assert curves.verdict(1.5, 1.01, 2.0, n_seeds=3) == "gain"


def test_an_arm_measured_at_one_budget_gets_no_data_to_target():
    real, arm = _curves(0.0, 0.0), _curves(np.log(2.0), 0.0)
    arm[:, [0, 1, 3, 4]] = np.nan  # measured at NS[2] only
    m = curves.multiplier_at_target(NS, real, arm, target=0.5 + 0.1 * np.log(20.0), n_boot=50)
    assert m.bound == "n/a" and np.isnan(m.value) and m.arm_need.censor == curves.SINGLE
    assert m.verdict.startswith(f"single budget (n={NS[2]:g})")
    assert np.isfinite(m.base_need.n)  # the baseline's need is still reported


def test_single_seed_says_there_is_no_ci():
    m = curves.multiplier_at_target(NS, _curves(0, 0, seeds=1), _curves(1, 0, seeds=1), target=0.7, n_boot=50)
    assert m.lo == m.hi == m.value and "single seed" in m.verdict


def test_bootstrap_is_paired_over_seeds():
    # Seed luck shared by both arms (same labelled subset) must cancel in the ratio.
    luck = np.array([[-0.05], [0.0], [0.05]])
    real, arm = _curves(0.0, 0.0) + luck, _curves(np.log(2.0), 0.0) + luck
    m = curves.multiplier_at_target(NS, real, arm, target=0.5 + 0.1 * np.log(20.0), n_boot=500)
    assert m.hi / m.lo < 1.05


def test_an_arm_run_on_some_seeds_is_compared_on_those_seeds_only():
    # Seed 0 drew a bad labelled subset; an arm run on seed 0 alone must be compared with
    # real-only on seed 0, not with real-only averaged over luckier seeds, and must not claim a CI.
    luck = np.array([[-0.1], [0.05], [0.05]])
    real, arm = _curves(0.0, 0.0) + luck, _curves(np.log(2.0), 0.0) + luck
    arm[1:] = np.nan
    target = 0.5 + 0.1 * np.log(20.0) - 0.1
    m = curves.multiplier_at_target(NS, real, arm, target=target, n_boot=200)
    assert m.value == pytest.approx(2.0, rel=0.05)
    assert m.lo == m.hi == m.value
    assert "single seed" in m.verdict and "paired over 1 of 3 seeds" in m.verdict
    per = curves.per_budget_multipliers(NS, real, arm, n_boot=50)
    assert per[1]["value"] == pytest.approx(2.0, rel=1e-6) and "1 of 3 seeds" in per[1]["verdict"]
    halved = curves.halved_comparison(NS, real, arm, n_boot=50)
    assert all("1 of 3 seeds" in d["verdict"] for d in halved)


def test_per_budget_and_halved_comparisons():
    real, arm = _curves(0.0, 0.0), _curves(np.log(2.0), 0.0)
    per = curves.per_budget_multipliers(NS, real, arm, n_boot=50)
    assert [d["value"] for d in per[:3]] == pytest.approx([2.0, 2.0, 2.0], rel=1e-6)
    assert per[-1]["bound"] == ">="  # the arm at 50 beats anything real-only measured
    halved = {d["n"]: d for d in curves.halved_comparison(NS, real, arm, n_boot=50)}
    assert 2.0 not in halved  # 1 per class was not measured: skipped, not extrapolated
    assert halved[10.0]["diff"] == pytest.approx(0.0, abs=1e-9) and not halved[10.0]["interpolated"]
    assert halved[20.0]["interpolated"] is False and halved[50.0]["interpolated"] is True


def test_default_target_is_real_at_the_largest_budget_minus_margin():
    real = np.array([[0.5, 0.9, np.nan], [0.5, 0.92, np.nan]])
    assert curves.default_target([1, 2, 4], real, 0.01) == pytest.approx(0.90)


# ------------------------------------------------------------------ protocol
def test_strict_arm_data_holds_no_pool_and_pool_arm_data_no_labels(digits_splits):
    strict, pool = arm_data(digits_splits, STRICT), arm_data(digits_splits, POOL)
    assert strict.unlabelled is None
    assert (pool.unlabelled.labels == -1).all()
    test_ids = set(digits_splits.test.ids)
    assert not (strict.allowed_ids() | pool.allowed_ids()) & test_ids
    assert strict.fingerprint() != pool.fingerprint()


def test_check_seen_records_and_rejects_leaks(digits_splits):
    strict, pool = arm_data(digits_splits, STRICT), arm_data(digits_splits, POOL)
    unl = list(digits_splits.unlabelled.ids[:5])
    test_ids = set(map(str, digits_splits.test.ids))
    rec = check_seen("img2img", pool, {"gen": list(pool.labelled.ids) + unl}, test_ids)
    assert rec["components"]["gen"] == {"seen": len(pool.labelled) + 5, "labelled_seen": len(pool.labelled),
                                       "unlabelled_seen": 5}
    with pytest.raises(ProtocolViolation, match="strict"):
        check_seen("img2img", strict, {"gen": unl}, test_ids)
    with pytest.raises(ProtocolViolation, match="1 of them test"):
        check_seen("x", pool, {"gen": [str(digits_splits.test.ids[0])]}, test_ids)


def test_budget_and_seed_parsing():
    assert parse_budgets(["all", 10, "2", 5]) == [2, 5, 10, "all"]
    for bad in ([], [0], ["ten"], [2.5]):
        with pytest.raises(ConfigError):
            parse_budgets(bad)
    with pytest.raises(ConfigError):
        parse_seeds([0, 0])


def test_arm_data_of_the_whole_pool_has_no_unlabelled(digits_source):
    from synth.bench.protocol import split_for

    splits = split_for(digits_source, "all", 0)
    assert arm_data(splits, POOL).unlabelled is None
    assert isinstance(arm_data(splits, POOL), ArmData)


def test_policy_arm_trains_the_named_policy_with_its_regularisers(tiny_labelled):
    """The fixed `policy` arm (conf/bench/base.yaml policy_sp5*) trains exactly what the recipe with that policy
    trains, loss-side regularisers included, and refuses a missing or unknown policy name."""
    from synth.bench.arms import ArmConfig, arm_policy
    from synth.bench.protocol import ArmData
    from synth.recipe import Recipe, preset, train_with

    train = TrainConfig(steps=6, batch_size=8, width=4, hidden=16)
    data = ArmData(tiny_labelled, None, "strict")

    def flat(model):
        return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])

    out = arm_policy(data, 3, 0, ArmConfig("policy_sp5_ls", {"policy": "strong@p0.5+ls0.1"}, train))
    assert out.meta == {"policy": "strong@p0.5+ls0.1"}
    same = train_with(Recipe(policy=preset("strong@p0.5+ls0.1")), tiny_labelled, None, 0, train)
    plain = train_with(Recipe(policy=preset("strong@p0.5")), tiny_labelled, None, 0, train)
    assert torch.equal(flat(out.model), flat(same)) and not torch.equal(flat(out.model), flat(plain))
    for params, match in (({}, "needs `policy`"), ({"policy": "strongest"}, "unknown augmentation preset")):
        with pytest.raises(ConfigError, match=match):
            arm_policy(data, 3, 0, ArmConfig("policy", params, train))
