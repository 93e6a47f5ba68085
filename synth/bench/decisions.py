"""Per-cell decisions of recipe-search arms: what the search chose, on what CV evidence, and what it did on test.

Why a separate table: "never worse" is a promise about every user's data, i.e. every cell, while the
multiplier reads the mean curve. A reader deciding whether to trust `synth recommend` needs each adoption
next to real only on the same labels and seed, and a count of how often an adopted lever lost on test.
A cell is a recipe-search cell when its meta carries the search's record (`recipe` and `candidates`,
written by synth.recipe.bench_arm); other arms are not listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from synth.bench.protocol import budget_key
from synth.bench.runner import BenchPlan, cells_for
from synth.recipe.search import DEFAULT_REASON, GATE_REASON
from synth.regularisers import KINDS

NOTHING = "nothing"
#: a test difference this small is a tie (the same model: "nothing" retrains real only with its seed)
TIE = 1e-9


def is_search_cell(cell: Mapping[str, Any]) -> bool:
    meta = cell.get("meta") or {}
    return cell.get("status") == "ok" and "recipe" in meta and "candidates" in meta


def _cv_gain(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen recipe's paired CV gain over "nothing" in the decision metric (accuracy if none other)."""
    if meta["recipe"] == NOTHING:
        return {"metric": None, "gain": 0.0, "se": 0.0}
    cand = meta["candidates"].get(meta["recipe"])
    if cand is None:
        return {"metric": None, "gain": None, "se": None}
    for key, value in cand.items():
        if key.endswith("_gain_vs_nothing"):
            metric = key.removesuffix("_gain_vs_nothing")
            return {"metric": metric, "gain": value, "se": cand.get(f"{metric}_gain_se")}
    return {"metric": "accuracy", "gain": cand.get("gain_vs_nothing"), "se": cand.get("gain_se")}


def _route(meta: Mapping[str, Any]) -> str | None:
    """How the chosen recipe was adopted: "gain" (it beat real only in CV), "precision gate" (semi only)
    or "default policy" (the augmentation stage's default, CV showing no harm)."""
    if meta["recipe"] == NOTHING:
        return None
    reason = str(meta.get("reason", ""))
    if reason.startswith(GATE_REASON):
        return "precision gate"
    return "default policy" if reason.startswith(DEFAULT_REASON) else "gain"


