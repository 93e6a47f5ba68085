"""Learning curves -> data-to-target numbers with honest uncertainty.

An arm's curve is a (seeds x budgets) matrix of test accuracies; the x axis is labelled
images per class. The labelled images an arm needs for a target accuracy come from linear
interpolation on log n between the measured budgets (the first budget where the mean curve
crosses the target). Uncertainty comes from a paired bootstrap over seeds: each seed is a
different labelled subset and model init, and every arm is resampled with the same seeds so
that subset luck cancels in the ratio. Needs outside the measured range are censored, never
extrapolated: "<= smallest budget" or "> largest budget".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from synth.seeding import rng_for

BELOW = "<="  # target reached already at the smallest budget: the need is at most that
ABOVE = ">"  # target never reached: the need is beyond the largest budget
SINGLE = "single budget"  # the arm was measured at one budget only: no curve to read a need from
_TOL = 1e-9  # float rounding allowed when comparing a CI bound with 1.0x or a difference with 0


@dataclass(frozen=True)
class Need:
    n: float  # labelled images per class (inf when not reached)
    censor: str  # "", BELOW or ABOVE


def need_for_target(ns: Sequence[float], accs: Sequence[float], target: float) -> Need:
    """Labelled images per class at which the curve first reaches `target` (log-n interpolation)."""
    ns_a, acc = _valid(ns, accs)
    if len(ns_a) and acc[0] >= target:
        return Need(float(ns_a[0]), BELOW)
    i = _crossing(acc, target)
    if i is None:
        return Need(float("inf"), ABOVE)
    t = (target - acc[i]) / (acc[i + 1] - acc[i])
    logn = np.log(ns_a[i]) + t * (np.log(ns_a[i + 1]) - np.log(ns_a[i]))
    return Need(float(np.exp(logn)), "")


def _crossing(acc: np.ndarray, target: float) -> int | None:
    """Index i of the first segment [i, i + 1] the curve crosses `target` on; None if reached at once or never."""
    if len(acc) == 0 or acc[0] >= target:
        return None
    return next((i for i in range(len(acc) - 1) if acc[i] < target <= acc[i + 1]), None)


#: Budgets further apart than this ratio leave a crossing read off a long straight line on log n. On digits
#: real only's need read 27.1 images/class between n = 20 and 50 and 23.6 once n = 30 was measured (the curve
#: bends), a shift the seed bootstrap does not see; the report names such crossings.
WIDE_GAP = 2.0


def crossing_bracket(ns: Sequence[float], accs: Sequence[float], target: float) -> tuple[float, float] | None:
    """The measured budgets either side of the curve's first crossing of `target`; None when not interpolated."""
    ns_a, acc = _valid(ns, accs)
    i = _crossing(acc, target)
    return None if i is None else (float(ns_a[i]), float(ns_a[i + 1]))


def curve_need(ns: Sequence[float], accs: Sequence[float], target: float) -> Need:
    """need_for_target, except that a curve measured at one budget of several has no need to read (SINGLE)."""
    if int(np.isfinite(np.asarray(accs, float)).sum()) == 1 and len(ns) > 1:
        return Need(float("nan"), SINGLE)
    return need_for_target(ns, accs, target)


def interp_log(ns: Sequence[float], accs: Sequence[float], x: float) -> float:
    """Accuracy at x labelled images per class, interpolated on log n; nan outside the measured range."""
    ns_a, acc = _valid(ns, accs)
    if len(ns_a) == 0 or x < ns_a[0] - 1e-9 or x > ns_a[-1] + 1e-9:
        return float("nan")
    return float(np.interp(np.log(x), np.log(ns_a), acc))


