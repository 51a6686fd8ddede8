"""Sample-quality metrics. The math is pure (arrays in, numbers out) and imports numpy/scipy only."""

from .discriminator import c2st, disc_metrics, roc_auc
from .fid import frechet_distance
from .inception_score import inception_score, softmax
from .kid import kernel_inception_distance
from .modes import mode_metrics
from .prdc import prdc
from .stats import StreamingStats, features_to_stats

__all__ = [
    "frechet_distance",
    "kernel_inception_distance",
    "inception_score",
    "softmax",
    "prdc",
    "mode_metrics",
    "disc_metrics",
    "roc_auc",
    "c2st",
    "StreamingStats",
    "features_to_stats",
]
