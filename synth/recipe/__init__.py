"""Per-dataset recipe search: which levers help *this* dataset inside its label budget.

- `search_recipe(labelled, unlabelled, budget=, seed=, k_folds=) -> RecipeResult`
- `RecipeResult.train_final(labelled, unlabelled, seed, restarts=)` -> the classifier the recipe prescribes
- `write_report(result, out_dir)` -> recipe.yaml (rerunnable), recipe.json (CV evidence), recipe.png
See docs/recipe.md.
"""

from synth.recipe.evidence import Trial
from synth.recipe.policy import AugPolicy, preset, rand_policy, sample_policies
from synth.recipe.recipe import Recipe, train_with
from synth.recipe.report import load_recipe, load_restarts, write_report
from synth.recipe.result import RecipeResult, SearchBudget, SearchSpace
from synth.recipe.search import evaluate_recipes, search_recipe

__all__ = [
    "AugPolicy", "Recipe", "RecipeResult", "SearchBudget", "SearchSpace", "Trial", "evaluate_recipes", "load_recipe",
    "load_restarts", "preset", "rand_policy", "sample_policies", "search_recipe", "train_with", "write_report",
]
