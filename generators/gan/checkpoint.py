"""Training checkpoints for the GAN: tensors in safetensors, everything else in JSON.

A checkpoint directory holds `state.safetensors` (G, D, EMA G, both optimizers' tensor
state, the torch RNG state) and `state.json` (step, histories, numpy RNG state, optimizer
hyper-parameters, a fingerprint of the run). Nothing is pickled, so a checkpoint from an
untrusted source cannot execute code. Writes go to a temporary directory that replaces
the old one only when complete: a kill mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from synth.errors import CheckpointError

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


def flatten_optimizer(prefix: str, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Optimizer state_dict -> (flat tensors keyed '<prefix>.<param>.<name>', JSON param_groups)."""
    tensors = {
        f"{prefix}.{idx}.{name}": value.detach().clone().contiguous()
        for idx, per_param in state["state"].items()
        for name, value in per_param.items()
    }
    return tensors, state["param_groups"]


def unflatten_optimizer(prefix: str, tensors: dict[str, torch.Tensor], param_groups: list[dict]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": param_groups}


def write_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Atomically (re)place `directory` with a checkpoint made of `tensors` and `meta`."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp / STATE_TENSORS)
    (tmp / STATE_JSON).write_text(json.dumps(meta, indent=1, default=str))
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def read_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The (tensors, meta) of a checkpoint directory, or None if there is none."""
    directory = Path(directory)
    if not (directory / STATE_JSON).is_file():
        return None
    try:
        return load_file(directory / STATE_TENSORS), json.loads((directory / STATE_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"GAN training checkpoint {directory} is unreadable ({exc}); delete it to start training afresh"
        ) from exc


def with_prefix(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().clone() for k, v in state.items()}


def strip_prefix(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
