"""Self-supervised encoder: SimCLR-style contrastive pretraining on the unlabelled pool.

Why: users have many images and few labels. A contrastive encoder learns from all pool
images which variations do not matter (the views' augmentations), so a classifier on top
needs fewer labels (calibration: 2-3x on digits; little on Fashion-MNIST at CPU minutes).

Why our own ~200 lines instead of `lightly`: lightly needs torchvision and
pytorch_lightning, and torchvision from the registry does not import beside this torch
2.13 CPU build. The method is small: two augmented views per image, a projection head,
the NT-Xent loss (Chen et al. 2020).

The encoder *is* `synth.models.SmallCNN`'s body + neck, so `SmallCNN.features()` is the
representation and the pretrained network drops straight into `train_classifier(model=)`.
Uses:
  * `fine_tune(encoder, labelled, ...)`   -> all weights trained on the labels;
  * `linear_probe(encoder, labelled)`     -> frozen features + logistic regression, folded
                                              into the SmallCNN head (better at n=2/class);
  * `FeatureExtractor(encoder)`           -> features for scoring / k-center selection.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from synth.data.imageset import ImageSet
from synth.errors import CheckpointError, ConfigError, DataError
from synth.models import SmallCNN
from synth.seeding import rng_for
from synth.training import Augment, TrainConfig, to_tensor, train_classifier

_VIEW_STREAM = 31
_CONFIG_FILE = "encoder_config.json"
_WEIGHTS_FILE = "encoder.safetensors"

#: Default views for small grayscale images: geometric jitter, photometric change, blur,
#: occlusion. Stronger than the label-preserving "light" preset on purpose: contrastive
#: learning needs views that differ, and no label is attached to them.
DEFAULT_VIEW_OPS: list[dict[str, Any]] = [
    {"name": "Affine", "scale": [0.8, 1.2], "rotate": [-20, 20], "translate_percent": [-0.12, 0.12],
     "shear": [-10, 10], "p": 1.0},
    {"name": "RandomBrightnessContrast", "brightness_limit": 0.3, "contrast_limit": 0.3, "p": 0.8},
    {"name": "GaussianBlur", "blur_limit": [3, 5], "p": 0.3},
    {"name": "CoarseDropout", "num_holes_range": [1, 2], "hole_height_range": [0.15, 0.3],
     "hole_width_range": [0.15, 0.3], "fill": 0, "p": 0.5},
]


@dataclass
class SSLConfig:
    """Contrastive pretraining settings (conf/ssl/*.yaml build this via `_target_`).

    Args:
        steps, batch_size, lr, weight_decay: optimiser schedule (AdamW, cosine decay);
            a batch of B images gives 2B views.
        temperature: NT-Xent softmax temperature.
        proj_dim: output size of the projection head (discarded after pretraining).
        width, hidden: SmallCNN size; must match the downstream TrainConfig.
        view_ops, working_size: the view augmenter (synth's procedural augmenter ops).
    """

    steps: int = 300
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    proj_dim: int = 64
    width: int = 32
    hidden: int = 128
    view_ops: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_VIEW_OPS))
    working_size: int = 32

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.batch_size < 2 or self.lr <= 0:
            raise ConfigError(f"ssl.steps and ssl.lr must be > 0 and ssl.batch_size >= 2, got {self}")
        if self.temperature <= 0:
            raise ConfigError(f"ssl.temperature must be > 0, got {self.temperature}")


def load_ssl_config(path: str | Path) -> SSLConfig:
    """Read conf/ssl/<name>.yaml (keys `_target_` and `name` are ignored) into an SSLConfig."""
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ssl config {path} does not exist; see conf/ssl/ for examples")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    raw = {k: v for k, v in raw.items() if k not in ("_target_", "name")}
    try:
        return SSLConfig(**raw)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: each view must pick its partner view out of the other 2B - 1 in the batch."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = len(z1)
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
    return F.cross_entropy(sim, targets)


def make_encoder(image_shape: tuple[int, int, int], n_classes: int, cfg: SSLConfig, seed: int) -> SmallCNN:
    """A fresh SmallCNN with the encoder's size; deterministic per seed."""
    h, w, c = image_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(c, n_classes, (h, w), width=cfg.width, hidden=cfg.hidden)


def _projection_head(cfg: SSLConfig) -> nn.Module:
    return nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.proj_dim))


def _views(images: np.ndarray, augment: Augment, rng: np.random.Generator) -> torch.Tensor:
    return to_tensor(np.stack([augment(img, rng) for img in images]))


def train_encoder(
    unlabelled: ImageSet,
    cfg: SSLConfig | None = None,
    seed: int = 0,
    n_classes: int | None = None,
    progress: bool = True,
) -> SmallCNN:
    """Pretrain SmallCNN's body + neck contrastively on `unlabelled` (labels are ignored).

    Returns a SmallCNN whose body/neck are pretrained and whose head is freshly initialised
    for `n_classes` (default: the set's class count). `model.pretrain_info` records the loss
    at the start/end, steps, seconds and the ids of the images seen (for audit).
    """
    from generators.procedural import build_augmenter

    cfg = cfg or SSLConfig()
    if len(unlabelled) < 2:
        raise DataError(f"self-supervised pretraining needs at least 2 images, got {len(unlabelled)}")
    n_classes = n_classes or unlabelled.n_classes
    augment = build_augmenter(cfg.view_ops, working_size=cfg.working_size)
    rng = rng_for(seed, _VIEW_STREAM)
    model = make_encoder(unlabelled.image_shape, n_classes, cfg, seed)
    batch = min(cfg.batch_size, len(unlabelled))
    started, losses = time.perf_counter(), []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        proj = _projection_head(cfg)
        params = [*model.body.parameters(), *model.neck.parameters(), *proj.parameters()]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
        model.train()
        for _ in tqdm(range(cfg.steps), desc="ssl", disable=not progress, leave=False):
            idx = rng.choice(len(unlabelled), size=batch, replace=False)
            images = unlabelled.images[idx]
            v1, v2 = _views(images, augment, rng), _views(images, augment, rng)
            loss = nt_xent(proj(model.features(v1)), proj(model.features(v2)), cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    model.eval()
    model.pretrain_info = {
        "method": "simclr", "steps": cfg.steps, "loss_first": losses[0], "loss_last": float(np.mean(losses[-10:])),
        "seconds": round(time.perf_counter() - started, 1), "seed": seed, "n_images": len(unlabelled),
        "config": asdict(cfg),
    }
    model.seen_ids = [str(i) for i in unlabelled.ids]
    return model


def save_encoder(model: SmallCNN, directory: str | Path) -> Path:
    """Write encoder.safetensors + encoder_config.json (model config and pretraining record)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / _WEIGHTS_FILE))
    info = getattr(model, "pretrain_info", {})
    meta = {"model": {**model.config, "image_size": list(model.config["image_size"])}, "pretrain_info": info,
            "seen_ids": getattr(model, "seen_ids", [])}
    (directory / _CONFIG_FILE).write_text(json.dumps(meta, indent=1))
    return directory


def load_encoder(directory: str | Path) -> SmallCNN:
    """Rebuild a SmallCNN saved by `save_encoder` (no pickle involved)."""
    directory = Path(directory)
    cfg_path, weights = directory / _CONFIG_FILE, directory / _WEIGHTS_FILE
    if not cfg_path.is_file() or not weights.is_file():
        raise CheckpointError(f"{directory} lacks {_CONFIG_FILE} or {_WEIGHTS_FILE}; save it with save_encoder()")
    meta = json.loads(cfg_path.read_text())
    model = SmallCNN.from_config(meta["model"])
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} does not match {cfg_path}: {exc}") from exc
    model.pretrain_info = meta.get("pretrain_info", {})
    model.seen_ids = meta.get("seen_ids", [])
    return model.eval()


class FeatureExtractor:
    """Frozen SmallCNN features as a plain function: uint8 (N, H, W, C) -> float32 (N, D).

    Has `num_features`, as torchmetrics and synth's scorers expect of a feature space.
    """

    def __init__(self, model: SmallCNN, batch_size: int = 1024) -> None:
        self.model = model.eval()
        self.num_features = int(model.num_features)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(f"FeatureExtractor expects uint8 (N, H, W, C) images, got {images.dtype} {images.shape}")
        out = [self.model.features(to_tensor(images[i : i + self.batch_size]))
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.num_features), np.float32)


def fine_tune(
    encoder: SmallCNN, labelled: ImageSet, cfg: TrainConfig | None = None, *, seed: int = 0, **train_kwargs: Any
) -> nn.Module:
    """Train all weights from the pretrained init; the encoder itself is left untouched.

    `train_kwargs` pass through to `train_classifier` (augment=, synthetic=, synthetic_share=).
    """
    _check_classes(encoder, labelled)
    return train_classifier(labelled, cfg, seed=seed, model=copy.deepcopy(encoder), **train_kwargs)


def linear_probe(encoder: SmallCNN, labelled: ImageSet, c: float = 1.0, seed: int = 0) -> SmallCNN:
    """Frozen features + multinomial logistic regression, folded into a copy's head.

    Features are standardised with the labelled set's mean/std and the scaling is folded
    into the head's weights, so the result is an ordinary SmallCNN for predict_proba /
    accuracy / active-learning selection.
    """
    from sklearn.linear_model import LogisticRegression

    _check_classes(encoder, labelled)
    if len(np.unique(labelled.labels)) < 2:
        raise DataError("a linear probe needs labelled images of at least 2 classes")
    feats = FeatureExtractor(encoder)(labelled.images).astype(np.float64)
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit((feats - mean) / std, labelled.labels)
    k = encoder.config["n_classes"]
    weight = np.zeros((k, feats.shape[1]))
    bias = np.full(k, -1e4)  # classes never seen in the labels get (effectively) zero probability
    coef, icpt = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # sklearn's binary case has a single row
        coef, icpt = np.vstack([-coef, coef]) / 2, np.array([-icpt[0], icpt[0]]) / 2
    weight[clf.classes_] = coef / std
    bias[clf.classes_] = icpt - (coef / std) @ mean
    probe = copy.deepcopy(encoder).eval()
    with torch.no_grad():
        probe.head.weight.copy_(torch.from_numpy(weight).float())
        probe.head.bias.copy_(torch.from_numpy(bias).float())
    return probe


def _check_classes(encoder: SmallCNN, labelled: ImageSet) -> None:
    if encoder.config["n_classes"] != labelled.n_classes:
        raise ConfigError(
            f"encoder head has {encoder.config['n_classes']} classes, labelled set {labelled.n_classes}; "
            "pass n_classes= to train_encoder"
        )
    if tuple(encoder.config["image_size"]) != labelled.image_shape[:2]:
        raise DataError(f"encoder was trained on {encoder.config['image_size']} images, got {labelled.image_shape}")
