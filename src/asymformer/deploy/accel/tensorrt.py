"""TensorRT FP16 through ONNX Runtime's TensorRT execution provider, checked to really be TensorRT.

What can go wrong and what this module does about it:
- ONNX Runtime silently drops a provider it cannot load (no libnvinfer, version mismatch) and
  runs on the plain CUDA provider. We ask the session which providers it really uses and report
  the backend as unavailable, never as "TensorRT", when TensorRT is not first.
- Engines take minutes to build. The ONNX file, the engine cache and the timing cache live in
  one stable folder keyed by a hash of the weights, input shape, precision and library versions
  (`$ASYMFORMER_CACHE`, default ~/.cache/asymformer/tensorrt), so the second run loads the
  engine instead of rebuilding it, and nothing is left behind in the temp folder.
- Timing must be the engine's: inputs and logits stay on the GPU through I/O binding, on the
  caller's CUDA stream, instead of a host round trip of 49 MB of logits per call.
- LayerNorm stays in FP32 (`trt_layer_norm_fp32_fallback`), as the authors' own TensorRT
  notebook keeps normalisation layers in FP32; LAFS is written in an FP16-safe form in the model.
Native library notices are sent to stderr so JSON on stdout stays valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..common import BackendUnavailable, stdout_to_stderr
from .cuda_backends import need_cuda
from .export import export_onnx

TRT = "TensorrtExecutionProvider"


def cache_root() -> Path:
    root = os.environ.get("ASYMFORMER_CACHE") or Path.home() / ".cache" / "asymformer"
    return Path(root) / "tensorrt"


def cache_key(model: torch.nn.Module, shapes, precision: str, versions: dict) -> str:
    """Hash of everything an engine depends on: weights, input shapes, precision, versions."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-dim too
    h.update(json.dumps({"shapes": [list(s) for s in shapes], "precision": precision, **versions},
                        sort_keys=True).encode())
    return h.hexdigest()[:24]


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("onnxruntime-gpu with TensorRT is not installed "
                                 "(pip install onnxruntime-gpu tensorrt)") from None
    if TRT not in ort.get_available_providers():
        raise BackendUnavailable(f"onnxruntime {ort.__version__} has no {TRT} (providers: "
                                 f"{ort.get_available_providers()}); install onnxruntime-gpu and TensorRT")
    return ort


def _onnx_in_cache(model, rgb, depth, folder: Path) -> Path:
    path = folder / "model.onnx"
    if not path.exists():
        try:
            export_onnx(model, path, height=rgb.shape[-2], width=rgb.shape[-1], batch=rgb.shape[0], check=False)
        except (ValueError, ImportError) as exc:
            raise BackendUnavailable(f"ONNX export for TensorRT failed: {exc}") from None
    return path


def _session(ort, path: Path, dev: torch.device, folder: Path, fp16: bool):
    stream = torch.cuda.current_stream(dev).cuda_stream
    trt_opts = {"device_id": dev.index, "trt_fp16_enable": fp16, "trt_layer_norm_fp32_fallback": True,
                "trt_engine_cache_enable": True, "trt_engine_cache_path": str(folder),
                "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_root()),
                "has_user_compute_stream": True, "user_compute_stream": str(stream)}
    cuda_opts = {"device_id": dev.index, "has_user_compute_stream": True, "user_compute_stream": str(stream)}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: provider notices would otherwise flood the output
    with stdout_to_stderr():
        sess = ort.InferenceSession(str(path), opts, providers=[(TRT, trt_opts), ("CUDAExecutionProvider", cuda_opts)])
    used = list(sess.get_providers())
    if not used or used[0] != TRT:
        raise BackendUnavailable(f"onnxruntime did not load TensorRT (session providers: {used}); it would "
                                 f"run on the plain CUDA provider. Check that the TensorRT libraries match "
                                 f"onnxruntime-gpu {ort.__version__}")
    return sess, used


def tensorrt(model, rgb, depth, device=None, fp16: bool = True):
    """Build (or load from the cache) a TensorRT engine; returns `(fn, info)` like every backend."""
    dev = need_cuda(device)
    ort = _import_ort()
    precision = "fp16" if fp16 else "fp32"
    versions = {"onnxruntime": ort.__version__, "torch": torch.__version__,
                "gpu": torch.cuda.get_device_name(dev)}
    key = cache_key(model, [tuple(rgb.shape), tuple(depth.shape)], precision, versions)
    folder = cache_root() / key
    folder.mkdir(parents=True, exist_ok=True)
    path = _onnx_in_cache(model, rgb, depth, folder)  # export_onnx folds its own copy
    sess, used = _session(ort, path, dev, folder, fp16)
    out_shape = (rgb.shape[0], model.num_classes, rgb.shape[2], rgb.shape[3])
    run = _bound_runner(sess, dev, out_shape)
    with stdout_to_stderr():
        run(rgb, depth)  # builds or loads the engine now, so timing excludes it
    info = {"device": str(dev), "dtype": "float16" if fp16 else "float32", "engine": "onnxruntime TensorRT EP",
            "providers": used, "cache": str(folder), "io_binding": True, "layer_norm": "float32"}
    return run, info


def _bound_runner(sess, dev: torch.device, out_shape):
    """Run the session on device tensors through I/O binding (no host copies)."""
    binding = sess.io_binding()
    out = torch.empty(out_shape, device=dev, dtype=torch.float32)

    def bind(name, t):
        binding.bind_input(name, "cuda", dev.index, np.float32, tuple(t.shape), t.data_ptr())

    def run(r, d):
        r = r.to(dev, torch.float32).contiguous()
        d = d.to(dev, torch.float32).contiguous()
        bind("rgb", r)
        bind("depth", d)
        binding.bind_output("logits", "cuda", dev.index, np.float32, out_shape, out.data_ptr())
        sess.run_with_iobinding(binding)
        return out.clone()  # the bound buffer is reused by the next call
    return run
