"""Generator training on several processes: a 2-rank CPU DDP (gloo) `synth fit` of a tiny diffusion model.

Launched with torchrun, the launcher a multi-GPU node uses too (`accelerate launch --cpu
--num_processes 2` runs a single process on CPU unless MPI is set up, so it cannot test DDP
here). accelerate's `Accelerator(cpu=True)` sees WORLD_SIZE=2 and trains as MULTI_CPU/gloo.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest

from generators.base import Generator
from generators.registry import available
from tests.conftest import REPO

pytestmark = [
    pytest.mark.skipif("diffusion" not in available(), reason="diffusion generator not registered"),
    pytest.mark.slow,  # 45 s on the shared 2-core machine (two ranks import torch + diffusers)
]

TINY = (
    "generator=diffusion", "budget.n_per_class=3", "generator.block_out_channels=[8,16]", "generator.norm_num_groups=4",
    "generator.train_steps=4", "generator.batch_size=8", "generator.sample_steps=2", "generator.eval_every=2",
    "generator.eval_per_class=1", "generator.eval_sample_steps=2", "generator.checkpoint_every=2",
    "generator.sample_batch_size=8", "generator.progress=false",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_cpu_ddp_fit_writes_a_loadable_checkpoint(tmp_path):
    out, work = tmp_path / "ckpt", tmp_path / "work"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "synth.cli", "fit", *TINY, f"generator.work_dir={work}", f"out_dir={out}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("synth fit: diffusion fitted") == 2  # both ranks trained

    gen = Generator.load(out)
    assert gen.fit_info["steps"] == 4
    samples = gen.sample(n_per_class=1, seed=0)
    assert samples.images.shape == (10, 8, 8, 1) and samples.images.dtype == np.uint8
    assert (work / "last" / "train.json").is_file()  # resumable training state survives DDP
