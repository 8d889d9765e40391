"""Sample-quality metrics: InceptionV3 features, KID and FID."""

from .distances import fid_from_features, kid_per_batch, kid_subsets, polynomial_mmd
from .inception import InceptionError, InceptionFeatures, default_weights_path, load_inception

__all__ = ["InceptionError", "InceptionFeatures", "default_weights_path", "fid_from_features", "kid_per_batch",
           "kid_subsets", "load_inception", "polynomial_mmd"]