def _valid(ns: Sequence[float], accs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    ns_a, acc = np.asarray(ns, float), np.asarray(accs, float)
    keep = np.isfinite(acc)
    order = np.argsort(ns_a[keep])
    return ns_a[keep][order], acc[keep][order]


def _mean_curve(matrix: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"), _quiet():
        return np.nanmean(matrix, axis=0)


def _boot_means(matrix: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(n_boot, budgets) mean curves of every resample at once (the report's hot loop; was one nanmean per call)."""
    return _mean_curve(np.moveaxis(matrix[idx], 1, 0))


class _quiet:
    """Silence numpy's 'mean of empty slice' warning: an all-nan column is a missing budget."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def resamples(n_seeds: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_seeds) seed indices drawn with replacement; row 0 is the identity (the point estimate)."""
    rng = rng_for(seed, 17)
    idx = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    idx[0] = np.arange(n_seeds)
    return idx


def paired(base: np.ndarray, arm: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Both curves restricted to the (seed, budget) cells the arm was measured on, and a note when that is not all.

    Why: the bootstrap pairs seeds across arms so that subset luck cancels. An arm measured on
    only some seeds (a costly arm, a run cut short) compared against a baseline averaged over all
    seeds would mix different labelled subsets. So the baseline is masked wherever the arm is
    missing (budgets the arm never ran stay as they are: they only bound the baseline's need),
    seeds with no arm cell drop out of the bootstrap, and the verdict says how many seeds remain.
    """
    measured = np.isfinite(arm).any(axis=0)
    gaps = ~np.isfinite(arm) & measured[None, :]
    if not gaps.any():
        return base, arm, ""
    rows = np.flatnonzero(np.isfinite(arm[:, measured]).any(axis=1))
    base = np.where(gaps, np.nan, base)[rows]
    note = "paired over the seeds measured at each budget" if len(rows) == len(arm) else \
        f"paired over {len(rows)} of {len(arm)} seeds"
    return base, arm[rows], note


def _with_note(word: str, note: str) -> str:
    return f"{word} ({note})" if note else word


def _ci(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval by order statistics (works with inf; nan dropped)."""
    v = np.sort(values[~np.isnan(values)])
    if len(v) == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo = v[int(np.floor(a * (len(v) - 1)))]
    hi = v[int(np.ceil((1 - a) * (len(v) - 1)))]
    return float(lo), float(hi)


@dataclass(frozen=True)
class Multiplier:
    """Baseline need / arm need, with a bootstrap CI and a plain-words verdict."""

    arm_need: Need
    base_need: Need
    value: float
    lo: float
    hi: float
    bound: str  # "", ">=" (lower bound), "<" (upper bound: the arm never reached the target) or "n/a"
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(base: float, arm: float, n_max: float, base_max: float) -> float:
    """base/arm, censored: an arm that never reaches the target needs more than its n_max (an upper
    bound on the ratio); a baseline that never reaches it needs more than base_max (a lower bound)."""
    if np.isinf(base) and np.isinf(arm):
        return float("nan")
    if np.isinf(arm):
        return float(base / n_max)
    if np.isinf(base):
        return float(base_max / arm)
    return float(base / arm)


def multiplier_at_target(
    ns: Sequence[float], base: np.ndarray, arm: np.ndarray, target: float,
    n_boot: int = 2000, level: float = 0.95, seed: int = 0,
) -> Multiplier:
    """How many times fewer labelled images the arm needs than the baseline to reach `target`."""
    base, arm, note = paired(base, arm)
    idx = resamples(base.shape[0], n_boot, seed)
    # An arm measured only up to some budget (e.g. a run cut short) is censored at *its* largest budget.
    arm_ns = np.asarray(ns, float)[np.isfinite(_mean_curve(arm))]
    if curve_need(ns, _mean_curve(arm), target).censor == SINGLE:
        # One budget (an expensive arm run at n=10 only): "not reached within its budgets" would read
        # like a finding about the arm; the honest number is its multiplier at that budget.
        return Multiplier(Need(float("nan"), SINGLE), need_for_target(ns, _mean_curve(base), target),
                          float("nan"), float("nan"), float("nan"), "n/a",
                          f"single budget (n={arm_ns[0]:g}): no curve to interpolate; see the multiplier at that budget")
    n_max = float(arm_ns.max()) if len(arm_ns) else float(np.nanmax(np.asarray(ns, float)))
    base_ns = np.asarray(ns, float)[np.isfinite(_mean_curve(base))]
    base_max = float(base_ns.max()) if len(base_ns) else float(np.nanmax(np.asarray(ns, float)))
    ratios = np.empty(len(idx))
    base_means, arm_means = _boot_means(base, idx), _boot_means(arm, idx)
    for b in range(len(idx)):
        nb = need_for_target(ns, base_means[b], target).n
        na = need_for_target(ns, arm_means[b], target).n
        ratios[b] = _ratio(nb, na, n_max, base_max)
    base_need = need_for_target(ns, _mean_curve(base), target)
    arm_need = need_for_target(ns, _mean_curve(arm), target)
    value = _ratio(base_need.n, arm_need.n, n_max, base_max)
    lo, hi = _ci(ratios, level) if base.shape[0] > 1 else (value, value)
    if np.isnan(value):
        bound = "n/a"
    elif arm_need.censor == ABOVE:
        bound = "<"
    elif arm_need.censor == BELOW or base_need.censor == ABOVE:
        bound = ">="
    else:
        bound = ""
    word = _with_note(verdict(value, lo, hi, base.shape[0], bound), note)
    return Multiplier(arm_need, base_need, value, lo, hi, bound, word)


def verdict(value: float, lo: float, hi: float, n_seeds: int, bound: str = "") -> str:
    """Say it plainly. A gain needs the whole CI above 1.0x."""
    if bound == "n/a" or np.isnan(value):
        return "undefined: neither reaches the target"
    if bound == "<":
        if value <= 1.0:
            return "worse: does not reach the target within the measured budgets"
        return f"inconclusive: not reached within its measured budgets (at most {value:.2f}x)"
    if n_seeds < 2:
        return f"{'gain' if value > 1 else 'no gain'}? single seed, no confidence interval"
    # A bound that equals 1.0 up to float rounding (ratios like 10/10 computed via exp/log) is 1.0.
    if lo > 1.0 + _TOL:
        return "gain"
    if hi < 1.0 - _TOL:
        return "worse"
    return "no gain: CI includes 1.0x"


def per_budget_multipliers(
    ns: Sequence[float], base: np.ndarray, arm: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> list[dict]:
    """At each budget n: labelled images the baseline needs to match the arm's accuracy at n, divided by n."""
    base, arm, note = paired(base, arm)
    idx = resamples(base.shape[0], n_boot, seed)
    base_means, arm_means = _boot_means(base, idx), _boot_means(arm, idx)
    out = []
    for k, n in enumerate(ns):
        vals = np.empty(len(idx))
        for b in range(len(idx)):
            a = arm_means[b, k]
            vals[b] = need_for_target(ns, base_means[b], a).n / n if np.isfinite(a) else np.nan
        acc = _mean_curve(arm)[k]
        point = need_for_target(ns, _mean_curve(base), acc) if np.isfinite(acc) else Need(float("nan"), "")
        value = point.n / n
        lo, hi = _ci(vals, level) if base.shape[0] > 1 else (value, value)
        # real-only reaching the arm's accuracy already at the smallest budget: at most this multiplier
        bound = {BELOW: "<=", ABOVE: ">="}.get(point.censor, "")
        out.append({"n": float(n), "value": value, "lo": lo, "hi": hi, "bound": bound,
                    "verdict": _with_note(verdict(value, lo, hi, base.shape[0]), note) if np.isfinite(value)
                    else "beyond the measured range"})
    return out


def halved_comparison(
    ns: Sequence[float], base: np.ndarray, arm: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> list[dict]:
    """Accuracy of the arm with half the labelled images vs the baseline with all of them, per budget.

    The arm's accuracy at n/2 is interpolated on log n when n/2 was not measured (flagged),
    and skipped when n/2 lies below the smallest budget.
    """
    base, arm, note = paired(base, arm)
    idx = resamples(base.shape[0], n_boot, seed)
    base_means, arm_means = _boot_means(base, idx), _boot_means(arm, idx)
    measured = set(np.round(np.asarray(ns, float), 6))
    out = []
    for k, n in enumerate(ns):
        half = n / 2
        if half < min(ns) - 1e-9:
            continue
        diffs = np.array([
            interp_log(ns, arm_means[b], half) - base_means[b, k] for b in range(len(idx))
        ])
        arm_half = interp_log(ns, _mean_curve(arm), half)
        base_full = float(_mean_curve(base)[k])
        if not (np.isfinite(arm_half) and np.isfinite(base_full)):
            continue  # not measured (e.g. the arm's run was cut short)
        diff = arm_half - base_full
        lo, hi = _ci(diffs, level) if base.shape[0] > 1 else (diff, diff)
        if base.shape[0] < 2:
            word = "single seed, no confidence interval"
        elif lo > _TOL:
            word = "half + synthetic beats all real"
        elif hi < -_TOL:
            word = "half + synthetic is worse than all real"
        else:
            word = "half + synthetic matches all real within noise"
        out.append({"n": float(n), "half": half, "interpolated": round(half, 6) not in measured,
                    "arm_half_acc": arm_half, "base_full_acc": base_full, "diff": diff, "lo": lo, "hi": hi,
                    "verdict": _with_note(word, note)})
    return out


def default_target(ns: Sequence[float], base: np.ndarray, margin: float) -> float:
    """Real-only mean accuracy at the largest measured budget minus `margin` (below the plateau)."""
    curve = _mean_curve(base)
    finite = np.flatnonzero(np.isfinite(curve))
    if len(finite) == 0:
        return float("nan")
    return float(curve[finite[np.argmax(np.asarray(ns, float)[finite])]] - margin)


def summarise(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over seeds per budget (nan where nothing was measured)."""
    with np.errstate(all="ignore"), _quiet():
        return np.nanmean(matrix, axis=0), np.nanstd(matrix, axis=0)


def band(matrix: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap CI of the mean curve per budget (for the CI bands of the learning-curve plot)."""
    idx = resamples(matrix.shape[0], n_boot, seed)
    means = _boot_means(matrix, idx)
    lo = np.array([_ci(means[:, k], level)[0] for k in range(matrix.shape[1])])
    hi = np.array([_ci(means[:, k], level)[1] for k in range(matrix.shape[1])])
    return lo, hi
