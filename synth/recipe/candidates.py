"""What each stage of the recipe search tries: the candidate recipes, built from the search space.

Kept apart from `search.py`, which decides between them: these functions read only the space and
the incumbent recipe (never a trial), so a stage's candidates can be listed and tested without
training anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from synth.errors import ConfigError
from synth.recipe.policy import AugPolicy, loss_suffixes, preset, sample_policies, split_loss_suffixes
from synth.recipe.recipe import Recipe
from synth.recipe.result import SearchSpace
from synth.seeding import rng_for

_POLICY_STREAM = 29


def policy_recipes(space: SearchSpace, seed: int, working_size: int) -> list[Recipe]:
    """Presets, the presets at each `aug_probs` share of draws, then random and extra policies.

    Every-draw presets come first, so a `max_trials` that cut the list before `aug_probs`
    existed still tries the same policies. A preset that names its own share (`strong@p0.5`) is tried
    at that share only: re-sharing it would also try `strong` on every draw, the policy it was named to avoid.
    """
    probs = [float(q) for q in space.aug_probs if float(q) < 1.0]
    pols = [preset(p) if _names_share(p) else preset(p).with_prob(q) for q in (1.0, *probs) for p in space.presets]
    pols = list({pol.name: pol for pol in pols}.values())  # one per name, in first-seen order
    pols += sample_policies(space.n_random_policies, rng_for(seed, _POLICY_STREAM), working_size=working_size)
    pols += list(space.extra_policies)
    return [Recipe(policy=p) for p in pols if not p.is_none]


def _names_share(name: str) -> bool:
    """Whether a preset name fixes its share of draws (`strong@p0.5`, `strong@p0.5+ls0.1`)."""
    return "@p" in split_loss_suffixes(name)[0]


def default_names(default_policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """`default_policy` as the ordered names the default route tries: one name, a list of fallbacks, or none."""
    if default_policy is None:
        return ()
    names = (default_policy,) if isinstance(default_policy, str) else tuple(str(n) for n in default_policy)
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"search.default_policy must be a policy name, a list of distinct names or null, "
                          f"got {list(names)}")
    return names


def named_policy(name: str, candidates: Sequence[Recipe]) -> AugPolicy:
    """The policy `name` names: a candidate's (its name before the loss suffixes, with them), else a preset."""
    base, suffixes = split_loss_suffixes(name)
    match = next((r.policy for r in candidates if r.policy.name == base), None)
    return preset(name) if match is None else match.with_loss(*loss_suffixes(name, suffixes))


def source_recipes(space: SearchSpace, bases: Sequence[Recipe], has_pool: bool, available: list[str]) -> list[Recipe]:
    """Each source on top of each base recipe (the incumbent, and the runner-up augmentation)."""
    return [r for base in bases for r in sources_on(space, base, has_pool, available)]


def sources_on(space: SearchSpace, base: Recipe, has_pool: bool, available: list[str]) -> list[Recipe]:
    out = []
    for src in space.sources:
        if src not in available or (src == "pseudo_label" and not has_pool):
            continue
        cfg = dict(space.source_configs.get(src, {}))
        if src == "pseudo_label":
            cfg.setdefault("k_folds", 2)  # inner precision estimate: 3 teachers per fold instead of 4
            out.append(base.with_(source=src, source_config=cfg, synthetic_share=None))
        elif src == "procedural":  # offline variations of the incumbent policy (or light)
            pol = base.policy if not base.policy.is_none else preset("light")
            cfg = {"ops": [dict(o) for o in pol.ops], "working_size": pol.working_size, "resample": pol.resample, **cfg}
            out.append(base.with_(source=src, source_config=cfg, synthetic_share=space.shares[0]))
        else:
            out.append(base.with_(source=src, source_config=cfg, synthetic_share=space.shares[0]))
    return out


def batch_mix_recipes(space: SearchSpace, inc: Recipe) -> list[Recipe]:
    """The incumbent's policy with each batch mix of the space (its label smoothing and length kept).

    Only on top of an augmentation policy, and only by the gain rule: the dev evidence is mixup on
    top of the default policy (the gain rule took it on 7 of 8 Fashion-MNIST draws, all gains, and
    on 0 of 16 digits draws, every one a loss on dev; benchmarks/results/mix_ls_check_*.md); on
    real only it is unmeasured. On the strict harness (bench arm `auto_default_mix`) it was adopted in
    1 of 7 Fashion-MNIST cells with a policy (+0.75 points) and refused in all 24 digits and glyphs cells.
    """
    pol = inc.policy
    if not pol.ops or pol.batch_mix is not None:
        return []
    return [inc.with_(policy=pol.with_loss(kind, pol.smoothing, pol.steps_scale)) for kind in space.batch_mixes]


def mix_recipes(space: SearchSpace, inc: Recipe) -> list[Recipe]:
    if inc.source is None:
        return []
    if inc.source == "pseudo_label":
        return [inc.with_(source_config={**inc.source_config, "threshold": t}) for t in space.pl_thresholds]
    out = [inc.with_(synthetic_share=s) for s in space.shares if s != inc.synthetic_share]
    return out + [inc.with_(filter_quantile=q) for q in space.filter_quantiles]
