"""Data: find the images, split them, preprocess and cache them, batch them on the device."""

from .dataset import DataError, ImageSplits, load_splits, run_splits
from .errors import DataWarning
from .loader import DeviceImages, TrainBatches

__all__ = ["DataError", "DataWarning", "DeviceImages", "ImageSplits", "TrainBatches", "load_splits", "run_splits"]
