"""The dev split the design checks share (semi_check.py, al_balance_check.py) — never the test set.

Dev images are pool images whose labels we know but that every check holds out of everything
(labelled draws, pools, training), so settings chosen on them do not read the test set the
harness reports on. One fixed permutation (seed 123) makes the split the same in every check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from synth.config import build
from synth.data.imageset import ImageSet
from synth.semi import SemiConfig

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DEV_SIZE = {"digits": 300, "fashion_mnist": 2000}


def dev_split(data: str) -> tuple[ImageSet, ImageSet]:
    """(dev, rest) of the `data` pool's labelled copy; the test split is never touched."""
    pool = build(OmegaConf.load(REPO / "conf" / "data" / f"{data}.yaml"), "data").pool
    perm = np.random.default_rng(123).permutation(len(pool))
    return pool.subset(np.sort(perm[: DEV_SIZE[data]])), pool.subset(np.sort(perm[DEV_SIZE[data]:]))


def semi_config(overrides: Sequence[str] = ()) -> SemiConfig:
    """conf/semi/default.yaml with KEY=VALUE overrides."""
    base = OmegaConf.load(REPO / "conf" / "semi" / "default.yaml")
    return SemiConfig.from_dict(OmegaConf.to_container(OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))))


def write_results(stem: Path, command: str, semi: SemiConfig, rows: list[dict], markdown: str) -> None:
    """`stem`.json (command, semi settings, rows) and `stem`.md (the readable table)."""
    stem.with_suffix(".json").write_text(json.dumps({"command": command, "semi": semi.to_dict(), "rows": rows},
                                                    indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(f"wrote {stem}.json / .md")
