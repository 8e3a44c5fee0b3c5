"""Inference and deployment: Segmenter, the streaming runtime, predict on files, ONNX export, backend selection,
benchmarks.

ONNX and ONNX Runtime are imported inside the functions that need them (the `onnx` extra).
"""

from asymformer.deprecation import moved_names

from .benchmark import run_benchmark
from .export import check_onnx, export_onnx
from .optimize import InferenceFn, optimize_for_inference
from .predict import pair_files, predict_files
from .segmenter import Segmentation, Segmenter
from .stream import StreamResult, StreamRunner

__all__ = ["InferenceFn", "Segmentation", "Segmenter", "check_onnx", "export_onnx", "optimize_for_inference",
           "pair_files", "predict_files", "run_benchmark", "StreamResult", "StreamRunner"]

# 0.2's names that moved to asymformer.outputs (removed in 0.3)
__getattr__ = moved_names(__name__, {name: f"asymformer.outputs:{name}"
                                     for name in ("Intrinsics", "SemanticPoints", "back_project", "write_ply")})
