"""Sample-quality metrics: InceptionV3 features, KID and FID."""

from .distances import fid_from_features, kid_per_batch, kid_subsets, polynomial_mmd
from .inception import InceptionError, InceptionFeatures, default_weights_path, load_inception
from .sample_size import MIN_FID_IMAGES, MIN_KID_IMAGES, kid_subset_size, kid_text, sample_size_warnings

__all__ = ["InceptionError", "InceptionFeatures", "MIN_FID_IMAGES", "MIN_KID_IMAGES", "default_weights_path",
           "fid_from_features", "kid_per_batch", "kid_subset_size", "kid_subsets", "kid_text", "load_inception",
           "polynomial_mmd", "sample_size_warnings"]
