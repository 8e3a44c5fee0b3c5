"""Inference and deployment: Segmenter, predict on files, ONNX export, backend selection, benchmarks.

Names resolve lazily so `import asymformer.deploy` does not pull ONNX or the model code.
"""

_EXPORTS = {
    "Segmenter": "asymformer.deploy.segmenter",
    "Segmentation": "asymformer.deploy.segmenter",
    "optimize_for_inference": "asymformer.deploy.optimize",
    "InferenceFn": "asymformer.deploy.optimize",
    "export_onnx": "asymformer.deploy.export",
    "check_onnx": "asymformer.deploy.export",
    "run_benchmark": "asymformer.deploy.benchmark",
    "predict_files": "asymformer.deploy.predict",
    "pair_files": "asymformer.deploy.predict",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'asymformer.deploy' has no attribute {name!r}")
