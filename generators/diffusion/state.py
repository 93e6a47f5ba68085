"""Resumable training state as safetensors + JSON (nothing pickled).

A work directory holds:
  last/unet/               EMA weights (diffusers save_pretrained: safetensors + config.json)
  last/train.safetensors   raw (non-EMA) weights and the AdamW moment tensors
  last/train.json          step, optimizer hyperparameters, novelty curve, selected step
  selected/unet/           the EMA weights memorisation control chose so far
  grids/step-XXXXXX.png    sample grids
`last/train.json` is written last, so its presence marks a complete checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file, save_file

from synth.errors import CheckpointError

STATE_JSON = "train.json"


def save_state(
    work_dir: Path, model: torch.nn.Module, ema: UNet2DModel, opt: torch.optim.Optimizer, meta: dict[str, Any]
) -> None:
    """Write a complete checkpoint to work_dir/last, replacing the previous one atomically."""
    tmp, last = work_dir / "last.tmp", work_dir / "last"
    shutil.rmtree(tmp, ignore_errors=True)
    ema.save_pretrained(tmp / "unet", safe_serialization=True)
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for idx, slots in opt_state["state"].items():
        for name, value in slots.items():
            tensors[f"opt.{idx}.{name}"] = torch.as_tensor(value).detach().clone().contiguous()
    save_file(tensors, tmp / "train.safetensors")
    meta = {**meta, "param_groups": opt_state["param_groups"]}
    (tmp / STATE_JSON).write_text(json.dumps(meta, indent=1, default=float))
    shutil.rmtree(last, ignore_errors=True)
    tmp.rename(last)


def has_state(work_dir: Path | None) -> bool:
    return work_dir is not None and (work_dir / "last" / STATE_JSON).is_file()


def load_state(work_dir: Path, model: torch.nn.Module, ema: UNet2DModel, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore weights, EMA and optimizer in place; return the JSON metadata."""
    last = work_dir / "last"
    meta = json.loads((last / STATE_JSON).read_text())
    tensors = load_file(last / "train.safetensors")
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict(load_file(last / "unet" / "diffusion_pytorch_model.safetensors"))
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint in {last} does not match this model configuration ({exc}); "
            "use another generator.work_dir or the original model settings"
        ) from None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return meta


def save_selected(work_dir: Path, ema: UNet2DModel) -> None:
    tmp = work_dir / "selected.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    ema.save_pretrained(tmp / "unet", safe_serialization=True)
    shutil.rmtree(work_dir / "selected", ignore_errors=True)
    tmp.rename(work_dir / "selected")


def load_selected(work_dir: Path) -> dict[str, torch.Tensor] | None:
    path = work_dir / "selected" / "unet" / "diffusion_pytorch_model.safetensors"
    return load_file(path) if path.is_file() else None
