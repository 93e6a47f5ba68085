"""Tiny constructor arguments per registered generator, for fast contract tests.

Every name in `generators.registry.available()` must have an entry (a test checks it).
Keep each fit + sample under a few seconds on one CPU thread.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

_CONF = Path(__file__).resolve().parent.parent / "conf" / "generator"


def _from_conf(name: str, **overrides) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(_CONF / f"{name}.yaml"))
    cfg.pop("_target_"), cfg.pop("name", None)
    cfg.update(overrides)
    return cfg


# 8 px digits, a 2-level 8/16-channel UNet, 3 training steps, 2 DDIM steps.
_TINY_DIFFUSION = dict(
    block_out_channels=[8, 16], norm_num_groups=4, train_steps=3, batch_size=8, sample_steps=2,
    eval_every=2, eval_per_class=1, eval_sample_steps=2, checkpoint_every=2, sample_batch_size=8, progress=False,
)

TINY: dict[str, dict] = {
    "procedural": _from_conf("light", working_size=16),
    "diffusion": _from_conf("diffusion", **_TINY_DIFFUSION),
    "img2img": _from_conf("img2img", **_TINY_DIFFUSION, strength=0.5),
    "pseudo_label": dict(threshold=0.0, min_precision=0.0, k_folds=2, steps=80, batch_size=32, width=8, hidden=32),
    # 8 px, 16-channel nets, 4 steps, a 10-step class-consistency teacher; the collapse guard is off
    # (4 steps cannot reach diversity).
    "gan": _from_conf(
        "gan", z_dim=8, g_channels=16, d_channels=16, steps=4, batch_size=16, check_every=2, check_per_class=4,
        diversity_warmup=10**6, teacher_steps=10, progress=False,
    ),
}
