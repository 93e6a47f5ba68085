"""Loss-side regularisers — batch mixing (mixup / CutMix) and label smoothing: draws from an injected rng,
pure application, label weights that match the pixels, and the wiring through the trainer, consistency
training and augmentation policies."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synth.errors import ConfigError
from synth.recipe import AugPolicy, Recipe, preset, train_with
from synth.regularisers import KINDS, PLAIN, BatchMix, Regularisers, apply_mix, mixed_loss
from synth.semi import SemiConfig, train_semi
from synth.training import TrainConfig, train_classifier

TINY = TrainConfig(steps=6, batch_size=8, width=4, hidden=16)


def constant_batch(n: int = 6, size: int = 8) -> torch.Tensor:
    """Image i is the constant i: every pixel says which image it came from."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, size, size).clone()


def weights(model: torch.nn.Module) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()]).numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_draws_come_from_the_given_rng_only(kind):
    mix, x = BatchMix(kind), constant_batch()
    (a, da), (b, db) = (mix(x, np.random.default_rng(3)) for _ in range(2))
    assert torch.equal(a, b) and np.array_equal(da.perm, db.perm) and da.lam == db.lam
    c, _ = mix(x, np.random.default_rng(4))
    assert not torch.equal(a, c)
    assert torch.equal(apply_mix(x, da), a)  # applying a draw is pure: same draw, same batch


def test_mixup_is_the_convex_combination_with_the_partner():
    x = constant_batch()
    out, d = BatchMix("mixup")(x, np.random.default_rng(0))
    expected = d.lam * torch.arange(6.0) + (1 - d.lam) * torch.from_numpy(d.perm).float()
    assert torch.allclose(out[:, 0, 0, 0], expected)


@pytest.mark.parametrize("seed", range(5))
def test_cutmix_label_weight_is_the_share_of_pixels_each_image_contributes(seed):
    x = constant_batch()
    out, d = BatchMix("cutmix")(x, np.random.default_rng(seed))
    for i in range(len(x)):
        own = float((out[i] == i).float().mean()) if d.perm[i] != i else 1.0
        assert own == pytest.approx(d.lam if d.perm[i] != i else 1.0)


def test_mixed_loss_weights_both_labels_and_is_plain_cross_entropy_without_a_draw():
    logits, y = torch.randn(6, 10), torch.arange(6)
    assert torch.allclose(mixed_loss(logits, y, None), F.cross_entropy(logits, y, reduction="none"))
    _, d = BatchMix("mixup")(constant_batch(), np.random.default_rng(1))
    expected = d.lam * F.cross_entropy(logits, y, reduction="none") + (1 - d.lam) * F.cross_entropy(
        logits, y[torch.from_numpy(d.perm)], reduction="none")
    assert torch.allclose(mixed_loss(logits, y, d), expected)


def test_label_smoothing_is_cross_entropy_against_smoothed_targets():
    logits, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    targets = torch.full((5, 4), 0.1 / 4) + 0.9 * F.one_hot(y, 4)
    expected = -(targets * F.log_softmax(logits, 1)).sum(1)
    assert torch.allclose(Regularisers(smoothing=0.1).loss(logits, y, None), expected, atol=1e-6)
    assert torch.allclose(PLAIN.loss(logits, y, None), F.cross_entropy(logits, y, reduction="none"))


@pytest.mark.parametrize(("make", "match"), [
    (lambda: BatchMix("blend"), "mixup"), (lambda: BatchMix("cutmix", 0.0), "alpha"),
    (lambda: Regularisers(smoothing=1.0), "smoothing"), (lambda: Regularisers(BatchMix("mixup")).batch(
        constant_batch(), None), "rng"), (lambda: preset("strong+lsx"), "ls<smoothing>")])
