"""Design check on a dev split (never the test set): should the stack's pseudo-labels need the benefit test?

The question: the stack (`synth/bench/stack_arm.py`, bench arm `full_stack`) opens pseudo-labels by either of two
routes after active learning. The precision route opens when the Wilson lower bound of the fold teachers' held-out
precision reaches 0.9; the benefit route, tried only when that bound fails, opens when students trained on the fold
labels + pseudo-labels beat their teachers on the held-out slice. On Fashion-MNIST dev draws pseudo-labels 89-97 %
correct still cost the student 1.2-2.4 points against its teacher (pl_balance_check), so a passing bound is no
evidence that they help. `pl_precision_route: false` makes the benefit test decide whenever the bound passes too.

Per draw (n labels per class drawn at random from the dev split's rest, seed) the stack runs as the harness runs
it (`bench.arms.full_stack` of the bench preset, its classifier recipe, a simulated oracle over the rest of the
pool) with `pl_precision_route: false`; its decisions are shared (`decide_stack`), then two final models:

- real: the labelled draw alone (the benchmark's baseline; for reference);
- current: the shipped gate (a passing bound opens pseudo-labels);
- benefit_only: `pl_precision_route: false`. It differs from `current` only on draws where the bound passed and
  the students did not beat their teachers; elsewhere the two are the same model.

The decision rule was committed before the first draw (docs/label_efficiency_log.md, "The stack's precision route").
Run with nothing else on the machine: the stack's step-2 search has a wall-clock budget.

    python benchmarks/pl_route_check.py --data fashion_mnist --ns 20 --seeds 0 1 --out a.jsonl
    python benchmarks/pl_route_check.py --data fashion_mnist --ns 20 --seeds 2 3 --out b.jsonl
    python benchmarks/pl_route_check.py --data fashion_mnist --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import time

from dev_split import check_main, draw_table, pooled_by_budget, stack_plan

from synth.bench.stack_arm import final_model
from synth.data import ImageSet
from synth.training import accuracy, train_classifier

ARMS = ("real", "current", "benefit_only")
#: the stack as shipped when this check's rows were drawn (stop 48): `full_stack` has set `semi_max_slice` since
#: (3 in stop 49, 10 in stop 55), which would change the final model of every committed draw's slice, so the check
#: pins the CV's decision
PINNED = {"semi_max_slice": 0}


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int, arms: tuple[str, ...] = ARMS) -> dict:
    t0, row = time.perf_counter(), {"data": data, "n": n, "seed": seed}
    labelled, plan, train = stack_plan(data, rest, n, seed, "full_stack", pl_precision_route=False, **PINNED)
    if "real" in arms:
        row["real"] = accuracy(train_classifier(labelled, train, seed=seed), dev)
    gate = plan.gate
    row.update(augment=plan.policy.name, semi_on=bool(gate.get("semi_on")), pl_precision_passes=bool(gate.get("pl_precision_passes")),
               pl_on=bool(gate.get("pl_on")), pl_route=gate.get("pl_route"), pl_threshold=gate.get("pl_threshold"),
               pl_cv_precision=gate.get("pl_cv_precision"), pl_benefit=gate.get("pl_benefit"))
    model, meta, _ = final_model(plan.chosen, plan.rest, plan.policy, gate, plan.params, train, seed)
    row["benefit_only"], row["benefit_only_pseudo"] = accuracy(model, dev), meta["pseudo_labelled"]
    row["differs"] = row["pl_precision_passes"] and not row["pl_on"]
    row["current"], row["current_pseudo"] = row["benefit_only"], row["benefit_only_pseudo"]
    if row["differs"]:  # the shipped gate opens here: its final model, trained on the same decisions
        model, meta, _ = final_model(plan.chosen, plan.rest, plan.policy, {**gate, "pl_on": True}, plan.params, train, seed)
        row["current"], row["current_pseudo"] = accuracy(model, dev), meta["pseudo_labelled"]
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    """The per-draw table, the pooled difference the registered rule reads, then each draw's gate."""
    diffs = [("benefit_only - current", "benefit_only", "current"), ("current - real", "current", "real")]
    gates = [f"| {r['n']} | {r['seed']} | {r['augment']} | {'yes' if r['semi_on'] else 'no'} | "
             f"{'yes' if r['pl_precision_passes'] else 'no'} | {_benefit(r)} | {r['current_pseudo']} | {r['benefit_only_pseudo']} |"
             for r in rows]
    return (draw_table(rows, command, "The stack's pseudo-label routes (precision or benefit vs benefit only)", ARMS, diffs)
            + pooled_by_budget(rows, diffs, "the registered rule reads these")
            + "\nPer draw: the augmentation chosen after AL, consistency training adopted, the precision bound passed, "
            "the benefit test (Brier gain ± SE; blank: not run), pseudo-labels kept by the shipped gate and by benefit only:\n\n"
            "| n | seed | augment | semi | bound passes | benefit test | current kept | benefit_only kept |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(gates) + "\n")


def _benefit(row: dict) -> str:
    b = row.get("pl_benefit")
    if not b:
        return ""
    return f"{'passes' if b['passes'] else 'fails'} ({b['brier_gain']:+.4f} ± {b['brier_gain_se']:.4f})"


def main() -> None:
    check_main("pl_route_check", __doc__, run_draw, markdown, ns=[20], arms=ARMS)


if __name__ == "__main__":
    main()
