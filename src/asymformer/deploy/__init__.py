"""Inference and deployment: Segmenter, the streaming runtime, predict on files, ONNX export, backend selection,
benchmarks.

ONNX and ONNX Runtime are imported inside the functions that need them (the `onnx` extra).
"""

from .benchmark import run_benchmark
from .export import check_onnx, export_onnx
from .optimize import InferenceFn, optimize_for_inference
from .points import Intrinsics, SemanticPoints, back_project, write_ply
from .predict import pair_files, predict_files
from .segmenter import Segmentation, Segmenter
from .stream import StreamResult, StreamRunner

__all__ = ["InferenceFn", "Intrinsics", "Segmentation", "Segmenter", "SemanticPoints", "back_project", "check_onnx",
           "export_onnx", "optimize_for_inference", "pair_files", "predict_files", "run_benchmark", "write_ply",
           "StreamResult", "StreamRunner"]
