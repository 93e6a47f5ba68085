"""Write a recipe search out: rerunnable YAML, JSON evidence, and a one-page PNG.

The PNG is what an engineer brings to the meeting that decides the labelling budget: CV
accuracy of every recipe tried, with error bars, "nothing" marked, the choice highlighted.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import ConfigError
from synth.recipe.recipe import Recipe
from synth.recipe.result import RecipeResult
from synth.semi import Restarts

RECIPE_YAML, RECIPE_JSON, RECIPE_PNG = "recipe.yaml", "recipe.json", "recipe.png"


def write_report(result: RecipeResult, out_dir: str | Path, run_info: dict[str, Any] | None = None,
                 restarts: Restarts | None = None) -> dict[str, Path]:
    """Write recipe.yaml, recipe.json and recipe.png into `out_dir`; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"yaml": out / RECIPE_YAML, "json": out / RECIPE_JSON, "png": out / RECIPE_PNG}
    write_recipe_yaml(result, paths["yaml"], run_info, restarts)
    evidence = {**result.to_dict(), "run": run_info or {}}
    paths["json"].write_text(json.dumps(evidence, indent=1, default=_jsonable))
    plot(result, paths["png"])
    return paths


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return str(x)


def write_recipe_yaml(result: RecipeResult, path: Path, run_info: dict[str, Any] | None = None,
                      restarts: Restarts | None = None) -> Path:
    """The chosen recipe as YAML; `synth recommend ... recipe=<path>` re-scores it, `load_recipe` rebuilds it.

    With consistency training chosen and `restarts` on, the file also carries `semi_restarts` (`load_restarts`
    reads it back), so the user's final fit makes the same choice among runs that synth would.
    """
    from omegaconf import OmegaConf

    run_info = run_info or {}
    restarts = restarts if restarts is not None and restarts.runs > 1 and result.recipe.semi is not None else None
    chosen = result.chosen
    header = [
        f"# synth recipe: {result.recipe.name}",
        f"# CV estimate {chosen.mean:.3f} +- {chosen.se:.3f} ({result.k_folds}-fold, inside the labelled budget); "
        f"real only {result.baseline.mean:.3f}",
        f"# {result.reason}",
        "# Rerun (re-score beside real only on the same folds): "
        f"synth recommend {run_info.get('overrides', '')} recipe={path}".rstrip(),
        "# Train with it in Python: synth.recipe.train_with(synth.recipe.load_recipe(path), labelled, unlabelled"
        + (", restarts=synth.recipe.load_restarts(path))" if restarts else ")"),
        "# `search_train` is the classifier the search trained inside CV folds (synth recommend train.*).",
    ]
    body = {"recipe": result.recipe.to_dict(), "search_train": vars(result.train_cfg)}
    if restarts:
        header.append("# `semi_restarts`: consistency training is trained `runs` times at the final fit and the run most "
                      "confident on the pool kept, when the smallest class has <= `max_labels` labelled images.")
        body["semi_restarts"] = asdict(restarts)
    body = OmegaConf.to_yaml(OmegaConf.create(body))
    path.write_text("\n".join(header) + "\n" + body)
    return path


def _read_recipe_file(path: str | Path) -> Any:
    """The parsed contents of a recipe.yaml; a missing file is a ConfigError saying how to write one."""
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file {path} does not exist; write one with `synth recommend`")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def load_recipe(path: str | Path) -> Recipe:
    """Rebuild a Recipe from recipe.yaml (or a YAML holding the recipe at top level)."""
    raw = _read_recipe_file(path)
    node = raw.get("recipe", raw) if isinstance(raw, dict) else None
    if not isinstance(node, dict):
        raise ConfigError(f"{path}: expected a mapping with a `recipe` key")
    return Recipe.from_dict(node)


def load_restarts(path: str | Path) -> Restarts:
    """The final fit's consistency-training restarts from recipe.yaml (absent: one run)."""
    raw = _read_recipe_file(path)
    return Restarts.from_dict(raw.get("semi_restarts") if isinstance(raw, dict) else None)


def plot(result: RecipeResult, path: Path) -> Path:
    """Two panels per recipe: CV accuracy (mean +- SE over folds), and the paired gain over real only
    in the decision metric (mean +- SE; what the search decides by). Choice green, "nothing" grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in result.trials if t.complete]
    labels = [f"[{t.stage}] {t.recipe.name}"[:70] for t in trials]
    means = np.array([t.mean for t in trials])
    ses = np.array([t.se if np.isfinite(t.se) else 0.0 for t in trials])
    gains = np.array([result.gain(t) if len(t.values(result.metric)) else (np.nan, 0.0) for t in trials])
    chosen = result.recipe.to_dict()
    colours = ["tab:green" if t.recipe.to_dict() == chosen else "0.6" if t.recipe.is_nothing else "tab:blue"
               for t in trials]
    fig, (ax, bx) = plt.subplots(1, 2, sharey=True, figsize=(11.0, max(3.0, 0.35 * len(trials) + 1.8)))
    y = np.arange(len(trials))
    ax.barh(y, means, xerr=ses, color=colours, capsize=3)
    if len(trials):
        ax.axvline(trials[0].mean, color="0.3", ls="--", lw=1, label="real only")
        lo = max(0.0, float(np.nanmin(means - ses)) - 0.05)
        ax.set_xlim(lo, min(1.0, float(np.nanmax(means + ses)) + 0.02))
        ax.legend(loc="lower right", fontsize=7)
        se = np.where(np.isfinite(gains[:, 1]), gains[:, 1], 0.0)
        bx.barh(y, gains[:, 0], xerr=se, color=colours, capsize=3)
    bx.axvline(0.0, color="0.3", ls="--", lw=1)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    folds = f"{result.k_folds}-fold" if result.repeats == 1 else f"{result.repeats}x{result.k_folds}-fold"
    ax.set_xlabel(f"validation accuracy, {folds} CV in the budget (mean +- SE)", fontsize=8)
    sign = "" if result.metric == "accuracy" else " reduction"
    bx.set_xlabel(f"paired gain vs real only: {result.metric}{sign} (+- SE)", fontsize=8)
    fig.suptitle(f"chosen: {result.recipe.name}\n{result.reason}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
