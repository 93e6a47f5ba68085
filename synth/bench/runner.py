"""Run the benchmark grid (protocol x arm x budget x seed), one resumable cell at a time.

Each cell's result is a JSON file named by (protocol, arm, budget, seed) and stamped with a
hash of everything that determines it (arm params, classifier recipe, the exact ids of the
arm's data); a rerun loads matching cells and computes only what changed or is missing,
so a killed run resumes where it stopped. Arms that cannot use the unlabelled pool give the
same result under both protocols: they run once (under "strict") and count for both.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from synth.bench import arms as arm_registry
from synth.bench.protocol import (
    PROTOCOLS,
    STRICT,
    ArmData,
    LabelOracle,
    ProtocolViolation,
    arm_data,
    budget_key,
    check_protocol,
    check_seen,
    parse_budgets,
    per_class,
    split_for,
)
from synth.data.imageset import ImageSet
from synth.data.sources import Source
from synth.data.splits import Splits
from synth.environment import environment
from synth.errors import ConfigError
from synth.fsutil import atomic_write_text
from synth.training import TrainConfig, accuracy
from synth.writer import config_hash

#: Part of every cell's hash. Bump it when what an arm computes changes in code rather than in its
#: YAML params, so a rerun recomputes those cells instead of reporting numbers from the old code.
#: 2: light/strong presets on the batched torch backend; active learning spends the whole budget.
CELL_CODE_VERSION = 2

log = logging.getLogger("synth.bench")


@dataclass
class BenchPlan:
    budgets: list[Any]
    seeds: list[int]
    protocols: list[str]
    arms: dict[str, dict[str, Any]]  # arm name -> params, in report order
    train: TrainConfig
    out_dir: Path
    cache_dir: Path | None = None
    progress: bool = True
    #: cells run in parallel processes (joblib/loky), each with one torch thread
    workers: int = 1
    #: only collect cells already on disk (e.g. to report on a run still in progress); compute nothing
    report_only: bool = False
    all_arm_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in self.protocols:
            check_protocol(p)
        if "real" not in self.arms:
            raise ConfigError("bench.run must include the 'real' arm: every multiplier is relative to it")


@dataclass
class CellKey:
    protocol: str
    arm: str
    budget: Any
    seed: int

    def path(self, out_dir: Path) -> Path:
        return out_dir / "cells" / self.protocol / self.arm / f"{budget_key(self.budget)}-seed{self.seed}.json"


def arm_protocols(plan: BenchPlan, arm: str, params: Mapping[str, Any]) -> list[str]:
    """Protocols under which `arm` must actually run (one, if it cannot use the pool).

    An arm's `protocols` param restricts it further (e.g. active learning needs the pool's oracle).
    """
    if arm_registry.uses_unlabelled(arm, params):
        only = params.get("protocols")
        return [p for p in plan.protocols if not only or p in {check_protocol(q) for q in only}]
    return [STRICT]


def _params(plan: BenchPlan, arm: str) -> dict[str, Any]:
    params = dict(plan.arms[arm])
    arm_registry.ensure_registered(arm, params)
    if arm == "combined":  # the combining arm needs its sources' settings
        from synth.bench.combine import sources_of

        params["_sources"] = {s: plan.all_arm_params.get(s, {}) for s in sources_of(params)}
    return params


def arm_budgets(plan: BenchPlan, arm: str) -> list[Any]:
    """The plan's budgets, or the subset `arm`'s `budgets` param restricts it to (costly arms)."""
    only = plan.arms[arm].get("budgets")
    if not only:
        return list(plan.budgets)
    wanted = parse_budgets(list(only))
    keep = [b for b in plan.budgets if b in wanted]
    if not keep:
        raise ConfigError(f"arm budgets {list(only)} share no budget with bench.budgets {plan.budgets}")
    if dropped := [b for b in wanted if b not in plan.budgets]:
        # An arm's budgets only restrict the grid; a budget outside it would silently never run
        # (a run that meant to add n = 3 resumed every old cell and computed none), so say so.
        log.warning("arm %s: budgets %s are not in bench.budgets %s and will not run: add them to bench.budgets",
                    arm, dropped, plan.budgets)
    return keep


def plan_tasks(plan: BenchPlan) -> tuple[list[CellKey], dict[str, str]]:
    """Every cell to run, costliest first, and the arms that cannot run here (-> why).

    Longest-first order is what lets parallel workers finish together: with the learned
    generators' minutes-long cells queued last, one worker ran them alone at the end.
    """
    unavailable = {a: why for a in plan.arms if (why := arm_registry.availability(a, _params(plan, a)))}
    budgets = {a: arm_budgets(plan, a) for a in plan.arms if a not in unavailable}  # once per arm: it may warn
    tasks = [
        CellKey(p, a, b, s)
        for a in budgets
        for p in arm_protocols(plan, a, _params(plan, a))
        for b in budgets[a] for s in plan.seeds
    ]
    return sorted(tasks, key=lambda key: -cell_cost(plan, key)), unavailable


def cell_cost(plan: BenchPlan, key: CellKey) -> float:
    """Scheduling estimate: the arm's `cost` hint (default 1), larger budgets a little costlier."""
    cost = plan.arms[key.arm].get("cost", 1.0)
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost <= 0:
        raise ConfigError(f"bench.arms.{key.arm}.cost must be a number > 0 (relative seconds per cell), got {cost!r}")
    n = 10**6 if key.budget == "all" else float(key.budget)
    return float(cost) * (1.0 + 0.01 * min(n, 1000.0))


