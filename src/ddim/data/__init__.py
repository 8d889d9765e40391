"""Data: find the images, split them, preprocess and cache them, batch them on the device."""

from .dataset import DataError, ImageSplits, load_splits
from .loader import DeviceImages, TrainBatches

__all__ = ["DataError", "DeviceImages", "ImageSplits", "TrainBatches", "load_splits"]