def test_bad_settings_are_config_errors(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


@pytest.mark.parametrize("reg", [Regularisers(BatchMix("mixup")), Regularisers(BatchMix("cutmix")),
                                 Regularisers(smoothing=0.1)], ids=["mixup", "cutmix", "smoothing"])
def test_trainer_regularises_deterministically_and_it_changes_the_model(tiny_labelled, reg):
    plain = train_classifier(tiny_labelled, TINY, seed=0)
    a, b = (train_classifier(tiny_labelled, TINY, seed=0, regularise=reg) for _ in range(2))
    np.testing.assert_array_equal(weights(a), weights(b))
    assert not np.array_equal(weights(a), weights(plain))


def test_consistency_training_mixes_the_labelled_batch(tiny_labelled, digits_splits):
    pool = digits_splits.unlabelled.subset(np.arange(60))
    semi = SemiConfig(steps=4, unlabelled_ratio=1, threshold=0.0)
    plain = train_semi(tiny_labelled, pool, TINY, semi, seed=0)
    reg = Regularisers(BatchMix("cutmix"))
    a, b = (train_semi(tiny_labelled, pool, TINY, semi, seed=0, regularise=reg) for _ in range(2))
    np.testing.assert_array_equal(weights(a), weights(b))
    assert not np.array_equal(weights(a), weights(plain))


def test_a_policy_names_serialises_and_applies_its_loss_regularisers(tiny_labelled):
    p = preset("strong@p0.5+cutmix+ls0.1")
    assert (p.name, p.prob, p.batch_mix, p.smoothing) == ("strong@p0.5+cutmix+ls0.1", 0.5, "cutmix", 0.1)
    assert p.ops == preset("strong").ops and AugPolicy.from_dict(p.to_dict()) == p
    assert p.with_prob(1.0).name == "strong+cutmix+ls0.1" and p.with_loss().name == "strong@p0.5"
    assert preset("strong@p0.5+ls0.1").regularisers() == Regularisers(None, 0.1)
    assert set(preset("strong@p0.5").to_dict()).isdisjoint({"batch_mix", "smoothing"})  # old recipes hash as before
    mix_only = preset("none+mixup")
    assert not mix_only.is_none and mix_only.build() is None and mix_only.regularisers().mix == BatchMix("mixup")
    with pytest.raises(ConfigError, match="batch mix"):
        preset("strong+blend")
    # a recipe with the policy trains what train_classifier trains with the same augmenter and regularisers
    via_recipe = train_with(Recipe(policy=mix_only), tiny_labelled, seed=0, cfg=TINY)
    direct = train_classifier(tiny_labelled, TINY, seed=0, regularise=Regularisers(BatchMix("mixup")))
    np.testing.assert_array_equal(weights(via_recipe), weights(direct))


def test_loss_suffixes_leave_a_random_policy_s_own_name_whole():
    """Random policies are named `ra[affine+noise]m0.20`: only trailing suffixes outside the brackets are loss
    suffixes, so renaming one for a share of draws or a regulariser keeps its ops in the name."""
    from synth.recipe import sample_policies
    from synth.recipe.policy import split_loss_suffixes
    from synth.seeding import rng_for

    p = next(q for q in sample_policies(4, rng_for(0, 29)) if "+" in q.name)
    both = p.with_loss("mixup", 0.1).with_prob(0.5)
    assert both.name == f"{p.name}@p0.5+mixup+ls0.1" and both.ops == p.ops
    assert split_loss_suffixes(both.name) == (f"{p.name}@p0.5", ["mixup", "ls0.1"])
    assert split_loss_suffixes(p.name) == (p.name, [])


def test_unsmooth_inverts_the_smoothed_optimum_and_keeps_the_predicted_class():
    from synth.regularisers import unsmooth

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10) * 0.3, size=50)
    for e in (0.05, 0.1, 0.4):
        q = (1 - e) * p + e / 10  # what cross-entropy on smoothed targets is minimised by
        np.testing.assert_allclose(unsmooth(q, e), p, atol=1e-12)
    q = rng.dirichlet(np.ones(10), size=50)  # rows with classes below e / K: clipped, rows still sum to 1
    back = unsmooth(q, 0.3)
    assert (back >= 0).all() and np.allclose(back.sum(1), 1.0)
    np.testing.assert_array_equal(back.argmax(1), q.argmax(1))
    assert unsmooth(q, 0.0) is q
    flat = np.full((1, 10), 0.1)  # every class at e / K: no preference, the row is kept as it is
    np.testing.assert_array_equal(unsmooth(flat, 0.5), flat)
    with pytest.raises(ConfigError, match="smoothing"):
        unsmooth(q, 1.0)


