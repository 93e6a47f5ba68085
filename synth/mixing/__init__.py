"""Mix synthetic with real data inside any PyTorch training loop (see docs/mixing.md).

- `load_synthetic`: a synth output directory or an ImageFolder -> `SyntheticData` (+ scores).
- `MixedDataset`: real + synthetic items `(image, label, is_synthetic)`, online augmentation.
- `MixedBatchSampler`: exact seeded synthetic share per batch, class balance, schedules, weights.
- `tune_mix`: choose ratio / filter quantile / online augmentation by k-fold CV inside the budget.
"""

from synth.mixing.dataset import MixedDataset
from synth.mixing.sampler import MixedBatchSampler, Schedule, synthetic_share
from synth.mixing.sources import SyntheticData, from_imageset, load_synthetic

__all__ = [
    "MixedBatchSampler", "MixedDataset", "Schedule", "SyntheticData", "from_imageset", "load_synthetic",
    "synthetic_share",
]
