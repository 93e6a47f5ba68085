"""Choose which unlabelled images to label next (active learning); write the list and a picture of them."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from synth.active import COLD_START_PER_CLASS, MODEL_FREE, STRATEGIES, select
from synth.config import load_splits, to_container
from synth.data.imagefolder import read_unlabelled_folder
from synth.data.imageset import ImageSet
from synth.errors import ConfigError, DataError
from synth.fsutil import atomic_write_text
from synth.training import TrainConfig, predict_proba, train_classifier
from synth.viz import image_grid, write_png

log = logging.getLogger("synth.select")


def run(cfg: DictConfig) -> list[str]:
    """Returns the ids picked, in pick order (also written to out_dir/to_label.csv)."""
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    strategy, k = str(cfg.active.strategy), int(cfg.k)
    if strategy not in STRATEGIES:
        raise ConfigError(f"active.strategy={strategy!r} is unknown; choose one of {', '.join(STRATEGIES)}")
    _, splits = load_splits(cfg)  # the test split is loaded by the source but never used here
    labelled, pool = splits.labelled, _unlabelled(cfg, splits.labelled, splits.unlabelled)
    left = int((~np.isin(pool.ids, labelled.ids)).sum())
    if not 0 < k <= left:
        raise ConfigError(f"k={k} must be in [1, {left}] (the unlabelled images to choose from)")
    model = None
    if _needs_model(strategy, labelled):
        model = train_classifier(labelled, TrainConfig(**to_container(cfg.trainer)), seed=int(cfg.seed))
    idx = select(model, pool, labelled, k, strategy, seed=int(cfg.seed),
                 shortlist_factor=int(cfg.active.get("shortlist_factor", 5)))
    picked = pool.subset(idx)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "to_label.csv", _csv(picked, model, cfg.get("unlabelled_root")))
    write_png(out / "to_label.png", image_grid(picked.images, rows=-(-len(picked) // 10), cols=min(10, len(picked))))
    info = _info(cfg, strategy, labelled, left, picked, model is not None)
    atomic_write_text(out / "selection.json", json.dumps(info, indent=2) + "\n")
    print(f"picked {len(picked)} of {info['n_candidates']} unlabelled images ({strategy}; "
          f"{len(labelled)} labelled, fewest in a class: {info['min_labels_per_class']})")
    print(f"list:         {out / 'to_label.csv'}  (picture {out / 'to_label.png'})")
    return [str(i) for i in picked.ids]


def _unlabelled(cfg: DictConfig, labelled: ImageSet, rest: ImageSet) -> ImageSet:
    """`unlabelled_root` read like the labelled images, or the pool outside the budget, labels hidden."""
    root = cfg.get("unlabelled_root")
    if not root:
        if not len(rest):
            raise ConfigError("nothing to choose from: every pool image is labelled; set unlabelled_root=<dir> "
                              "or a smaller budget.n_per_class")
        return rest.without_labels()
    data = cfg.data
    pool = read_unlabelled_folder(root, class_names=labelled.class_names, image_size=data.get("image_size"),
                                  mode=data.get("mode", "auto"), skip_corrupt=bool(data.get("skip_corrupt", False)))
    if pool.image_shape != labelled.image_shape:
        raise DataError(f"unlabelled images in {root} are {pool.image_shape}, labelled ones {labelled.image_shape}; "
                        "set data.image_size (and data.mode=L or RGB) so both are read alike")
    return pool


def _needs_model(strategy: str, labelled: ImageSet) -> bool:
    """Uncertainty and k-center strategies need a classifier; typiclust_margin only past its cold start."""
    if strategy == "typiclust_margin":
        return len(labelled) >= COLD_START_PER_CLASS * labelled.n_classes
    return strategy not in MODEL_FREE


def _csv(picked: ImageSet, model, root: str | None) -> str:
    """rank, id, path (when read from unlabelled_root) and, with a model, its guess and confidence."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "id", "path", "predicted", "confidence"])
    proba = predict_proba(model, picked.images) if model is not None else None
    for r, image_id in enumerate(picked.ids):
        path = str(Path(root) / str(image_id).removeprefix("unlabelled/")) if root else ""
        guess = ["", ""] if proba is None else [picked.class_names[int(proba[r].argmax())], f"{proba[r].max():.3f}"]
        writer.writerow([r + 1, image_id, path, *guess])
    return buf.getvalue()


def _info(cfg: DictConfig, strategy: str, labelled: ImageSet, n_candidates: int, picked: ImageSet,
          used_model: bool) -> dict[str, Any]:
    counts = labelled.class_counts()
    per_class = dict(zip(labelled.class_names, counts.tolist(), strict=True))
    return {"data": cfg.data.name, "strategy": strategy, "k": int(cfg.k), "seed": int(cfg.seed),
            "n_labelled": len(labelled), "labels_per_class": per_class, "min_labels_per_class": int(counts.min()),
            "n_candidates": n_candidates,
            "unlabelled_root": cfg.get("unlabelled_root"), "classifier_trained": used_model,
            "picked": [str(i) for i in picked.ids]}
