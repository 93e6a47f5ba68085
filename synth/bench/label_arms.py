"""Issue-7 benchmark arms: self-supervised init, active learning, and both with augmentation.

All three only make sense under the unlabelled-pool protocol (the presets run them there
only, `protocols: [unlabelled_pool]`); they plug into the harness by config alone:

    arms:
      ssl:        {target: "synth.bench.label_arms:arm_ssl", uses_unlabelled: true, ...}
      active:     {target: "synth.bench.label_arms:arm_active", uses_unlabelled: true, ...}
      full_stack: {target: "synth.bench.label_arms:arm_full_stack", uses_unlabelled: true, ...}

- `ssl`: a SimCLR encoder (synth.ssl) pretrained on the arm's whole training pool *without
  labels* (labelled + unlabelled images: both are allowed ids, and the union is the same for
  every budget, so one encoder per seed serves every budget). The encoder is the expensive
  part and is cached on disk per (seed, hash of the sorted pool ids, SSL config). On top of
  it the classifier is a linear probe or a fine-tune: the probe at n <= `probe_max_n` labels
  per class (calibration, docs/label_efficiency.md: the probe is as good or better at n=2-5
  and free), else whichever wins k-fold CV *inside the labelled budget*.
- `active`: margin active learning (synth.active) from `initial_per_class` of the arm's
  labelled images per class, in batches of `batch_size`, until the budget (n x classes
  labels) is used. Every pool label comes through the harness's LabelOracle, so each query
  counts as a labelled image used and is audited; the labelled images not taken as the
  initial set are never looked at.
- `active` with a `semi` entry (`active_semi`): the same loop, then consistency training on the
  chosen labels + the rest of the pool instead of the supervised final classifier (ungated).
- `semi`: consistency training (synth.semi, FixMatch-style) on the arm's random labels plus
  the whole unlabelled pool, with the settings of its `semi` entry (conf/bench/base.yaml).
  Not gated: it measures the lever alone (the stack arm decides it by CV).
- `full_stack`: the encoder + active learning (each round's model is the cheap linear probe,
  the best selector measured) + a final classifier on the labels the loop chose: fine-tuned
  from the encoder with online `augment` (light) when k-fold CV inside those labels prefers
  it, else the probe; the probe directly at n <= `probe_max_n` or when a class got fewer
  than k labels (so at small n the augmentation lever is not used).
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from synth.active import active_learning, budget_rounds
from synth.bench.arms import CONF_DIR, ArmConfig, ArmOutput, online_augmenter
from synth.bench.protocol import ArmData
from synth.cv import cross_validate
from synth.data.imageset import ImageSet
from synth.errors import ConfigError
from synth.semi import SemiConfig, train_semi
from synth.ssl import (
    SSLConfig,
    fine_tune,
    linear_probe,
    load_encoder,
    load_ssl_config,
    save_encoder,
    train_encoder,
)
from synth.training import TrainConfig, accuracy, train_classifier


# ------------------------------------------------------------------ encoder (cached)
def ssl_config(params: Mapping[str, Any], train: TrainConfig) -> SSLConfig:
    """conf/ssl/<ssl_conf>.yaml updated by `ssl_params`; width/hidden follow the classifier recipe."""
    base = load_ssl_config(CONF_DIR / "ssl" / f"{params.get('ssl_conf', 'digits')}.yaml")
    cfg = replace(base, **dict(params.get("ssl_params") or {}))
    return replace(cfg, width=train.width, hidden=train.hidden)


def encoder_pool(data: ArmData) -> ImageSet:
    """Every image the arm may see, labels hidden, sorted by id (identical for every budget)."""
    if data.unlabelled is None:
        raise ConfigError("the ssl/active/full_stack arms need the unlabelled pool: run them with "
                          "protocols: [unlabelled_pool] (bench.arms.<arm>.protocols)")
    pool = data.labelled.without_labels().concat(data.unlabelled)
    return pool.subset(np.argsort(pool.ids.astype(str), kind="stable"))


def get_encoder(data: ArmData, seed: int, cfg: ArmConfig) -> tuple[nn.Module, dict[str, Any]]:
    """The SSL encoder for (seed, pool ids, SSL config): loaded from the cache or trained once.

    A file lock makes two worker processes wanting the same encoder train it once.
    """
    pool = encoder_pool(data)
    scfg = ssl_config(cfg.params, cfg.train)
    h = hashlib.sha256("\n".join(map(str, pool.ids)).encode())
    h.update(repr(sorted(asdict(scfg).items())).encode())
    digest = h.hexdigest()[:12]
    if cfg.cache is None:
        enc = train_encoder(pool, scfg, seed=seed, n_classes=data.labelled.n_classes, progress=cfg.progress)
        return enc, {"encoder_cached": False, **_enc_info(enc)}
    where = Path(cfg.cache.root) / "ssl_encoders" / f"seed{seed}-{digest}"
    where.parent.mkdir(parents=True, exist_ok=True)
    with open(where.parent / f"{where.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (where / "encoder_config.json").is_file():
            enc = load_encoder(where)
            return enc, {"encoder_cached": True, "encoder_path": str(where), **_enc_info(enc)}
        enc = train_encoder(pool, scfg, seed=seed, n_classes=data.labelled.n_classes, progress=cfg.progress)
        save_encoder(enc, where)
    return enc, {"encoder_cached": False, "encoder_path": str(where), **_enc_info(enc)}


def _enc_info(enc: nn.Module) -> dict[str, Any]:
    info = getattr(enc, "pretrain_info", {})
    return {"encoder_seconds": info.get("seconds"), "encoder_steps": info.get("steps"),
            "encoder_loss_last": info.get("loss_last")}


# ------------------------------------------------------------------ probe vs fine-tune
def choose_head(
    encoder: nn.Module, labelled: ImageSet, cfg: ArmConfig, seed: int, augment=None
) -> tuple[nn.Module, dict[str, Any]]:
    """Linear probe or fine-tune on `labelled`: by rule at small n, else by CV inside the labels."""
    p = cfg.params
    head = str(p.get("head", "auto"))
    n_per_class = len(labelled) / labelled.n_classes
    k = int(p.get("k", 3))
    if head == "auto":
        if n_per_class <= float(p.get("probe_max_n", 5)):
            head, why = "probe", f"rule: n <= {p.get('probe_max_n', 5)} per class"
        elif labelled.class_counts().min() < k:
            head, why = "probe", f"rule: a class has < {k} labels (no {k}-fold CV)"
        else:
            head, why, scores = _cv_head(encoder, labelled, cfg, seed, augment, k)
            why = f"cv k={k}: probe {scores['probe']:.3f} vs finetune {scores['finetune']:.3f}"
    elif head in ("probe", "finetune"):
        why = "configured"
    else:
        raise ConfigError(f"bench.arms.{cfg.name}.head must be auto, probe or finetune, got {head!r}")
    return _fit_head(head, encoder, labelled, cfg.train, seed, augment), {"head": head, "head_choice": why}


def _fit_head(head: str, encoder, labelled: ImageSet, train: TrainConfig, seed: int, augment) -> nn.Module:
    if head == "probe":
        return linear_probe(encoder, labelled, seed=seed)
    return fine_tune(encoder, labelled, train, seed=seed, augment=augment)


def _cv_head(encoder, labelled: ImageSet, cfg: ArmConfig, seed: int, augment, k: int):
    cv_train = replace(cfg.train, steps=int(cfg.params.get("cv_steps", cfg.train.steps // 2)))
    scores = {}
    for head in ("probe", "finetune"):
        def score(tr: ImageSet, va: ImageSet, s: int, head=head) -> float:
            return accuracy(_fit_head(head, encoder, tr, cv_train, s, augment), va)
        scores[head] = float(cross_validate(labelled, score, k=k, seed=seed).mean())
    # ties go to the probe (cheaper, and the calibrated choice at small n)
    return ("finetune" if scores["finetune"] > scores["probe"] else "probe"), "", scores


# ------------------------------------------------------------------ active learning
def initial_labels(labelled: ImageSet, per_class: int) -> ImageSet:
    """The first `per_class` images of each class of the (already randomly drawn) labelled set."""
    take = np.concatenate([np.flatnonzero(labelled.labels == c)[:per_class] for c in range(labelled.n_classes)])
    return labelled.subset(np.sort(take))


def run_active(data: ArmData, budget: Any, seed: int, cfg: ArmConfig, train_fn) -> tuple[Any, ImageSet, dict]:
    """Margin AL from `initial_per_class` labels to exactly budget x classes labels; pool labels via cfg.oracle.

    Shared by every AL arm (active, full_stack_ssl, stack), so each is charged and trained
    with its whole budget: the last round takes a partial batch when `batch_size` does not
    divide the labels left after the initial ones.
    """
    if cfg.oracle is None or data.unlabelled is None:
        raise ConfigError(f"arm {cfg.name!r} needs the label oracle: run it under protocols: [unlabelled_pool]")
    if budget == "all":
        raise ConfigError(f"arm {cfg.name!r} cannot run at budget 'all' (nothing left to choose)")
    p = cfg.params
    init = initial_labels(data.labelled, int(p.get("initial_per_class", 1)))
    batch = int(p.get("batch_size", 10))
    total = int(budget) * data.labelled.n_classes
    rounds = budget_rounds(len(init), total, batch)  # the last batch is partial when batch does not divide
    res = active_learning(init, data.unlabelled, cfg.oracle, rounds=rounds, batch_size=batch, max_labels=total,
                          train_fn=train_fn, strategy=str(p.get("strategy", "margin")), seed=seed)
    counts = res.labelled.class_counts()
    meta = {"strategy": p.get("strategy", "margin"), "initial": len(init), "rounds": rounds, "batch_size": batch,
            "labels_used": len(res.labelled), "min_class_count": int(counts.min()),
            "max_class_count": int(counts.max())}
    return res.model, res.labelled, meta | {"initial_ids": [str(i) for i in init.ids]}


# --------------------------------------------------------------------------- arms
def arm_ssl(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """SSL encoder on the pool (no labels) + probe or fine-tune on the arm's labelled images."""
    encoder, info = get_encoder(data, seed, cfg)
    t0 = time.perf_counter()
    model, head = choose_head(encoder, data.labelled, cfg, seed)
    meta = {**info, **head, "head_seconds": round(time.perf_counter() - t0, 2)}
    return ArmOutput(model, meta, {"ssl encoder": list(encoder.seen_ids)})


