"""Diffusion generators behind the Generator contract.

`DiffusionGenerator`: a class-conditional DDPM trained on the labelled images, sampled with
DDIM and classifier-free guidance, with memorisation control picking the weights.
`Img2ImgGenerator`: SDEdit variations of labelled real images from a diffusion prior that
may also learn from the unlabelled pool (as the null class).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import load_file, save_file

from generators.base import Generator, Samples
from generators.diffusion.memorisation import NoveltyMonitor
from generators.diffusion.sampling import (
    ddim_scheduler,
    generate,
    resolve_sample_dtype,
    sampling_unet,
    sdedit,
)
from generators.diffusion.train import TrainSettings, train_unet
from generators.diffusion.unet import Geometry, build_unet
from synth.data.imageset import ImageSet
from synth.errors import CheckpointError, ConfigError

#: Affine jitter of the training images (conf/generator/diffusion.yaml has the same): delays memorisation.
DEFAULT_AUGMENT = {"rotate": 10.0, "scale": 0.08, "translate": 0.06}


class DiffusionGenerator(Generator):
    """Class-conditional DDPM (diffusers UNet2DModel) with classifier-free guidance.

    Class id `n_classes` is the "null" class: labels are dropped to it with probability
    `label_dropout` in training, and guidance mixes conditional and null predictions.
    Memorisation control (`min_novelty`): every `eval_every` steps a few samples per class are
    scored for novelty; sampling uses the latest EMA weights still at least `min_novelty`
    novel, and training stops after `patience` evaluations below it.
    """

    name = "diffusion"
    # Checkpoints from before `sample_dtype` sampled in float32: keep them byte-identical.
    legacy_config = {"sample_dtype": "float32"}

    def __init__(
        self,
        *,
        block_out_channels: Sequence[int] = (24, 48, 48),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
        mid_attention: bool = False,
        pad_mode: str = "reflect",
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        train_steps: int = 1000,
        batch_size: int = 64,
        lr: float = 1e-3,
        ema_decay: float = 0.995,
        label_dropout: float = 0.1,
        augment: dict[str, float] | None = DEFAULT_AUGMENT,
        sample_steps: int = 25,
        guidance_scale: float = 2.0,
        eta: float = 0.0,
        sample_batch_size: int = 256,
        sample_dtype: str = "auto",
        eval_every: int = 250,
        eval_per_class: int = 10,
        eval_sample_steps: int = 25,
        min_novelty: float | None = 0.8,
        patience: int = 2,
        checkpoint_every: int = 250,
        work_dir: str | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        config["block_out_channels"] = [int(c) for c in block_out_channels]
        config["augment"] = dict(augment) if augment else None
        super().__init__(**config)
        self._validate()
        self._augment_config()
        self._unet: UNet2DModel | None = None
        self._scheduler: DDPMScheduler | None = None

    def _validate(self) -> None:
        c = self.config
        for key in ("train_steps", "batch_size", "sample_steps", "sample_batch_size", "eval_per_class", "patience", "checkpoint_every"):
            if int(c[key]) < 1:
                raise ConfigError(f"generator.{key} must be >= 1, got {c[key]}")
        if not 0.0 <= float(c["label_dropout"]) < 1.0:
            raise ConfigError(f"generator.label_dropout must lie in [0, 1), got {c['label_dropout']}")
        if c["guidance_scale"] > 1.0 and c["label_dropout"] == 0.0:
            raise ConfigError("guidance_scale > 1 needs label_dropout > 0 (the null class must be trained)")
        if c["eta"] != 0.0:
            raise ConfigError(f"generator.eta must be 0 (deterministic DDIM keeps per-sample seeding exact), got {c['eta']}")
        resolve_sample_dtype(c["sample_dtype"])

    def _augment_config(self) -> dict[str, float] | None:
        aug = self.config["augment"]
        if not aug:
            return None
        unknown = set(aug) - {"rotate", "scale", "translate"}
        if unknown:
            raise ConfigError(f"generator.augment takes rotate/scale/translate, got unknown key(s) {sorted(unknown)}")
        return {k: float(v) for k, v in aug.items()}

    # ------------------------------------------------------------------ geometry
    @property
    def null_class(self) -> int:
        return len(self.class_names or ())

    @property
    def geometry(self) -> Geometry:
        return Geometry.for_shape(self.image_shape, len(self.config["block_out_channels"]), self.config["pad_mode"])

    # ------------------------------------------------------------------- fitting
    def _training_set(self, labelled: ImageSet, unlabelled: ImageSet | None) -> tuple[np.ndarray, np.ndarray]:
        """Images and class ids to train on; unlabelled images (if used) get the null class."""
        if unlabelled is None:
            return labelled.images, labelled.labels
        return (
            np.concatenate([labelled.images, unlabelled.images]),
            np.concatenate([labelled.labels, np.full(len(unlabelled), self.null_class, dtype=np.int64)]),
        )

    def _fit(self, labelled: ImageSet, unlabelled: ImageSet | None) -> dict[str, Any]:
        c = self.config
        geometry = self.geometry
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(c["seed"]))
            unet = build_unet(
                geometry, labelled.n_classes, c["block_out_channels"], c["layers_per_block"],
                c["norm_num_groups"], c["mid_attention"],
            )
        self._scheduler = DDPMScheduler(num_train_timesteps=int(c["num_train_timesteps"]), beta_schedule=c["beta_schedule"])
        images, labels = self._training_set(labelled, unlabelled)
        monitor = None
        if int(c["eval_every"]) > 0:
            monitor = NoveltyMonitor(labelled.images, labelled.n_classes, int(c["eval_per_class"]), int(c["seed"]))
        settings = TrainSettings(
            steps=int(c["train_steps"]), batch_size=int(c["batch_size"]), lr=float(c["lr"]),
            ema_decay=float(c["ema_decay"]), label_dropout=float(c["label_dropout"]), seed=int(c["seed"]),
            eval_every=int(c["eval_every"]), min_novelty=None if c["min_novelty"] is None else float(c["min_novelty"]),
            patience=int(c["patience"]), checkpoint_every=int(c["checkpoint_every"]),
            work_dir=Path(c["work_dir"]) if c["work_dir"] else None, progress=bool(c["progress"]),
            augment=self._augment_config(),
        )

        def eval_sampler(model: UNet2DModel, labs: np.ndarray, seeds: np.ndarray) -> np.ndarray:
            return self._generate(model, labs, seeds, int(c["eval_sample_steps"]))

        weights, info = train_unet(
            unet, self._scheduler, geometry.to_model(images), labels, self.null_class, settings,
            monitor, eval_sampler, labelled.class_names,
        )
        unet.load_state_dict(weights)
        self._unet = unet.eval().requires_grad_(False)
        return {**info, "train_images": len(images), "parameters": sum(p.numel() for p in unet.parameters())}

    # ------------------------------------------------------------------ sampling
    def _sampling_kwargs(self) -> dict[str, Any]:
        c = self.config
        return {"null_class": self.null_class, "guidance_scale": float(c["guidance_scale"]), "batch_size": int(c["sample_batch_size"])}

    def _sampling_net(self, unet: UNet2DModel) -> UNet2DModel:
        """`unet` in the configured sampling precision (a cast copy unless float32)."""
        return sampling_unet(unet, resolve_sample_dtype(self.config["sample_dtype"]))

    def _generate(self, unet: UNet2DModel, labels: np.ndarray, seeds: np.ndarray, steps: int) -> np.ndarray:
        geometry = self.geometry
        sched = ddim_scheduler(self._scheduler, steps)
        shape = (geometry.channels, *geometry.padded)
        net = self._sampling_net(unet)
        return geometry.to_pixels(generate(net, sched, labels, seeds, shape, **self._sampling_kwargs()))

    def _sample(self, labels: np.ndarray, seeds: np.ndarray) -> Samples:
        images = self._generate(self._unet, labels, seeds, int(self.config["sample_steps"]))
        return Samples(images, labels.copy(), np.full(len(labels), None, dtype=object))

    # --------------------------------------------------------------- checkpoints
    def _save(self, directory: Path) -> None:
        self._unet.save_pretrained(directory / "unet", safe_serialization=True)
        self._scheduler.save_pretrained(directory / "scheduler")

    def _load(self, directory: Path) -> None:
        if not (directory / "unet" / "diffusion_pytorch_model.safetensors").is_file():
            raise CheckpointError(f"{directory}/unet has no safetensors weights; re-run `synth fit generator={self.name}`")
        self._unet = UNet2DModel.from_pretrained(directory / "unet", use_safetensors=True).eval().requires_grad_(False)
        self._scheduler = DDPMScheduler.from_pretrained(directory / "scheduler")


class Img2ImgGenerator(DiffusionGenerator):
    """SDEdit: noise a labelled real image to `strength` and denoise it under its class.

    Sample j picks its parent uniformly among the labelled images of its class with an RNG
    seeded by seeds[j] and records the parent id. The prior also learns from the unlabelled
    pool (as the null class). `strength` trades variation for label preservation and must be
    calibrated by measured label preservation (it depends on the noise schedule and the prior):
    with this prior on digits 0.5 kept 99 % of labels, 0.6 97.4 %, 0.7 93.6 % (docs/diffusion.md),
    so the default is 0.6. The prior keeps the 32/64/64 UNet that calibration was measured on.
    Novelty control is off by default: variations are meant to stay near their parents.
    """

    name = "img2img"
    uses_unlabelled = True

    def __init__(
        self, *, strength: float = 0.6, min_novelty: float | None = None, eval_every: int = 0,
        block_out_channels: Sequence[int] = (32, 64, 64), **kwargs: Any,
    ) -> None:
        if not 0.0 <= float(strength) <= 1.0:
            raise ConfigError(f"generator.strength must lie in [0, 1], got {strength}")
        super().__init__(min_novelty=min_novelty, eval_every=eval_every, block_out_channels=block_out_channels, **kwargs)
        self.config["strength"] = float(strength)
        self._parents: np.ndarray | None = None
        self._parent_labels: np.ndarray | None = None
        self._parent_ids: np.ndarray | None = None

    def _fit(self, labelled: ImageSet, unlabelled: ImageSet | None) -> dict[str, Any]:
        self._parents, self._parent_labels, self._parent_ids = labelled.images.copy(), labelled.labels.copy(), labelled.ids.copy()
        return {**super()._fit(labelled, unlabelled), "parents": len(labelled)}

    def _sample(self, labels: np.ndarray, seeds: np.ndarray) -> Samples:
        by_class = [np.flatnonzero(self._parent_labels == c) for c in range(self.null_class)]
        chosen = np.empty(len(labels), dtype=np.int64)
        for j, (label, seed) in enumerate(zip(labels, seeds, strict=True)):
            members = by_class[label]
            chosen[j] = members[np.random.default_rng(int(seed)).integers(len(members))]
        geometry = self.geometry
        sched = ddim_scheduler(self._scheduler, int(self.config["sample_steps"]))
        x = sdedit(
            self._sampling_net(self._unet), sched, geometry.to_model(self._parents[chosen]), labels, seeds,
            float(self.config["strength"]), **self._sampling_kwargs(),
        )
        return Samples(geometry.to_pixels(x), labels.copy(), self._parent_ids[chosen].astype(object))

    def _save(self, directory: Path) -> None:
        super()._save(directory)
        tensors = {"images": torch.from_numpy(self._parents), "labels": torch.from_numpy(self._parent_labels)}
        save_file(tensors, directory / "parents.safetensors")
        (directory / "parent_ids.txt").write_text("\n".join(map(str, self._parent_ids)) + "\n")

    def _load(self, directory: Path) -> None:
        super()._load(directory)
        tensors = load_file(directory / "parents.safetensors")
        self._parents, self._parent_labels = tensors["images"].numpy(), tensors["labels"].numpy()
        self._parent_ids = np.array((directory / "parent_ids.txt").read_text().splitlines(), dtype=str)