def run_grid(source: Source, plan: BenchPlan) -> tuple[list[dict], dict[str, str]]:
    """Run (or load) every cell; return (cell records, arms not available -> why)."""
    tasks, unavailable = plan_tasks(plan)
    test_ids = set(map(str, source.test.ids))
    bar = tqdm(total=len(tasks), desc="bench", unit="cell", disable=not plan.progress)
    if plan.workers > 1:
        from joblib import Parallel, delayed

        jobs = (delayed(_run_one)(source, key, plan, test_ids) for key in tasks)
        cells = []
        for cell in Parallel(n_jobs=plan.workers, return_as="generator_unordered")(jobs):
            cells.append(cell)
            bar.set_postfix_str(f"{cell['arm']} {budget_key(cell['budget'])} s{cell['seed']} {cell['protocol']}")
            bar.update(1)
    else:
        splits_cache: dict[tuple[Any, int], Splits] = {}
        cells = []
        for key in tasks:
            bar.set_postfix_str(f"{key.arm} {budget_key(key.budget)} s{key.seed} {key.protocol}")
            if (key.budget, key.seed) not in splits_cache:
                splits_cache[(key.budget, key.seed)] = split_for(source, key.budget, key.seed)
            cells.append(run_cell(key, splits_cache[(key.budget, key.seed)], plan, test_ids, source.pool))
            bar.update(1)
    bar.close()
    return cells, unavailable


def _run_one(source: Source, key: CellKey, plan: BenchPlan, test_ids: set[str]) -> dict:
    """One cell in a worker process: one torch thread, splits recomputed (cheap, deterministic)."""
    import torch

    torch.set_num_threads(1)
    return run_cell(key, split_for(source, key.budget, key.seed), plan, test_ids, source.pool)


def run_cell(key: CellKey, splits: Splits, plan: BenchPlan, test_ids: set[str], pool: ImageSet | None = None) -> dict:
    params = _params(plan, key.arm)
    data = arm_data(splits, key.protocol)
    digest = config_hash({
        "arm": key.arm, "params": arm_registry.hashed_params(params), "train": vars(plan.train), "data": data.fingerprint(),
        "test": config_hash({"ids": sorted(test_ids)}), "seed": key.seed, "code": CELL_CODE_VERSION,
    })
    path = key.path(plan.out_dir)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("hash") == digest and old.get("status") == "ok":
                return {**old, "resumed": True}
        except (json.JSONDecodeError, OSError):
            pass
    if plan.report_only:
        return {"status": "missing", "error": "not computed yet (report_only)", "protocol": key.protocol,
                "arm": key.arm, "budget": key.budget, "seed": key.seed, "resumed": True}
    record = _execute(key, data, splits, params, plan, test_ids, pool)
    record.update(hash=digest, protocol=key.protocol, arm=key.arm, budget=key.budget, seed=key.seed,
                  n_per_class=per_class(splits.labelled))
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=str))
    return {**record, "resumed": False}


def _execute(
    key: CellKey, data: ArmData, splits: Splits, params: dict, plan: BenchPlan, test_ids: set[str],
    pool: ImageSet | None,
) -> dict:
    fn = arm_registry.resolve(key.arm)
    cache = arm_registry.GeneratorCache(plan.cache_dir) if plan.cache_dir else None
    oracle = LabelOracle(data, pool) if pool is not None and data.unlabelled is not None else None
    cfg = arm_registry.ArmConfig(key.arm, params, plan.train, cache, plan.all_arm_params, plan.progress, oracle)
    t0 = time.perf_counter()
    try:
        out = fn(data, key.budget, key.seed, cfg)
    except ProtocolViolation:
        raise
    except Exception as exc:  # a broken arm must not sink the whole benchmark; it is reported
        log.error("arm %s failed at %s seed %d: %s", key.arm, budget_key(key.budget), key.seed, exc)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=5)}
    seen = dict(out.seen)
    if oracle is not None and oracle.queried:
        seen["label oracle"] = oracle.queried
    protocol_record = check_seen(key.arm, data, seen, test_ids)
    acc = accuracy(out.model, splits.test)
    queried = len(oracle.queried) if oracle is not None else 0
    n_lab = out.n_labelled if out.n_labelled is not None else len(data.labelled) + queried
    return {"status": "ok", "accuracy": acc, "seconds": round(time.perf_counter() - t0, 2),
            "labelled_used": n_lab, "meta": out.meta, "protocol_check": protocol_record, "environment": environment()}


def cells_for(cells: list[dict], protocol: str, arm: str) -> list[dict]:
    """An arm's cells under `protocol` (protocol-independent arms reuse their strict cells)."""
    own = [c for c in cells if c["arm"] == arm and c["protocol"] == protocol]
    return own or [c for c in cells if c["arm"] == arm and c["protocol"] == STRICT]


__all__ = ["PROTOCOLS", "BenchPlan", "CellKey", "cells_for", "run_grid"]
