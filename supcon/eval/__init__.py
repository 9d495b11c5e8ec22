"""Evaluation of frozen encoders: kNN, calibration, corruption robustness, 2-D embeddings and the
gradient analysis. Pure functions over encoders, loaders, tensors and feature banks; nothing here
imports the training code.
"""

from supcon.eval.calibration import (
    CalibrationResult,
    expected_calibration_error,
    reliability_diagram,
)
from supcon.eval.corruptions import CORRUPTIONS, SEVERITIES, corrupt, corruption_names
from supcon.eval.embeddings import embed_2d, plot_embedding
from supcon.eval.gradients import (
    AnchorGradients,
    analytic_magnitudes,
    gradient_analysis,
    gradient_contributions,
    plot_gradient_magnitudes,
)
from supcon.eval.knn import extract_features, knn_predict, knn_top1
from supcon.eval.robustness import (
    compare_to_reference,
    corruption_errors,
    mce,
    relative_mce,
    severity_curve,
)

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "AnchorGradients",
    "CalibrationResult",
    "analytic_magnitudes",
    "compare_to_reference",
    "corrupt",
    "corruption_errors",
    "corruption_names",
    "embed_2d",
    "expected_calibration_error",
    "extract_features",
    "gradient_analysis",
    "gradient_contributions",
    "knn_predict",
    "knn_top1",
    "mce",
    "plot_embedding",
    "plot_gradient_magnitudes",
    "relative_mce",
    "reliability_diagram",
    "severity_curve",
]
