"""A batch sampler with an exact, seeded synthetic/real composition in every batch.

Why not `WeightedRandomSampler`: per-sample coin flips give batches whose synthetic share
wanders (a 64-batch at p=0.25 holds 9 to 23 synthetic images), and a tuned ratio is only
meaningful if it is what training actually saw. Here batch b of epoch e holds exactly

    k(e, b) = round((b + 1) * B * s_e) - round(b * B * s_e)

synthetic items (B = batch size, s_e = synthetic share of epoch e), so every batch has
floor or ceil of B * s_e and the epoch total is exact. A ratio r (synthetic:real) is the
share r / (1 + r); a probability p is the share itself.

Every index the sampler yields is a pure function of (seed, epoch, position): each pool
(real, synthetic; or each class when balancing) is an endless sequence of seeded
permutations that can be read at any position, so `set_epoch` jumps anywhere, results do
not depend on DataLoader workers, and reruns reproduce exactly. The keys it yields are
`(dataset_index, epoch, position)` triples; `MixedDataset` derives each item's online
augmentation from them, so no two draws in a run share a random stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from synth.errors import ConfigError, DataError
from synth.seeding import rng_for

_REAL, _SYN, _ORDER, _CLASSES = 21, 22, 23, 24
_WEIGHTED_BLOCK = 4096
SCHEDULES = ("constant", "linear", "cosine", "step")


@dataclass(frozen=True)
class Schedule:
    """Synthetic share over epochs: from the configured share to `end` over `epochs` epochs.

    `step` keeps the start share until `epochs`, then switches to `end` (e.g. synthetic
    pre-training followed by real-only fine-tuning).
    """

    kind: str = "constant"
    end: float = 0.0
    epochs: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ConfigError(f"mixer.schedule.kind must be one of {SCHEDULES}, got {self.kind!r}")
        if not 0.0 <= self.end <= 1.0:
            raise ConfigError(f"mixer.schedule.end is a synthetic share in [0, 1], got {self.end}")
        if self.kind != "constant" and (self.epochs is None or self.epochs <= 0):
            raise ConfigError(f"mixer.schedule.epochs must be > 0 for a {self.kind} schedule, got {self.epochs}")

    def share(self, start: float, epoch: int) -> float:
        if self.kind == "constant":
            return start
        t = min(epoch / self.epochs, 1.0)  # type: ignore[operator]
        if self.kind == "step":
            return start if epoch < self.epochs else self.end  # type: ignore[operator]
        w = t if self.kind == "linear" else 0.5 * (1.0 - math.cos(math.pi * t))
        return start + (self.end - start) * w


def synthetic_share(ratio: float | None = None, probability: float | None = None) -> float:
    """The synthetic share of a batch from a synthetic:real `ratio` or a `probability`."""
    if (ratio is None) == (probability is None):
        raise ConfigError(
            f"set exactly one of mixer.ratio (synthetic:real, >= 0) and mixer.probability (in [0, 1]); "
            f"got ratio={ratio}, probability={probability}"
        )
    if ratio is not None:
        if not (float(ratio) >= 0.0 and math.isfinite(float(ratio))):
            raise ConfigError(f"mixer.ratio (synthetic:real) must be a finite number >= 0, got {ratio}")
        return float(ratio) / (1.0 + float(ratio))
    if not 0.0 <= float(probability) <= 1.0:  # type: ignore[arg-type]
        raise ConfigError(f"mixer.probability (share of synthetic samples) must be in [0, 1], got {probability}")
    return float(probability)  # type: ignore[arg-type]


class _Pool:
    """An endless, seeded index sequence over `members`, readable at any position.

    Unweighted: consecutive seeded permutations (every member once per pass). Weighted:
    i.i.d. draws proportional to `weights`, in seeded blocks.
    """

    def __init__(self, members: np.ndarray, seed: int, stream: tuple[int, ...], weights: np.ndarray | None = None):
        self.members = members
        self.seed, self.stream = seed, stream
        if weights is not None and weights.sum() <= 0:
            raise DataError(f"all synthetic sample weights of a class are 0 ({len(members)} samples); check mixer.weight_column")
        self.p = None if weights is None else weights / weights.sum()
        self._cache: dict[int, np.ndarray] = {}

    def _block(self, b: int) -> np.ndarray:
        if b not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            rng = rng_for(self.seed, *self.stream, b)
            n = len(self.members)
            self._cache[b] = rng.permutation(n) if self.p is None else rng.choice(n, _WEIGHTED_BLOCK, p=self.p)
        return self._cache[b]

    def at(self, positions: np.ndarray) -> np.ndarray:
        size = len(self.members) if self.p is None else _WEIGHTED_BLOCK
        blocks, offsets = np.divmod(positions, size)
        out = np.empty(len(positions), dtype=np.int64)
        for b in np.unique(blocks):
            sel = blocks == b
            out[sel] = self._block(int(b))[offsets[sel]]
        return self.members[out]


class _Stream:
    """Indices of one source (real or synthetic), class-balanced or not, by global position."""

    def __init__(self, labels: np.ndarray, seed: int, stream: int, balance: bool, weights: np.ndarray | None):
        self.balance = balance
        if not balance:
            self.pools = [_Pool(np.arange(len(labels)), seed, (stream,), weights)]
            return
        self.classes = np.unique(labels)
        self.class_seq = _Pool(self.classes, seed, (stream, _CLASSES))
        self.pools = [
            _Pool(np.flatnonzero(labels == c), seed, (stream, int(c)), None if weights is None else weights[labels == c])
            for c in self.classes
        ]

    def take(self, start: int, count: int) -> np.ndarray:
        positions = np.arange(start, start + count, dtype=np.int64)
        if not self.balance:
            return self.pools[0].at(positions)
        cls = self.class_seq.at(positions)  # class of each draw: every class once per K draws
        k = len(self.classes)
        out = np.empty(count, dtype=np.int64)
        for j, c in enumerate(self.classes):
            sel = np.flatnonzero(cls == c)
            if len(sel) == 0:
                continue
            before = self._count_before(j, c, start, k)
            out[sel] = self.pools[j].at(before + np.arange(len(sel), dtype=np.int64))
        return out

    def _count_before(self, j: int, c: int, start: int, k: int) -> int:
        """How often class c was drawn at positions [0, start): once per full pass, plus the partial pass."""
        full, rest = divmod(start, k)
        partial = self.class_seq.at(np.arange(full * k, full * k + rest, dtype=np.int64))
        return full + int((partial == c).sum())


class KeyBatch(Sequence):
    """One batch of `(dataset_index, epoch, position)` keys, held as arrays.

    A sequence of tuples to whoever iterates it, but `MixedDataset` reads the arrays
    directly: building and pickling 64 tuples per batch cost more than the whole fetch.
    """

    __slots__ = ("index", "epoch", "position")

    def __init__(self, index: np.ndarray, epoch: int, position: np.ndarray):
        self.index, self.epoch, self.position = index, int(epoch), position

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return int(self.index[i]), self.epoch, int(self.position[i])

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"KeyBatch(epoch={self.epoch}, index={self.index.tolist()})"


class MixedBatchSampler:
    """Batches of `(dataset_index, epoch, position)` keys for a `MixedDataset`.

    Dataset indices [0, n_real) are real items, [n_real, n_real + n_synthetic) synthetic.

    Args:
        real_labels / synthetic_labels: labels of the two sources (synthetic may be empty
            only when the share is 0).
        batch_size: items per batch.
        ratio / probability: the synthetic share, as synthetic:real (1.0 = half) or as a
            probability; set exactly one.
        balance_classes: draw classes equally often within each source.
        schedule: synthetic share over epochs (e.g. decaying to zero).
        synthetic_weights: draw synthetic items proportionally to these (e.g. a score).
        batches_per_epoch: default ceil(n_real / batch_size), the length of a real-only
            epoch, so mixed and real-only runs compare at equal steps.
        seed: everything drawn derives from it.

    Iterating yields one epoch and advances to the next (`set_epoch` jumps).
    """

    def __init__(
        self,
        real_labels: np.ndarray,
        synthetic_labels: np.ndarray | None,
        batch_size: int,
        *,
        ratio: float | None = None,
        probability: float | None = None,
        balance_classes: bool = False,
        schedule: Schedule | None = None,
        synthetic_weights: np.ndarray | None = None,
        batches_per_epoch: int | None = None,
        seed: int = 0,
    ) -> None:
        if ratio is None and probability is None:
            ratio = 0.0
        self.share = synthetic_share(ratio, probability)
        self.schedule = schedule or Schedule()
        real_labels = np.asarray(real_labels, dtype=np.int64)
        syn_labels = np.zeros(0, np.int64) if synthetic_labels is None else np.asarray(synthetic_labels, np.int64)
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {batch_size}")
        if batches_per_epoch is not None and batches_per_epoch <= 0:
            raise ConfigError(f"mixer.batches_per_epoch must be > 0, got {batches_per_epoch}")
        uses_synthetic = self.share > 0 or (self.schedule.kind != "constant" and self.schedule.end > 0)
        if uses_synthetic and len(syn_labels) == 0:
            raise DataError(
                f"the mixer asks for a synthetic share of {self.share:.3g} but the synthetic source is empty; "
                "point mixer at a non-empty synthetic set, loosen its filter, or set mixer.ratio=0"
            )
        uses_real = self.share < 1 or (self.schedule.kind != "constant" and self.schedule.end < 1)
        if uses_real and len(real_labels) == 0:
            raise DataError("the mixer needs real images but the real source is empty")
        for name, labels in (("real", real_labels), ("synthetic", syn_labels)):
            if len(labels) and labels.min() < 0:
                raise DataError(f"{name} images include unlabelled ones (label -1); the mixer needs labelled images")
        weights = self._check_weights(synthetic_weights, len(syn_labels))
        self.n_real, self.batch_size, self.seed, self.epoch = len(real_labels), int(batch_size), int(seed), 0
        self.batches_per_epoch = batches_per_epoch or max(1, -(-len(real_labels) // self.batch_size))
        self._real = _Stream(real_labels, self.seed, _REAL, balance_classes, None) if len(real_labels) else None
        self._syn = _Stream(syn_labels, self.seed, _SYN, balance_classes, weights) if len(syn_labels) else None

    @staticmethod
    def _check_weights(weights: np.ndarray | None, n: int) -> np.ndarray | None:
        if weights is None:
            return None
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise DataError(
                f"synthetic sample weights must be {n} finite values >= 0, not all zero (got shape {w.shape}); "
                "check mixer.weight_column for missing scores"
            )
        return w

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def epoch_share(self, epoch: int) -> float:
        return self.schedule.share(self.share, epoch)

    def synthetic_counts(self, epoch: int) -> np.ndarray:
        """Exact synthetic items per batch in `epoch` (cumulative rounding, see module doc)."""
        target = np.arange(self.batches_per_epoch + 1) * self.batch_size * self.epoch_share(epoch)
        return np.diff(np.floor(target + 0.5).astype(np.int64))

    def _epoch_total(self, epoch: int) -> int:
        return int(math.floor(self.batches_per_epoch * self.batch_size * self.epoch_share(epoch) + 0.5))

    def _offsets(self, epoch: int) -> tuple[int, int]:
        """Synthetic and real draws made before `epoch` (positions in the two streams).

        The share is constant after the schedule's last epoch, so the sum is O(schedule length).
        """
        varying = 0 if self.schedule.kind == "constant" else min(epoch, int(self.schedule.epochs) + 1)  # type: ignore[arg-type]
        syn = sum(self._epoch_total(e) for e in range(varying)) + (epoch - varying) * self._epoch_total(epoch)
        return syn, epoch * self.batches_per_epoch * self.batch_size - syn

    def __iter__(self) -> Iterator[KeyBatch]:
        epoch = self.epoch
        self.epoch += 1
        yield from self.batches(epoch)

    def batches(self, epoch: int) -> Iterator[KeyBatch]:
        """The batches of `epoch`, without touching the sampler's epoch counter."""
        counts = self.synthetic_counts(epoch)
        syn_pos, real_pos = self._offsets(epoch)
        syn = self._syn.take(syn_pos, int(counts.sum())) + self.n_real if self._syn is not None else np.zeros(0, np.int64)
        n_real_total = self.batches_per_epoch * self.batch_size - int(counts.sum())
        real = self._real.take(real_pos, n_real_total) if self._real is not None else np.zeros(0, np.int64)
        # Row b: its real draws then its synthetic ones (row-major order = stream order), then shuffled.
        synthetic_slot = np.arange(self.batch_size)[None, :] >= (self.batch_size - counts)[:, None]
        table = np.empty(synthetic_slot.shape, dtype=np.int64)
        table[~synthetic_slot], table[synthetic_slot] = real, syn
        table = rng_for(self.seed, _ORDER, epoch).permuted(table, axis=1)
        positions = np.arange(table.size, dtype=np.int64).reshape(table.shape)
        for b in range(len(table)):
            yield KeyBatch(table[b], epoch, positions[b])