def collect(cells: list[dict], plan: BenchPlan, baseline: str = "real") -> dict[str, Any]:
    """Rows per `protocol/arm` (budget order, then seed) and a summary of adoptions against `baseline`.

    Only the report's grid (plan budgets x seeds) is listed, like every other table: an out_dir may hold
    cells of other seeds or budgets from earlier runs. The baseline's cells are found as the curves find
    them (`cells_for`: a protocol-independent arm such as real only reuses its strict cells).
    """
    search = sorted((c for c in cells if is_search_cell(c) and c["budget"] in plan.budgets and c["seed"] in plan.seeds),
                    key=lambda c: (c["protocol"], c["arm"], plan.budgets.index(c["budget"]), c["seed"]))
    base: dict[str, dict[tuple, float]] = {}
    out: dict[str, Any] = {}
    for c in search:
        if c["protocol"] not in base:
            base[c["protocol"]] = {(b["budget"], b["seed"]): b["accuracy"]
                                   for b in cells_for(cells, c["protocol"], baseline) if b.get("status") == "ok"}
        real = base[c["protocol"]].get((c["budget"], c["seed"]))
        diff = None if real is None else c["accuracy"] - real
        row = {"budget": budget_key(c["budget"]), "seed": c["seed"], "recipe": c["meta"]["recipe"],
               "route": _route(c["meta"]), "cv": _cv_gain(c["meta"]), "test": c["accuracy"], "real": real, "diff": diff,
               "search_seconds": c["meta"].get("search_seconds"), "restarts": c["meta"].get("restarts")}
        out.setdefault(f"{c['protocol']}/{c['arm']}", {"rows": []})["rows"].append(row)
    for entry in out.values():
        entry["summary"] = summarise(entry["rows"])
    return out


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How many cells adopted a lever, and how those did on test against real only."""
    adopted = [r for r in rows if r["recipe"] != NOTHING and r["diff"] is not None]
    diffs = [r["diff"] for r in adopted]
    return {
        "cells": len(rows),
        "adopted": sum(r["recipe"] != NOTHING for r in rows),
        "above": sum(d > TIE for d in diffs),
        "tied": sum(abs(d) <= TIE for d in diffs),
        "below": sum(d < -TIE for d in diffs),
        "worst": min(diffs) if diffs else None,
        "best": max(diffs) if diffs else None,
    }


def _fmt_cv(cv: Mapping[str, Any]) -> str:
    if cv["metric"] is None:
        return "–"  # "nothing" (real only) or a recipe without a recorded candidate
    se = cv["se"]
    return f"{cv['metric']} {cv['gain']:+.3f}" + ("" if se is None else f" ± {se:.3f}")


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


_ROUTE_MARK = {"precision gate": " *(gate)*", "default policy": " *(default)*"}
#: said only where a cell adopted a batch mix, so reports without one render as before
_MIX_NOTE = (" A batch mix in a *(default)* recipe (`+mixup`, `+cutmix`) was added on top of the default by the "
             "batch-mix stage, by the gain rule (it beat the default in CV).")


#: said only where a cell restarted consistency training, so reports without one render as before
_RESTART_NOTE = (" *(run k of K)*: consistency training was trained K times at the final fit and run k (0: the single "
                 "run) kept, the most confident on the pool (`synth.semi.Restarts`).")


def _any_restarts(decisions: Mapping[str, Any]) -> bool:
    return any(r.get("restarts") for e in decisions.values() for r in e["rows"])


def _restart_mark(restarts: Mapping[str, Any] | None) -> str:
    return f" *(run {restarts['picked']} of {restarts['runs']})*" if restarts else ""


def _any_batch_mix(decisions: Mapping[str, Any]) -> bool:
    return any(f"+{kind}" in str(r["recipe"]) for e in decisions.values() for r in e["rows"] for kind in KINDS)


def markdown(decisions: Mapping[str, Any]) -> list[str]:
    """The report section: a summary row per search arm, then every cell."""
    if not decisions:
        return []
    lines = ["## Recipe-search decisions (per cell)", "",
             "What each recipe-search cell adopted, its paired CV gain over \"nothing\" in the decision metric "
             "(inside the labelled budget), and its test accuracy next to real only on the same labels and seed. "
             "\"nothing\" retrains real only, so it ties exactly. *(gate)*: semi adopted by the precision gate "
             "(CV gain within its noise, no harm, confident held-out predictions precise; docs/recipe.md); "
             "*(default)*: the search's default augmentation policy, adopted because its CV showed no harm."
             + (_MIX_NOTE if _any_batch_mix(decisions) else "") + (_RESTART_NOTE if _any_restarts(decisions) else ""),
             "",
             "| protocol/arm | cells | adopted a lever | adopted: above / tied / below real on test | "
             "worst · best difference |", "|---|---|---|---|---|"]
    for key, entry in decisions.items():
        s = entry["summary"]
        lines.append(f"| {key} | {s['cells']} | {s['adopted']} | {s['above']} / {s['tied']} / {s['below']} | "
                     f"{_fmt(s['worst'], '+.4f')} · {_fmt(s['best'], '+.4f')} |")
    lines += ["", "| protocol/arm | budget | seed | chose | CV gain vs nothing ± SE | test | real | difference |",
              "|---|---|---|---|---|---|---|---|"]
    for key, entry in decisions.items():
        for r in entry["rows"]:
            chose = r["recipe"] + _ROUTE_MARK.get(r.get("route"), "") + _restart_mark(r.get("restarts"))
            lines.append(f"| {key} | {r['budget']} | {r['seed']} | {chose} | {_fmt_cv(r['cv'])} | "
                         f"{r['test']:.4f} | {_fmt(r['real'], '.4f')} | {_fmt(r['diff'], '+.4f')} |")
    return lines + [""]
