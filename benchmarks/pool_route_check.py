"""Design check on a dev split (never the test set): should `synth recommend` take the default route with a pool?

The question: `search.default_policy_with_pool` (conf/recommend.yaml) decides whether, given an unlabelled pool,
recommend's search adopts the default augmentation policy unless its CV shows harm and tries the batch-mix stage
(the "default route", as it does without a pool), or lets the gain rule pick the policy before the semi stage.
It is off. On the test cells the route with the smoothed (not x4) defaults helped Fashion-MNIST (+0.73 points per
cell) and moved digits' n = 2 cells by -3.2 ... +4.4 points (bench arms `auto_pool_default` vs `auto_gate`); what
turning it on would ship, the x4 default before the semi stage, was never measured, and deciding on those test
cells would tune on the test set. This asks it on dev images (pool images held out of everything).

Per draw (n labels per class, seed): the labelled images and a pool drawn the way `synth recommend` draws it
(the rest of the dev split's pool, labels hidden, capped at `max_unlabelled` by the same seeded stream); then
recommend's search exactly as conf/recommend.yaml configures it (`synth.commands.recommend.search_settings`,
the 600 s wall-clock budget included), its final classifier trained as recommend's recipe prescribes:

- real: real only (the benchmark's baseline);
- gate: `default_policy_with_pool: false` (what recommend ships);
- route: `default_policy_with_pool: true` (the default policies, x4 first, and the batch-mix stage, then semi).

Run with nothing else on the machine: the budget is wall-clock, so load changes which trials run.

    python benchmarks/pool_route_check.py --data digits --ns 2 5 --seeds 0 1 --out a.jsonl
    python benchmarks/pool_route_check.py --data digits --ns 2 5 --seeds 2 3 --out b.jsonl
    python benchmarks/pool_route_check.py --data digits --from-jsonl a.jsonl b.jsonl  # -> results/pool_route_check_digits.*
"""

from __future__ import annotations

import time
from collections import Counter

from dev_split import check_main, draw_table, recommend_config, recommend_draw
from omegaconf import OmegaConf

from synth.commands.recommend import search_settings
from synth.data import ImageSet
from synth.recipe import search_recipe
from synth.training import accuracy, train_classifier

ARMS = ("real", "gate", "route")


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int, arms: tuple[str, ...] = ARMS) -> dict:
    labelled, pool, cfg = recommend_draw(rest, n, seed)
    row, t0 = {"data": data, "n": n, "seed": seed}, time.perf_counter()
    if "real" in arms:
        row["real"] = accuracy(train_classifier(labelled, cfg, seed=seed), dev)
    for arm in (a for a in ("gate", "route") if a in arms):
        search = OmegaConf.merge(recommend_config().search, {"default_policy_with_pool": arm == "route"})
        result = search_recipe(labelled, pool, seed=seed, train_cfg=cfg, progress=False,
                               **search_settings(search, pool))
        row[arm] = accuracy(result.train_final(labelled, pool, seed=seed, cfg=cfg), dev)
        row[f"{arm}_recipe"] = result.recipe.name
        row[f"{arm}_search_sec"] = round(result.seconds, 1)
        row[f"{arm}_skipped"] = [str(k) for k in result.skipped]
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    table = draw_table(rows, command, "recommend with a pool: the default route (route) vs the gain rule (gate)",
                       ARMS, [("route - gate", "route", "gate"), ("gate - real", "gate", "real")])
    lines = ["", "Chosen recipes and search seconds per draw (cut: trials the compute budget skipped, by stage):", "",
             "| n | seed | gate | route |", "|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[f'{a}_recipe']} ({r[f'{a}_search_sec']:.0f} s" + _cut(r[f"{a}_skipped"]) + ")"
                 for a in ("gate", "route")]
        lines.append(f"| {r['n']} | {r['seed']} | " + " | ".join(cells) + " |")
    return table + "\n".join(lines) + "\n"


def _cut(skipped: list[str]) -> str:
    """'; cut: 2 semi, 1 batch_mix' from the search's skip lines ('<stage>: <candidate> (<why>)')."""
    stages = Counter(line.split(":")[0] for line in skipped)
    return "; cut: " + ", ".join(f"{k} {v}" for k, v in stages.items()) if stages else ""


def main() -> None:
    check_main("pool_route_check", __doc__, run_draw, markdown, ns=[2, 5], arms=ARMS)


if __name__ == "__main__":
    main()