def test_the_search_scores_a_smoothed_policy_on_the_labels_scale(digits_splits):
    """Heavily smoothed (0.5) fold models cannot be more than ~0.55 sure of an image; their held-out
    confidences (what the Brier score and the semi gate read) are read back on the labels' scale."""
    from synth.recipe import evaluate_recipes
    from synth.recipe.evidence import proba_metrics
    from synth.regularisers import unsmooth

    cfg = TrainConfig(steps=100, batch_size=32, width=8, hidden=32)
    res = evaluate_recipes(digits_splits.labelled, [Recipe(policy=preset("none+ls0.5"))], k_folds=2, train_cfg=cfg)
    smoothed = res.trials[1]
    assert smoothed.complete and smoothed.recipe.policy.smoothing == 0.5
    assert smoothed.confidence.max() > 0.6  # raw softmax of these models stays near or below 0.55 (0.47 here)
    # the same folds' plain models are scored as they are (smoothing 0 is the identity)
    q = np.random.default_rng(1).dirichlet(np.ones(10), size=5)
    assert proba_metrics(unsmooth(q, 0.0), np.arange(5)) == proba_metrics(q, np.arange(5))


def test_a_policy_s_steps_scale_trains_that_many_times_the_steps(tiny_labelled):
    """`+x<scale>` scales the trainer's steps for supervised training: the recipe trains exactly what
    train_classifier trains with the scaled config, serialises only when set, and a bad scale is refused."""
    p = preset("strong@p0.5+ls0.1+x4")
    assert (p.name, p.prob, p.smoothing, p.steps_scale) == ("strong@p0.5+ls0.1+x4", 0.5, 0.1, 4.0)
    assert AugPolicy.from_dict(p.to_dict()) == p and p.to_dict()["steps_scale"] == 4.0
    assert "steps_scale" not in preset("strong@p0.5+ls0.1").to_dict()  # old recipes hash as before
    assert p.with_prob(1.0).name == "strong+ls0.1+x4" and p.with_steps(1.0).name == "strong@p0.5+ls0.1"
    assert p.with_loss("mixup", 0.1, 4).name == "strong@p0.5+mixup+ls0.1+x4"
    assert p.train_config(TINY).steps == 4 * TINY.steps and not preset("none+x2").is_none
    for bad, match in (("strong+x0", "steps_scale"), ("strong+xinf", "finite"), ("strong+xfour", r"\+x<steps scale>")):
        with pytest.raises(ConfigError, match=match):
            preset(bad)
    longer = preset("none+x2")
    via_recipe = train_with(Recipe(policy=longer), tiny_labelled, seed=0, cfg=TINY)
    direct = train_classifier(tiny_labelled, replace(TINY, steps=2 * TINY.steps), seed=0)
    np.testing.assert_array_equal(weights(via_recipe), weights(direct))
    assert not np.array_equal(weights(via_recipe), weights(train_classifier(tiny_labelled, TINY, seed=0)))


def test_a_loop_of_its_own_on_training_batches_trains_what_train_classifier_trains(tiny_labelled):
    """Dev checks that need their own loss (distillation, weight averaging) draw from `training_batches`: the
    same model, seed and loop as `train_classifier` must give the same weights, so their baseline is the shipped one."""
    from synth.seeding import rng_for
    from synth.training import MIX_STREAM, fit, make_model, training_batches

    cfg, policy = TrainConfig(steps=6, width=4, hidden=8), preset("strong@p0.5+ls0.1")
    shipped = train_classifier(tiny_labelled, cfg, seed=3, augment=policy.build(), regularise=policy.regularisers())
    with torch.random.fork_rng(devices=[]):
        model = make_model(tiny_labelled, cfg, 3)
        torch.manual_seed(3)
        own = fit(model, training_batches(tiny_labelled, cfg, 3, policy.build()), cfg, policy.regularisers(),
                  rng_for(3, MIX_STREAM))
    assert np.array_equal(weights(own), weights(shipped))
    other = training_batches(tiny_labelled, cfg, 4, policy.build())
    assert not torch.equal(next(other)[0], next(training_batches(tiny_labelled, cfg, 3, policy.build()))[0])
