"""Design check on a dev split (never the test set): which augmentation should consistency training's labelled
images get at 2 labels per class?

Why: in the dev draws of `pool_route_check.py` (stop 40) the default route lost at n = 2 on digits where it ran
consistency training on the smoothed default (`strong@p0.5+ls0.1 + semi`) and the gain rule's search ran it on a
lighter or no policy (seed 4: 86.0 vs 97.3 % on dev). Those were two searches, each with its own noise; this asks
the narrower question with the search taken out: the same labelled draw, the same pool and the same semi settings
(`synth recommend`'s first candidate: light weak view, distribution alignment), trained once per policy on the
labelled images, scored on dev images (pool images held out of everything).

Arms: real only; semi with no policy on the labelled images (`semi_none`, their weak view only), with
`strong@p0.5` (`semi_sp5`) and with the smoothed default `strong@p0.5+ls0.1` (`semi_sp5_ls`), each as the search
would build it (`Recipe(policy, semi)`, the policy's `+x` scale dropped as the semi stage drops it).

    python benchmarks/semi_policy_check.py --data digits --ns 2 --seeds 0 1 2 3 4 --out a.jsonl
    python benchmarks/semi_policy_check.py --data digits --ns 2 --seeds 5 6 7 8 9 --out b.jsonl
    python benchmarks/semi_policy_check.py --data digits --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import time

from dev_split import check_main, draw_table, recommend_draw, recommend_semi

from synth.data import ImageSet
from synth.recipe import Recipe, preset, train_with
from synth.training import accuracy, train_classifier

#: arm -> the policy on the labelled images (None: no policy)
POLICIES = {"semi_none": None, "semi_sp5": "strong@p0.5", "semi_sp5_ls": "strong@p0.5+ls0.1"}
ARMS = ("real", *POLICIES)


def recipe(policy: str | None) -> Recipe:
    semi = recommend_semi()
    return Recipe(semi=semi) if policy is None else Recipe(policy=preset(policy).with_steps(1.0), semi=semi)


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int, arms: tuple[str, ...] = ARMS) -> dict:
    labelled, pool, cfg = recommend_draw(rest, n, seed)
    row, t0 = {"data": data, "n": n, "seed": seed}, time.perf_counter()
    if "real" in arms:
        row["real"] = accuracy(train_classifier(labelled, cfg, seed=seed), dev)
    for arm, policy in POLICIES.items():
        if arm in arms:
            row[arm] = accuracy(train_with(recipe(policy), labelled, pool, seed, cfg), dev)
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    policies = ", ".join(f"{arm} = {policy or 'none'}" for arm, policy in POLICIES.items())
    table = draw_table(rows, command, "consistency training, the policy on its labelled images", ARMS,
                       [("none - sp5_ls", "semi_none", "semi_sp5_ls"), ("none - sp5", "semi_none", "semi_sp5"),
                        ("none - real", "semi_none", "real")])
    return table + f"\nSemi settings: `synth recommend`'s first candidate, {recommend_semi().label}; {policies}.\n"


if __name__ == "__main__":
    check_main("semi_policy_check", __doc__, run_draw, markdown, ns=[2], arms=ARMS)
