"""Datasets (real layouts and synthetic rooms), transforms, class palettes and image I/O.

Exports resolve lazily, so `import asymformer.data` is cheap and never imports torch-heavy
or optional modules that a caller does not use.
"""

_EXPORTS = {
    "open_dataset": "asymformer.data.datasets",
    "RGBDDataset": "asymformer.data.base",
    "SyntheticRooms": "asymformer.data.synthetic",
    "write_synthetic_dataset": "asymformer.data.synthetic",
    "TrainTransform": "asymformer.data.transforms",
    "EvalTransform": "asymformer.data.transforms",
    "NORMALIZATIONS": "asymformer.data.transforms",
    "normalize": "asymformer.data.transforms",
    "colorize": "asymformer.data.classes",
    "NYU40_CLASSES": "asymformer.data.classes",
    "NYU40_COLORS": "asymformer.data.classes",
    "SUN37_CLASSES": "asymformer.data.classes",
    "SUN37_COLORS": "asymformer.data.classes",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'asymformer.data' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
