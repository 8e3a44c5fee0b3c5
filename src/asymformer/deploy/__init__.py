"""Inference and deployment: Segmenter, predict on files, ONNX export, backend selection, benchmarks.

ONNX and ONNX Runtime are imported inside the functions that need them (the `onnx` extra).
"""

from asymformer.deprecation import moved_names

from .accel.export import check_onnx, export_onnx
from .benchmark import run_benchmark
from .optimize import InferenceFn, optimize_for_inference
from .predict import pair_files, predict_files
from .segmenter import Segmentation, Segmenter

__all__ = ["InferenceFn", "Segmentation", "Segmenter", "check_onnx", "export_onnx", "optimize_for_inference",
           "pair_files", "predict_files", "run_benchmark"]

# Names that moved out in 0.2, served with a DeprecationWarning until 0.3. The streaming runtime sits above
# deploy/, so it is imported only when one of its names is asked for.
_moved_name = moved_names(__name__, {
    **{name: f"asymformer.outputs:{name}" for name in ("Intrinsics", "SemanticPoints", "back_project", "write_ply")},
    **{name: f"asymformer.stream:{name}" for name in ("StreamResult", "StreamRunner")},
})
# Modules that moved out keep their old paths as stub files until 0.3. `import asymformer.deploy` used to
# load them, so reading one as an attribute of this package imports its stub (which gives the notice).
_MOVED_MODULES = ("stream", "stream_stages", "points", "rerun_view", "cuda_backends", "tensorrt",
                  "openvino_backend", "lowp", "quantize", "export")


def __getattr__(name: str):
    if name in _MOVED_MODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    return _moved_name(name)
