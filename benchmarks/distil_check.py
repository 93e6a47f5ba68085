"""Design check on a dev split (never the test set): does self-distillation add to the x4 default, strict protocol?

The question: under the strict protocol Fashion-MNIST stands at 1.28x-1.38x (issue 9 asks 1.5x; ~+0.4 points at
20 labels per class would reach it), and the levers measured so far on the supervised side (weight averaging,
flips, ensembles, TTA, width) gave nothing. Self-distillation is one not yet measured: a fresh student is
trained to match the trained model's predicted distribution on the very inputs it sees (a fresh augmented
variation of a labelled image at every draw, optionally mixed by mixup), instead of the one-hot labels. The
teacher's soft answers on augmented and mixed images carry what it learned about how the classes relate
(Furlanello et al. 2018, born-again networks; Beyer et al. 2022, "a good teacher is patient and consistent":
the teacher sees exactly the student's input). No image beyond the labelled budget is used: it is a strict lever.

Per draw (n labels per class, seed), on the same labelled images, scored on dev images (pool images held out
of everything):

- x4: the shipped default strong@p0.5+ls0.1+x4 (2,400 steps), which is also the teacher;
- kd: a fresh student, 2,400 steps on the default's augmented draws, loss KL(teacher || student) at T = 1;
- kd_mix: the same with every batch mixed by mixup (alpha 1) before teacher and student see it;
- x4_mixup: strong@p0.5+mixup+ls0.1+x4, mixup without a teacher (the search's batch-mix candidate on the x4
  default): is kd_mix's gain, if any, mixup's?

Cost: a student costs a teacher's training plus a teacher forward per step, so kd is ~2x x4's compute.

    python benchmarks/distil_check.py --data fashion_mnist --ns 5 20 50 --seeds 0 1 --out a.jsonl
    python benchmarks/distil_check.py --data fashion_mnist --ns 5 20 50 --seeds 2 3 --out b.jsonl
    python benchmarks/distil_check.py --data fashion_mnist --ns 5 20 50 --seeds 0 1 --arms x4_mixup --out c.jsonl
    python benchmarks/distil_check.py --data fashion_mnist --from-jsonl a.jsonl b.jsonl c.jsonl   # -> results/distil_check_*
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from dev_split import check_main, draw_table
from torch import nn

from synth.data import ImageSet, draw_budget
from synth.recipe import Recipe, preset, train_with
from synth.regularisers import BatchMix
from synth.seeding import rng_for
from synth.training import MIX_STREAM, TrainConfig, accuracy, make_model, optimizer, training_batches

ARMS = ("x4", "kd", "kd_mix", "x4_mixup")
POLICY, MIXUP = "strong@p0.5+ls0.1+x4", "strong@p0.5+mixup+ls0.1+x4"


def distil(teacher: nn.Module, labelled: ImageSet, cfg: TrainConfig, seed: int, mix: bool) -> nn.Module:
    """A fresh student trained `cfg.steps` AdamW steps (cosine) to match `teacher` on the policy's augmented draws."""
    policy = preset(POLICY)
    cfg = policy.train_config(cfg)
    teacher.eval()
    with torch.random.fork_rng(devices=[]):
        student = make_model(labelled, cfg, seed)
        torch.manual_seed(seed)
        batches = training_batches(labelled, cfg, seed, policy.build())
        mixer, rng = BatchMix("mixup"), rng_for(seed, MIX_STREAM)
        opt, sched = optimizer(student, cfg, cfg.steps)
        student.train()
        for _ in range(cfg.steps):
            x, _ = next(batches)
            if mix:
                x, _ = mixer(x, rng)
            with torch.no_grad():
                target = F.softmax(teacher(x), dim=1)
            loss = F.kl_div(F.log_softmax(student(x), dim=1), target, reduction="batchmean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return student.eval()


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int, arms: tuple[str, ...] = ARMS) -> dict:
    labelled, _ = draw_budget(rest, n_per_class=n, seed=seed)  # strict: the rest of the pool is not used
    row, cfg = {"data": data, "n": n, "seed": seed}, TrainConfig()
    t0 = time.perf_counter()
    if {"x4", "kd", "kd_mix"} & set(arms):
        teacher = train_with(Recipe(policy=preset(POLICY)), labelled, seed=seed, cfg=cfg)
        row["x4"] = accuracy(teacher, dev)
        for arm, mix in (("kd", False), ("kd_mix", True)):
            if arm in arms:
                row[arm] = accuracy(distil(teacher, labelled, cfg, seed + 1, mix=mix), dev)
    if "x4_mixup" in arms:
        row["x4_mixup"] = accuracy(train_with(Recipe(policy=preset(MIXUP)), labelled, seed=seed, cfg=cfg), dev)
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    return draw_table(rows, command, f"Self-distillation of {POLICY} (strict)", ARMS,
                      [("kd - x4", "kd", "x4"), ("kd_mix - x4", "kd_mix", "x4"), ("x4_mixup - x4", "x4_mixup", "x4")])


def main() -> None:
    check_main("distil_check", __doc__, run_draw, markdown, ns=[5, 20, 50], arms=ARMS)


if __name__ == "__main__":
    main()