def arm_semi(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """Consistency training on the arm's labelled images + the unlabelled pool (labels hidden)."""
    if data.unlabelled is None or not len(data.unlabelled):
        raise ConfigError(f"arm {cfg.name!r} needs the unlabelled pool: run it with protocols: [unlabelled_pool]")
    model = train_semi(data.labelled, data.unlabelled, cfg.train, SemiConfig.from_dict(cfg.params.get("semi")),
                       seed=seed, progress=cfg.progress)
    seen = {"semi-supervised training (pool, unlabelled)": [str(i) for i in data.unlabelled.ids]}
    return ArmOutput(model, dict(model.semi_info), seen)


def arm_active(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """Margin active learning from a classifier trained from scratch each round.

    `round_steps` (optional) shortens the selection rounds' training to save CPU; the final
    classifier on the chosen labels always uses the full recipe. `augment` (optional, a
    procedural preset) trains every classifier with online augmentation: the two levers act on
    different things (which images get labels, how much each label teaches), so they compound.
    `semi` (optional, SemiConfig keys) trains the final classifier by consistency training on
    the chosen labels + the rest of the pool (labels hidden), ungated: the two levers together,
    where the stack arm decides consistency training by CV.
    """
    steps = cfg.params.get("round_steps")
    round_cfg = replace(cfg.train, steps=int(steps)) if steps else cfg.train
    augment = online_augmenter(cfg.params)  # None when no preset is named

    def train_fn(d: ImageSet, s: int) -> nn.Module:
        return train_classifier(d, round_cfg, seed=s, augment=augment)

    model, chosen, meta = run_active(data, budget, seed, cfg, train_fn)
    seen = {"initial labels": meta.pop("initial_ids")}
    if round_cfg is not cfg.train:
        meta["round_steps"] = int(steps)
    if cfg.params.get("semi") is not None:
        model, seen_pool, meta["semi"] = _final_semi(data, chosen, cfg, seed)
        seen["semi-supervised training (pool, unlabelled)"] = seen_pool
    elif round_cfg is not cfg.train:
        model = train_classifier(chosen, cfg.train, seed=seed, augment=augment)
    meta["augment"] = cfg.params.get("augment")
    return ArmOutput(model, meta, seen, n_labelled=len(chosen))


def _final_semi(data: ArmData, chosen: ImageSet, cfg: ArmConfig, seed: int) -> tuple[nn.Module, list[str], dict]:
    """Consistency training on the AL-chosen labels + the pool images AL did not label (labels hidden)."""
    rest = data.unlabelled.without_ids(chosen.ids)
    model = train_semi(chosen, rest, cfg.train, SemiConfig.from_dict(cfg.params["semi"]), seed=seed,
                       progress=cfg.progress)
    return model, [str(i) for i in rest.ids], dict(model.semi_info)


def arm_full_stack(data: ArmData, budget: Any, seed: int, cfg: ArmConfig) -> ArmOutput:
    """SSL encoder + active learning (probe each round) + final fine-tune with online augmentation."""
    encoder, info = get_encoder(data, seed, cfg)

    def probe_fn(d: ImageSet, s: int) -> nn.Module:
        return linear_probe(encoder, d, seed=s)

    _, chosen, meta = run_active(data, budget, seed, cfg, probe_fn)
    initial = meta.pop("initial_ids")
    augment = online_augmenter({"augment": "light", **cfg.params})
    model, head = choose_head(encoder, chosen, cfg, seed, augment=augment)
    meta = {**info, **meta, **head, "augment": cfg.params.get("augment", "light")}
    return ArmOutput(model, meta, {"ssl encoder": list(encoder.seen_ids), "initial labels": initial},
                     n_labelled=len(chosen))
