"""Helpers shared by commands: build stage objects from config, summarise configs."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from synth.data.sources import Source
from synth.data.splits import Splits
from synth.errors import ConfigError


def to_container(cfg: DictConfig | dict) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def build(node: DictConfig, key: str) -> Any:
    """Instantiate a `_target_` node, turning constructor errors into a ConfigError naming `key`.

    A top-level `name` key labels the node (output paths, manifests) and is not passed on.
    """
    node = OmegaConf.masked_copy(node, [k for k in node if k != "name"]) if "name" in node else node
    try:
        return instantiate(node, _convert_="all")
    except Exception as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"cannot build `{key}` from config: {cause}") from exc


def load_splits(cfg: DictConfig) -> tuple[Source, Splits]:
    """The data source and its splits for this run's `budget` and `seed`."""
    source: Source = build(cfg.data, "data")
    budget = cfg.get("budget") or {}
    splits = source.splits(
        n_per_class=budget.get("n_per_class"), fraction=budget.get("fraction"), seed=int(cfg.seed)
    )
    return source, splits
