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


def per_seed_uniforms(seeds: np.ndarray, n: int) -> np.ndarray:
    """(len(seeds), n) float32 uniforms in (0, 1); row j is a pure function of seeds[j].

    Counter-based (a hash of (seed, k)), so a whole batch is drawn in one vectorised step
    instead of seeding one generator per sample, and a row never depends on which other
    seeds share the batch. 24 random bits per value: exact in float32.
    """
    seeds = np.asarray(seeds, dtype=np.int64).astype(np.uint64)[:, None]
    counters = np.arange(n, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        bits = _splitmix64(_splitmix64(seeds) ^ (counters * np.uint64(0xD1B54A32D192ED03)))
    return ((bits >> np.uint64(40)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-24)


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """A numpy Generator for a named sub-stream, e.g. rng_for(seed, SPLIT_STREAM)."""
    return np.random.default_rng([int(seed), *[int(s) for s in stream]])
