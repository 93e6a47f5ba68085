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


TINY: dict[str, dict] = {
    "procedural": _from_conf("light", working_size=16),
}
