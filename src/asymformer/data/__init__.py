"""Datasets (real layouts and synthetic rooms), transforms, class names and colours, and image I/O."""

from asymformer.deprecation import moved_names

from .base import RGBDDataset
from .classes import NYU40_CLASSES, NYU40_COLORS, SUN37_CLASSES, SUN37_COLORS
from .datasets import open_dataset
from .synthetic import SyntheticRooms, write_synthetic_dataset
from .transforms import NORMALIZATIONS, EvalTransform, TrainTransform, normalize

__all__ = ["EvalTransform", "NORMALIZATIONS", "NYU40_CLASSES", "NYU40_COLORS", "RGBDDataset", "SUN37_CLASSES",
           "SUN37_COLORS", "SyntheticRooms", "TrainTransform", "normalize", "open_dataset",
           "write_synthetic_dataset"]

__getattr__ = moved_names(__name__, {"colorize": "asymformer.viz:colorize"})  # 0.1's name, removed in 0.3
