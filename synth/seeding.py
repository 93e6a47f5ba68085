"""Per-sample seeds, derived without global RNG state.

Each synthetic sample's randomness comes from `sample_seeds(seed, index)`: a pure function
of the run's global seed and the sample's global index. That is what makes generation
deterministic, resumable (a chunk regenerated after a kill gives the same bytes) and
shardable (any split of the indices across processes unions to the unsharded output).
"""

from __future__ import annotations

import numpy as np

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a fast, well-mixed, platform-independent hash of uint64."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def sample_seeds(seed: int, indices: np.ndarray | int) -> np.ndarray:
    """Return one 63-bit seed per global sample index (int64, non-negative)."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    idx = np.atleast_1d(np.asarray(indices, dtype=np.uint64))
    base = _splitmix64(np.array([seed], dtype=np.uint64))
    with np.errstate(over="ignore"):
        mixed = _splitmix64((base * np.uint64(0x100000001B3)) ^ idx)
    return (mixed >> np.uint64(1)).astype(np.int64)


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """A numpy Generator for a named sub-stream, e.g. rng_for(seed, SPLIT_STREAM)."""
    return np.random.default_rng([int(seed), *[int(s) for s in stream]])
