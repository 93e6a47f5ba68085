"""What each benchmark arm may see: budgets, seeds, and the two data protocols.

The harness, not the arm, decides what data an arm gets. Every arm receives an explicit
`ArmData(labelled, unlabelled_or_None)`; the test set is never in it. After the arm ran,
every real id its components (generators, encoders, tuners) report having seen is checked
against what the protocol allows, and the check is recorded in the report. A violation is
an error, not a footnote: a benchmark that leaks is worse than none.

- strict: components see only the arm's labelled images.
- unlabelled_pool: the rest of the training pool is also available, without labels; only
  labelled images count as data used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synth.data.imageset import ImageSet
from synth.data.splits import Splits
from synth.errors import ConfigError, SynthError

STRICT = "strict"
POOL = "unlabelled_pool"
PROTOCOLS = (STRICT, POOL)
ALL = "all"


class ProtocolViolation(SynthError):
    """An arm's component saw a real image its protocol does not allow."""


@dataclass(frozen=True)
class ArmData:
    """Everything an arm may use: labelled images and (unlabelled_pool only) the unlabelled pool."""

    labelled: ImageSet
    unlabelled: ImageSet | None
    protocol: str

    def allowed_ids(self) -> set[str]:
        ids = set(map(str, self.labelled.ids))
        if self.unlabelled is not None:
            ids |= set(map(str, self.unlabelled.ids))
        return ids

    def fingerprint(self) -> str:
        """Hash of the ids (and labels) the arm gets: part of every cache key."""
        h = hashlib.sha256(self.protocol.encode())
        h.update("\n".join(map(str, self.labelled.ids)).encode())
        h.update(self.labelled.labels.tobytes())
        if self.unlabelled is not None:
            h.update(b"|unlabelled|")
            h.update("\n".join(map(str, self.unlabelled.ids)).encode())
        return h.hexdigest()[:16]


class LabelOracle:
    """A simulated annotator for arms that choose which pool images to label (active learning).

    Only under the unlabelled_pool protocol, and only for ids in the arm's unlabelled pool.
    Every query is recorded; each queried image counts as one more labelled image used.
    """

    def __init__(self, data: ArmData, pool: ImageSet) -> None:
        allowed = set() if data.unlabelled is None else set(map(str, data.unlabelled.ids))
        self._labels = {str(i): int(lab) for i, lab in zip(pool.ids, pool.labels, strict=True) if str(i) in allowed}
        self.queried: list[str] = []

    def __call__(self, ids: Iterable[str]) -> np.ndarray:
        ids = [str(i) for i in ids]
        bad = [i for i in ids if i not in self._labels]
        if bad:
            raise ProtocolViolation(
                f"label oracle asked for {len(bad)} id(s) outside the arm's unlabelled pool (e.g. {bad[:3]})"
            )
        new = [i for i in ids if i not in set(self.queried)]
        self.queried.extend(dict.fromkeys(new))
        return np.asarray([self._labels[i] for i in ids], dtype=np.int64)


def arm_data(splits: Splits, protocol: str) -> ArmData:
    """The data an arm gets under `protocol`: never the test set, never pool labels."""
    check_protocol(protocol)
    if protocol == STRICT or len(splits.unlabelled) == 0:
        return ArmData(splits.labelled, None, protocol)
    unl = splits.unlabelled
    if (unl.labels != -1).any():  # defensive: the pool must arrive without labels
        unl = unl.without_labels()
    return ArmData(splits.labelled, unl, protocol)


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown bench protocol {protocol!r}; use one of {list(PROTOCOLS)} in bench.protocols")
    return protocol


def check_seen(arm: str, data: ArmData, seen: Mapping[str, Iterable[str]], test_ids: set[str]) -> dict[str, Any]:
    """Check every component's seen ids against the protocol; return the record for the report.

    Raises ProtocolViolation naming the arm, the component and example ids when a component
    saw an image outside `data` (including any test image).
    """
    allowed = data.allowed_ids()
    labelled = set(map(str, data.labelled.ids))
    record: dict[str, Any] = {"protocol": data.protocol, "allowed": len(allowed), "components": {}}
    for component, ids in seen.items():
        ids = set(map(str, ids))
        bad = sorted(ids - allowed)
        if bad:
            leaked_test = sorted(set(bad) & test_ids)
            raise ProtocolViolation(
                f"arm {arm!r}: component {component!r} saw {len(bad)} real image(s) the {data.protocol} protocol "
                f"does not allow (e.g. {bad[:3]}; {len(leaked_test)} of them test images). Fit it only on the "
                "ArmData the harness passes in"
            )
        record["components"][component] = {
            "seen": len(ids), "labelled_seen": len(ids & labelled), "unlabelled_seen": len(ids - labelled),
        }
    record["ok"] = True
    return record


# --------------------------------------------------------------------------- budgets
def parse_budgets(values: Sequence[Any]) -> list[int | str]:
    """Budgets as labelled images per class (ints) or "all"; sorted, "all" last."""
    if not values:
        raise ConfigError("bench.budgets is empty; give labelled images per class, e.g. [2, 5, 10, 20, 50, all]")
    out: list[int | str] = []
    for v in values:
        if isinstance(v, str) and v.lower() == ALL:
            out.append(ALL)
            continue
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ConfigError(f"bench.budgets entry {v!r} is neither a positive integer nor 'all'") from None
        if n <= 0 or n != float(v):
            raise ConfigError(f"bench.budgets entry {v!r} must be a positive integer (labelled images per class)")
        out.append(n)
    ints = sorted({b for b in out if b != ALL})
    return [*ints, *([ALL] if ALL in out else [])]


def parse_seeds(values: Sequence[Any]) -> list[int]:
    seeds = [int(s) for s in values]
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"bench.seeds must be distinct non-negative integers, got {list(values)}")
    return seeds


def budget_key(budget: int | str) -> str:
    return f"n{budget}" if budget != ALL else ALL


def per_class(labelled: ImageSet) -> float:
    """The x-axis value of a budget: labelled images per class actually used."""
    return len(labelled) / labelled.n_classes


def split_for(source, budget: int | str, seed: int) -> Splits:
    """Splits for a budget; `all` labels the whole pool (the seed then only changes model init)."""
    return source.splits(n_per_class=None if budget == ALL else int(budget), seed=seed)

