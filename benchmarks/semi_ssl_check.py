"""Design check on a dev split (never the test set): does consistency training gain from starting at an SSL encoder?

The question: with the pool, issue 9's digits 8x is decided at n = 3 labels per class, where the search
(`auto_gate`) adopts consistency training in every cell and two of six test cells sat at ~0.93 while four reached
0.978-0.994 (docs/recipe_log.md, "Restarts with selection at 3 labels per class"). Consistency training starts from
a fresh network. Starting it from the supervised default did not help (semi_warm_check: a model that has seen
labels is confident in its own mistakes); restarts with selection did not help at n = 3. An encoder pretrained
contrastively on the pool (synth.ssl, SimCLR) has seen no label, so it carries no confident mistakes, only a
feature space where images of one class may already sit together. The search can already combine the two
(its `ssl` stage runs `recipe.with_(ssl=True)` on the incumbent), but on digits it prices the trial out of its
budget (pretraining ~199 s), so the combination was never measured.

Per draw (n labels per class, seed), as `synth recommend` makes it (`recommend_draw`: its pool and TrainConfig),
scored on dev images (pool images held out of everything):

- real: real only (the benchmark's baseline);
- semi: recommend's first semi candidate (weak light, aligned) from a fresh network, through the search's own
  `fit_and_train` (what synth ships);
- semi_ssl: the same recipe with `ssl=True`: the classifier starts from the search's encoder
  (`encoder_config`: SimCLR on the draw's pool, no label), then the same consistency training.

    python benchmarks/semi_ssl_check.py --data digits --ns 3 2 --seeds 0 1 2 3 --out a.jsonl
    python benchmarks/semi_ssl_check.py --data digits --ns 3 2 --seeds 4 5 6 7 --out b.jsonl
    python benchmarks/semi_ssl_check.py --data digits --from-jsonl a.jsonl b.jsonl  # -> results/semi_ssl_check_digits.*
"""

from __future__ import annotations

import time

from dev_split import check_main, draw_table, pooled_by_budget, recommend_draw, recommend_semi

from synth.data import ImageSet
from synth.recipe import Recipe
from synth.recipe.recipe import TrainContext, fit_and_train
from synth.training import accuracy, train_classifier

ARMS = ("real", "semi", "semi_ssl")
SEMI = recommend_semi()


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, pool, cfg = recommend_draw(rest, n, seed)
    row = {"data": data, "n": n, "seed": seed}
    t0 = time.perf_counter()
    row["real"] = accuracy(train_classifier(labelled, cfg, seed=seed), dev)
    ctx = TrainContext(train_cfg=cfg)
    row["semi"] = accuracy(fit_and_train(Recipe(semi=SEMI), labelled, pool, seed, ctx), dev)
    t1 = time.perf_counter()
    row["semi_ssl"] = accuracy(fit_and_train(Recipe(semi=SEMI, ssl=True), labelled, pool, seed, ctx), dev)
    row["sec"] = round(time.perf_counter() - t0, 1)
    row["sec_semi_ssl"] = round(time.perf_counter() - t1, 1)
    return row


DIFFS = [("semi_ssl - semi", "semi_ssl", "semi"), ("semi - real", "semi", "real")]


def markdown(rows: list[dict], command: str) -> str:
    table = draw_table(rows, command, "Consistency training from an SSL encoder on the pool (weak light, aligned)", ARMS,
                       DIFFS)
    return table + pooled_by_budget(rows, DIFFS[:1], "the rule reads semi_ssl - semi: n = 3 decides, n = 2 guards")


def main() -> None:
    check_main("semi_ssl_check", __doc__, run_draw, markdown, ns=[3, 2])


if __name__ == "__main__":
    main()
