"""Evaluating generated images against real ones: reference sets and their cached features
(:mod:`~ddim.evaluation.references`), resumable generation (:mod:`~ddim.evaluation.generation`), and the two
protocols, the Keras example's per-epoch KID and the standard KID/FID (:mod:`~ddim.evaluation.protocols`)."""

from .generation import generated_features
from .protocols import EvaluationSettings, evaluate, evaluate_images, evaluate_per_class, feature_metrics, keras_kid
from .references import (REFERENCES, Progress, cache_folder, class_subset, conditioning_labels, generation_labels,
                         partial_folder, real_images, reference_features, reference_labels, reference_splits)

__all__ = ["EvaluationSettings", "Progress", "REFERENCES", "cache_folder", "class_subset", "conditioning_labels",
           "evaluate", "evaluate_images", "evaluate_per_class", "feature_metrics", "generated_features",
           "generation_labels", "keras_kid", "partial_folder", "real_images", "reference_features", "reference_labels",
           "reference_splits"]
