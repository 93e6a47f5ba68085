"""The benchmark's recipe-search arms ("auto" and its variants): settings from the YAML only, the protocol check,
and that each arm measures what `synth recommend` ships (the arms exist to put recommend's search in the harness)."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from synth.errors import ConfigError
from synth.recipe import preset
from synth.semi import semi_candidates
from synth.training import TrainConfig, accuracy
from tests.conftest import CONF

#: The benchmark's "auto" arm entry as the bench config defines it (its settings live only there).
AUTO_YAML = OmegaConf.to_container(OmegaConf.load(CONF / "bench" / "base.yaml").arms.auto)


def test_auto_bench_arm_registers_by_config_and_passes_the_protocol_check(digits_splits):
    """The "auto" arm under both protocols: searches inside ArmData only, reports what it saw."""
    from synth.bench.arms import ArmConfig, availability, ensure_registered, resolve, uses_unlabelled
    from synth.bench.protocol import ArmData, check_seen

    params = {**AUTO_YAML, "k_folds": 2,
              "presets": [], "n_random_policies": 0, "sources": ["pseudo_label"], "max_unlabelled": 60,
              "search_train": {"steps": 30, "width": 8, "hidden": 16},
              "source_configs": {"pseudo_label": {"steps": 30, "width": 8, "hidden": 16}},
              "semi": [{"steps": 10, "unlabelled_ratio": 1, "threshold": 0.5},
                       {"steps": 10, "unlabelled_ratio": 1, "threshold": 0.5, "weak": "none"}]}
    ensure_registered("auto", params)
    assert availability("auto", params) is None and uses_unlabelled("auto", params)
    arm = resolve("auto")
    ls = digits_splits.labelled
    labelled = ls.subset(np.concatenate([np.flatnonzero(ls.labels == c)[:4] for c in range(ls.n_classes)]))
    pool = digits_splits.unlabelled.subset(np.arange(200)).without_labels()
    test_ids = set(map(str, digits_splits.test.ids))
    cfg = ArmConfig("auto", params, TrainConfig(steps=30, batch_size=32, width=8, hidden=16))
    for data in (ArmData(labelled, None, "strict"), ArmData(labelled, pool, "unlabelled_pool")):
        out = arm(data, 4, 0, cfg)
        record = check_seen("auto", data, out.seen, test_ids)
        comp = record["components"]["recipe_search"]
        assert comp["labelled_seen"] == len(labelled)
        assert comp["unlabelled_seen"] == (0 if data.unlabelled is None else 60)  # the capped pool subset
        assert out.meta["pool"] == comp["unlabelled_seen"] and out.meta["trials"] >= 1
        assert out.meta["candidates"]["nothing"]["stage"] == "baseline"
        # consistency training is a candidate only where there is a pool to train on
        # every semi candidate, named by its non-default settings
        semis = sorted(k for k, v in out.meta["candidates"].items() if v["stage"] == "semi")
        expected = ["semi(steps=10,unlabelled_ratio=1,threshold=0.5)", "semi(steps=10,unlabelled_ratio=1,threshold=0.5,weak=none)"]
        assert semis == (expected if data.unlabelled is not None else [])
        assert len(out.meta["candidates"]) == out.meta["trials"]
        assert all(v["seconds"] > 0 for v in out.meta["candidates"].values())  # what each trial cost
        assert len(out.meta["skipped_candidates"]) == out.meta["skipped"]
        assert accuracy(out.model, digits_splits.test) > 0.2
    with pytest.raises(ConfigError, match="unknown key"):
        arm(ArmData(labelled, None, "strict"), 4, 0, ArmConfig("auto", {**params, "max_secs": 1}, cfg.train))
    with pytest.raises(ConfigError, match="semi_restarts.runs must be an integer >= 1"):  # before any search
        arm(ArmData(labelled, None, "strict"), 4, 0, ArmConfig("auto", {**params, "semi_restarts": {"runs": 0}}, cfg.train))


def test_auto_arm_settings_come_from_the_yaml_only(tmp_path):
    """No code-side defaults: the cell hash covers the YAML params, so every setting must be there."""
    from synth.commands.bench import make_plan
    from synth.recipe.bench_arm import SEARCH_KEYS, arm_params, search_settings

    assert set(SEARCH_KEYS) <= set(AUTO_YAML) and AUTO_YAML["metric"] == "brier"
    s = search_settings(arm_params("auto", AUTO_YAML), TrainConfig())
    assert s["k_folds"] == 3 and s["space"].presets == ("light", "strong") and s["space"].aug_probs == (0.5,)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for preset in ("smoke", "digits", "digits_labels", "fashion_mnist"):
            cfg = compose("bench", overrides=[f"bench={preset}", f"out_dir={tmp_path}", "progress=false",
                                              "bench.arms.auto.max_trials=3"])
            all_params = make_plan(cfg).all_arm_params
            assert arm_params("auto", all_params["auto"])["max_trials"] == 3  # a preset's override reaches the arm
            for name, params in all_params.items():  # every auto-like arm is complete
                if params.get("target") == "synth.recipe.bench_arm:arm_auto":
                    search_settings(arm_params(name, params), TrainConfig())
    incomplete = {k: v for k, v in AUTO_YAML.items() if k != "aug_probs"}
    with pytest.raises(ConfigError, match=r"bench.arms.auto_fast: missing key\(s\) \['aug_probs'\].*base.yaml"):
        arm_params("auto_fast", incomplete)


@pytest.mark.parametrize("name", ["auto_align", "auto_gate"])
def test_auto_align_and_gate_arms_try_the_semi_stage_recommend_ships(name):
    """They exist to measure recommend's semi stage in the harness: the two must not drift apart.

    auto_gate is recommend's whole semi stage (candidates, budget and precision gate); auto_align the
    same without the gate (its cells were measured before the gate existed).
    """
    from synth.recipe.bench_arm import arm_params, search_settings

    base = OmegaConf.load(CONF / "bench" / "base.yaml")
    arm = OmegaConf.to_container(base.arms[name], resolve=True)
    recommend = OmegaConf.load(CONF / "recommend.yaml").search
    shipped = semi_candidates(recommend.semi)
    settings = search_settings(arm_params(name, arm), TrainConfig())
    assert settings["space"].semi == shipped and all(c.align for c in shipped) and len(shipped) == 2
    assert arm["max_seconds"] == recommend.max_seconds
    gate = recommend.semi_min_precision if name == "auto_gate" else None
    assert settings["semi_min_precision"] == gate and (name == "auto_align" or gate == 0.95)


def test_auto_default_ls_arm_measures_the_default_policies_recommend_ships():
    from synth.recipe.bench_arm import arm_params, search_settings
    from synth.recipe.candidates import default_names

    base = OmegaConf.load(CONF / "bench" / "base.yaml")
    recommend = OmegaConf.load(CONF / "recommend.yaml").search
    settings = {a: search_settings(arm_params(a, OmegaConf.to_container(base.arms[a], resolve=True)), TrainConfig())
                for a in ("auto", "auto_default", "auto_default_ls")}
    shipped, smoothed = default_names(recommend.default_policy), ("strong@p0.5+ls0.1", "strong@p0.5")
    assert settings["auto_default_ls"]["default_policy"] == smoothed
    assert shipped == ("strong@p0.5+ls0.1+x4", "strong@p0.5")  # auto_default_x4's, checked below
    assert settings["auto_default"]["default_policy"] == ("strong@p0.5",)  # its measured cells keep their behaviour
    assert settings["auto"]["default_policy"] is None
    # nothing but the default differs between the arm that measured the plain default and the one that ships
    plain, ls = (OmegaConf.to_container(base.arms[a], resolve=True) for a in ("auto_default", "auto_default_ls"))
    assert {k: v for k, v in plain.items() if k != "default_policy"} == {k: v for k, v in ls.items()
                                                                          if k != "default_policy"}
    names = [p.name for p in (preset(n).with_prob(q) for q in (1.0, *settings["auto_default"]["space"].aug_probs)
                                for n in settings["auto_default"]["space"].presets)]
    assert shipped[-1] in names  # the fallback is a candidate; the smoothed default is added by the search
    # auto_gate_default is auto_gate (recommend's search with a pool) plus the plain default: nothing else differs
    gate, both = (OmegaConf.to_container(base.arms[a], resolve=True) for a in ("auto_gate", "auto_gate_default"))
    assert {k: v for k, v in both.items() if k != "default_policy"} == {k: v for k, v in gate.items()
                                                                         if k != "default_policy"}
    assert both["default_policy"] == "strong@p0.5" and gate["default_policy"] is None
    # auto_default_mix is auto_default_ls plus the batch-mix stage (and recommend's 600 s budget)
    mix = OmegaConf.to_container(base.arms["auto_default_mix"], resolve=True)
    assert {k: (v, mix[k]) for k, v in ls.items() if mix[k] != v} == {"max_seconds": (480, 600),
                                                                       "batch_mixes": ([], ["mixup"])}
    mixes = search_settings(arm_params("auto_default_mix", mix), TrainConfig())["space"].batch_mixes
    assert mixes == tuple(recommend.batch_mixes) == ("mixup",)  # the stage recommend ships is the one measured
    # auto_default_unpruned is auto_default_mix with the defaults run on every fold, as recommend ships it
    full = OmegaConf.to_container(base.arms["auto_default_unpruned"], resolve=True)
    assert {k: (v, full[k]) for k, v in mix.items() if full[k] != v} == {"prune_default": (True, False)}
    assert search_settings(arm_params("auto_default_unpruned", full), TrainConfig())["prune_default"] is False
    assert recommend.prune_default is False and recommend.batch_mix_metric is None
    # auto_default_x4 is auto_default_unpruned with the smoothed default trained 4x the steps
    longer = OmegaConf.to_container(base.arms["auto_default_x4"], resolve=True)
    assert {k: (v, longer[k]) for k, v in full.items() if longer[k] != v} == {
        "default_policy": (list(smoothed), list(shipped))}  # the arm that measured recommend's
    assert preset(longer["default_policy"][0]).steps_scale == 4.0
    # auto_default_settled is auto_default_x4 with settle_default, as recommend ships it
    settled = OmegaConf.to_container(base.arms["auto_default_settled"], resolve=True)
    assert {k: (v, settled[k]) for k, v in longer.items() if settled[k] != v} == {"settle_default": (False, True)}
    assert search_settings(arm_params("auto_default_settled", settled), TrainConfig())["settle_default"] is True
    assert recommend.settle_default is True
    # auto_pool_default is auto_gate (recommend with a pool) plus what default_policy_with_pool turns on
    pooled = OmegaConf.to_container(base.arms["auto_pool_default"], resolve=True)
    assert {k: (v, pooled[k]) for k, v in gate.items() if pooled[k] != v} == {
        "max_trials": (10, 12), "default_policy": (None, list(smoothed)), "batch_mixes": ([], ["mixup"]),
        "prune_default": (True, False)}


def test_auto_pool_x4_arm_measures_recommends_search_with_a_pool_and_the_default_route():
    """auto_pool_x4 puts recommend's with-pool search with the default route (`default_policy_with_pool: true`)
    in the harness: no drift between the two."""
    from synth.recipe.bench_arm import arm_params, search_settings
    from synth.recipe.candidates import default_names

    base = OmegaConf.load(CONF / "bench" / "base.yaml")
    recommend = OmegaConf.load(CONF / "recommend.yaml").search
    arm = OmegaConf.to_container(base.arms["auto_pool_x4"], resolve=True)
    settings = search_settings(arm_params("auto_pool_x4", arm), TrainConfig())
    assert settings["default_policy"] == default_names(recommend.default_policy)
    assert settings["space"].batch_mixes == tuple(recommend.batch_mixes)
    assert settings["space"].semi == semi_candidates(recommend.semi)
    assert settings["semi_min_precision"] == recommend.semi_min_precision
    assert arm["max_seconds"] == recommend.max_seconds and settings["prune_default"] == recommend.prune_default
    # auto_pool_default with the x4 default first; settle_default acts without a pool only
    pooled = OmegaConf.to_container(base.arms["auto_pool_default"], resolve=True)
    assert {k: (v, arm[k]) for k, v in pooled.items() if arm[k] != v} == {
        "default_policy": (["strong@p0.5+ls0.1", "strong@p0.5"], list(default_names(recommend.default_policy))),
        "settle_default": (False, True)}
