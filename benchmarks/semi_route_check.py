"""Design check on a dev split (never the test set): should the stack adopt consistency training at small slices?

The question: the stack (`synth/bench/stack_arm.py`, bench arm `full_stack_typiclust`, issue 7's stack on both
datasets) adopts consistency training (`semi`) only when fold students beat their teachers on the held-out folds of
its random slice. At 2-5 labels per class the slice holds 1-3 labels a class, so each fold validates on about one
image a class and the test has little power: on Fashion-MNIST's test cells at n = 5 it declined consistency training
on all three seeds (Brier -0.17 to -0.25, accuracy -3 to -10 points on 10-image folds), and on digits at n = 2 on all
three (SE 0.35-0.41 Brier). `semi_max_slice: 3` adopts it without that CV when the slice's smallest class holds at
most 3 labels.

Per draw (n labels per class drawn at random from the dev split's rest, seed) the stack runs as the harness runs it
(`bench.arms.full_stack_typiclust` of the bench preset, its classifier recipe, a simulated oracle over the rest of the
pool); its decisions are shared (`decide_stack`), then:

- real: the labelled draw alone (the benchmark's baseline; for reference);
- current: the stack as shipped before the check (`semi_max_slice: 0`: its CV decides consistency training;
  the preset sets 3 since the rule passed, 10 since `always`'s rule passed (stop 54), so the check pins 0 to stay
  reproducible);
- small_slice: `semi_max_slice: 3`. Where the slice's smallest class holds at most 3 labels and `current` declined
  consistency training, the final model is consistency training on the same chosen labels and pool, which is what
  the option's route trains (`final_model` with `semi_on`); elsewhere it is `current`'s model.
- always (stop 53): the same route at any slice size (what a `semi_max_slice` at least the slice would do): where
  `current` declined consistency training, consistency training on the same chosen labels and pool. It asks whether
  the CV gate declines consistency training where it would have helped, at budgets (n = 20: 10 labels a class in the
  slice) where the gate has more than one image a class to validate on.

The decision rule was committed before the first draw (docs/label_efficiency_log.md, "Consistency training at small
slices"); `always` has its own, also committed before its first draw ("Consistency training whenever the stack's CV
declines it"), read at n = 20 on Fashion-MNIST and n = 10 / 20 on digits (`--ns 20 --arms real current always`); it passed in stop
54 (+1.20 points on Fashion-MNIST, +1.33 / +0.92 on digits). `--arm full_stack` runs the same check on the margin stack, by its own rule registered later in the same
log ("..., the margin stack"); its results go to results/semi_route_check_full_stack_<data>.*; its `always` rule passed
in stop 55 (+1.64 points on Fashion-MNIST, 0.00 / 0.00 on digits; the Fashion-MNIST rerun committed there reads +0.36). Run with nothing else
on the machine: the stack's step-2 search has a wall-clock budget.

    python benchmarks/semi_route_check.py --data fashion_mnist --ns 5 --seeds 0 1 --out a.jsonl
    python benchmarks/semi_route_check.py --data fashion_mnist --ns 5 --seeds 2 3 --out b.jsonl
    python benchmarks/semi_route_check.py --data fashion_mnist --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import time

from dev_split import check_main, draw_table, pooled_by_budget, stack_plan

from synth.bench.stack_arm import final_model
from synth.data import ImageSet
from synth.training import accuracy, train_classifier

#: the stacks the check can run (`--arm`); the first is the one its first rule was registered for
STACKS, MAX_SLICE = ("full_stack_typiclust", "full_stack"), 3
ARMS = ("real", "current", "small_slice", "always")


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int, arms: tuple[str, ...] = ARMS,
             bench_arm: str = STACKS[0]) -> dict:
    t0, row = time.perf_counter(), {"data": data, "arm": bench_arm, "n": n, "seed": seed}
    # the CV decides (the option off), as shipped when the rule was registered; the preset sets it on since
    labelled, plan, train = stack_plan(data, rest, n, seed, bench_arm, semi_max_slice=0)
    if "real" in arms:
        row["real"] = accuracy(train_classifier(labelled, train, seed=seed), dev)
    gate, semi = plan.gate, plan.gate.get("semi") or {}
    slice_min = plan.meta["slice_min"]
    row.update(augment=plan.policy.name, semi_on=bool(gate.get("semi_on")), pl_on=bool(gate.get("pl_on")),
               pl_route=gate.get("pl_route"), slice_min=slice_min,
               semi_cv={k: semi.get(k) for k in ("brier_gain", "brier_gain_se", "acc_gain", "acc_gain_se")})
    model, meta, _ = final_model(plan.chosen, plan.rest, plan.policy, gate, plan.params, train, seed)
    row["current"], row["current_pseudo"] = accuracy(model, dev), meta["pseudo_labelled"]
    row["differs"] = not row["semi_on"] and slice_min <= MAX_SLICE
    row["small_slice"] = row["current"]
    if "always" in arms:
        row["always"] = row["current"]
    if not row["semi_on"] and (row["differs"] or "always" in arms):
        # the route: consistency training on the same chosen labels and pool, trained once for both arms
        model, _, _ = final_model(plan.chosen, plan.rest, plan.policy, {**gate, "semi_on": True}, plan.params, train, seed)
        semi_accuracy = accuracy(model, dev)
        row["small_slice"] = semi_accuracy if row["differs"] else row["current"]
        if "always" in arms:
            row["always"] = semi_accuracy
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    """The per-draw table, the pooled difference the registered rule reads, then each draw's decisions."""
    diffs = [("small_slice - current", "small_slice", "current"), ("always - current", "always", "current"),
             ("current - real", "current", "real")]
    gates = [f"| {r['n']} | {r['seed']} | {r['slice_min']} | {r['augment']} | {'yes' if r['semi_on'] else 'no'} | "
             f"{_cv(r['semi_cv'])} | {r['pl_route'] or ''} | {'yes' if r['differs'] else 'no'} |" for r in rows]
    arm = rows[0].get("arm", STACKS[0])
    who = "The stack's" if arm == STACKS[0] else f"`{arm}`'s"
    title = f"{who} consistency training without its CV (CV vs semi_max_slice: 3; vs always)"
    return (draw_table(rows, command, title,
                       ARMS, diffs)
            + pooled_by_budget(rows, diffs, "the registered rule reads these")
            + "\nPer draw: random labels in the slice's smallest class, the augmentation chosen after AL, consistency "
            "training adopted by the CV and its fold evidence (Brier gain ± SE; accuracy gain ± SE, points), the "
            "pseudo-label route, whether `semi_max_slice: 3` changes the final model (`always` changes it wherever the CV "
            "declined):\n\n"
            "| n | seed | slice | augment | semi (CV) | semi CV evidence | pseudo-labels | small_slice differs |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(gates) + "\n")


def _cv(cv: dict) -> str:
    if cv.get("brier_gain") is None:
        return ""
    acc = round(100 * cv["acc_gain"], 1) + 0.0  # a float-rounding -3.7e-17 reads +0.0, not -0.0
    return f"{cv['brier_gain']:+.4f} ± {cv['brier_gain_se']:.4f}; {acc:+.1f} ± {100 * cv['acc_gain_se']:.1f}"


def main() -> None:
    check_main("semi_route_check", __doc__, run_draw, markdown, ns=[5], arms=ARMS, bench_arms=STACKS)


if __name__ == "__main__":
    main()
