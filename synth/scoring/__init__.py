"""Domain-gap scoring and filtering of synthetic data (see docs/scoring.md).

features    offline extractors (trained SmallCNN, local safetensors nets) + feature cache
set_metrics FD/KID (torchmetrics), PRDC, alpha/beta/authenticity, C2ST, real-vs-real baselines
per_sample  realism, novelty (copies flagged), label consistency, combined gap score
filtering   threshold/quantile acceptance, generate-until-N-accepted
manifest    read a synth output dir, write scores + accepted/status back atomically
pipeline    score_images(): everything above for one synthetic set
report      report.json / report.md / histograms / best-worst grid
"""

from synth.scoring.features import (
    ClassifierExtractor,
    Extractor,
    FeatureCache,
    load_extractor,
    train_extractor,
)
from synth.scoring.filtering import accept_mask, generate_until
from synth.scoring.pipeline import ScoreResult, score_images

__all__ = [
    "ClassifierExtractor", "Extractor", "FeatureCache", "ScoreResult", "accept_mask", "generate_until",
    "load_extractor", "score_images", "train_extractor",
]
