"""Inference backends: each turns a model into a `(rgb, depth) -> logits` callable or says why not.

`benchmark` measures them all, `optimize_for_inference` picks the fastest exact one. Every
builder raises `BackendUnavailable(reason)` instead of failing, so a missing GPU or package
becomes one "skipped: reason" line in the benchmark JSON.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings

import torch

CPU_BACKENDS = ("eager", "fused", "channels_last", "jit", "compile", "onnxruntime")
# Reduced precision and OpenVINO on the CPU live in lowp.py / openvino_backend.py (built lazily).
CPU_LOWP_BACKENDS = ("onnxruntime-int8", "cpu-bf16", "openvino", "openvino-int8", "openvino-bf16")
CUDA_BACKENDS = ("cuda-fp32", "cuda-fp16", "cuda-bf16", "cuda-graphs", "cuda-compile", "tensorrt")
ALL_BACKENDS = CPU_BACKENDS + CPU_LOWP_BACKENDS + CUDA_BACKENDS
# Reduced precision cannot match eager FP32 within 1e-4; optimize_for_inference never picks them.
REDUCED_PRECISION = ("cuda-fp16", "cuda-bf16", "cuda-graphs", "tensorrt", "onnxruntime-int8", "cpu-bf16",
                     "openvino-int8", "openvino-bf16")


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (no GPU, package missing, export failed); the message says why."""


def backend_device(name: str) -> str:
    return "cuda" if name.startswith("cuda") or name == "tensorrt" else "cpu"


def fused_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A BN-folded eval copy; the caller's model stays untouched (it is the eager reference)."""
    m = copy.deepcopy(model).eval()
    return m.fuse() if hasattr(m, "fuse") else m


class ShapeGuard:
    """Run a shape-specialised callable on its shape, the general model on any other shape."""

    def __init__(self, fn, shapes, fallback, name: str):
        self.fn, self.shapes, self.fallback, self.name = fn, shapes, fallback, name

    def __call__(self, rgb, depth):
        if (tuple(rgb.shape), tuple(depth.shape)) == self.shapes:
            return self.fn(rgb, depth)
        return self.fallback(rgb, depth)


def _no_grad(fn):
    def run(rgb, depth):
        with torch.inference_mode():
            return fn(rgb, depth)
    return run


def _need_cuda():
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"no CUDA GPU visible to torch {torch.__version__} "
                                 f"(CUDA build: {torch.version.cuda or 'none, CPU-only wheel'})")


def build_backend(name: str, model: torch.nn.Module, rgb: torch.Tensor, depth: torch.Tensor):
    """Return `(fn, info)` for backend `name` specialised to example inputs rgb/depth (CPU FP32)."""
    if name in CPU_LOWP_BACKENDS:
        from .lowp import BUILDERS

        return BUILDERS[name](model, rgb, depth)
    if name not in _BUILDERS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(ALL_BACKENDS)}")
    return _BUILDERS[name](model, rgb, depth)


# --------------------------------------------------------------------------- CPU
def _eager(model, rgb, depth):
    return _no_grad(model.eval()), {"device": "cpu"}


def _fused(model, rgb, depth):
    return _no_grad(fused_copy(model)), {"device": "cpu", "bn_folded": True}


def _channels_last(model, rgb, depth):
    m = fused_copy(model).to(memory_format=torch.channels_last)

    def run(r, d):
        return m(r.contiguous(memory_format=torch.channels_last),
                 d.contiguous(memory_format=torch.channels_last)).contiguous()
    return _no_grad(run), {"device": "cpu", "bn_folded": True, "memory_format": "channels_last"}


def _jit(model, rgb, depth):
    m = fused_copy(model)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation and tracer notes: the shape guard handles them
            traced = torch.jit.trace(m, (rgb, depth), check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    except Exception as exc:  # noqa: BLE001 - any tracer failure means "not available"
        raise BackendUnavailable(f"torch.jit.trace/freeze failed: {type(exc).__name__}: {exc}") from None
    shapes = (tuple(rgb.shape), tuple(depth.shape))
    return _no_grad(ShapeGuard(frozen, shapes, m, "jit")), {"device": "cpu", "static_shape": list(rgb.shape)}


def _compile(model, rgb, depth, device="cpu", mode=None):
    try:
        import torch._inductor  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        raise BackendUnavailable(f"torch.compile (inductor) unavailable: {exc}") from None
    m = fused_copy(model).to(device)
    fn = torch.compile(m, dynamic=False, mode=mode)
    try:
        with torch.inference_mode():
            fn(rgb.to(device), depth.to(device))  # compile now, so timing excludes it
    except Exception as exc:  # noqa: BLE001 - no C++ compiler, unsupported op, ...
        raise BackendUnavailable(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:300]}") from None
    return _no_grad(fn), {"device": device, "bn_folded": True, "compiler": "inductor", "mode": mode}


def ort_session(path, providers=None, threads: int | None = None, spin: bool = False):
    """An ONNX Runtime session with full graph optimisation and the thread count torch uses.

    Worker spinning is off by default: on a CPU shared with other processes (a robot's other
    nodes, or these 2-core machines) spinning threads steal the cores the work needs; measured
    at 480×640 under load: 1.71 s without spinning vs 1.89 s with it (2 threads).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed: pip install asymformer[onnx]") from None
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


def _onnx_file(model, rgb, depth, dynamic=False) -> str:
    from asymformer.deploy.export import export_onnx

    fd, path = tempfile.mkstemp(suffix=".onnx", prefix="asymformer_")
    os.close(fd)
    try:
        export_onnx(model, path, height=rgb.shape[-2], width=rgb.shape[-1], batch=rgb.shape[0],
                    dynamic=dynamic, check=False)
    except (ValueError, ImportError) as exc:
        os.unlink(path)
        raise BackendUnavailable(str(exc)) from None
    return path


def _onnxruntime(model, rgb, depth):
    path = _onnx_file(model, rgb, depth)
    try:
        sess = ort_session(path)
    finally:
        for p in (path, path + ".data"):
            if os.path.exists(p):
                os.unlink(p)

    def run(r, d):
        out = sess.run(["logits"], {"rgb": r.detach().cpu().numpy(), "depth": d.detach().cpu().numpy()})
        return torch.from_numpy(out[0])
    shapes = (tuple(rgb.shape), tuple(depth.shape))
    info = {"device": "cpu", "graph_optimization": "ORT_ENABLE_ALL",
            "intra_op_threads": torch.get_num_threads(), "static_shape": list(rgb.shape)}
    return ShapeGuard(run, shapes, _no_grad(fused_copy(model)), "onnxruntime"), info


# --------------------------------------------------------------------------- CUDA
def _cuda_model(model, dtype=torch.float32):
    _need_cuda()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32 means FP32: keep 1e-4 agreement
    torch.backends.cudnn.allow_tf32 = False
    return fused_copy(model).to("cuda", dtype)


def _cuda_fp32(model, rgb, depth):
    m = _cuda_model(model)
    return _no_grad(lambda r, d: m(r.cuda(), d.cuda())), {"device": "cuda", "dtype": "float32"}


def _cuda_fp16(model, rgb, depth):
    m = _cuda_model(model, torch.float16)
    return (_no_grad(lambda r, d: m(r.cuda().half(), d.cuda().half()).float()),
            {"device": "cuda", "dtype": "float16"})


def _cuda_bf16(model, rgb, depth):
    m = _cuda_model(model)
    if not torch.cuda.is_bf16_supported():
        raise BackendUnavailable("this GPU has no bfloat16 support")

    def run(r, d):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return m(r.cuda(), d.cuda()).float()
    return _no_grad(run), {"device": "cuda", "dtype": "bfloat16 autocast"}


def _cuda_graphs(model, rgb, depth):
    """FP16 model replayed from a captured CUDA graph: no per-kernel launch cost at batch 1."""
    m = _cuda_model(model, torch.float16)
    static_r, static_d = rgb.cuda().half(), depth.cuda().half()
    stream = torch.cuda.Stream()
    with torch.inference_mode():
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                m(static_r, static_d)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = m(static_r, static_d)

    def run(r, d):
        static_r.copy_(r)
        static_d.copy_(d)
        graph.replay()
        return static_out.float()
    shapes = (tuple(rgb.shape), tuple(depth.shape))
    fallback = _no_grad(lambda r, d: m(r.cuda().half(), d.cuda().half()).float())
    return ShapeGuard(_no_grad(run), shapes, fallback, "cuda-graphs"), {"device": "cuda", "dtype": "float16"}


def _cuda_compile(model, rgb, depth):
    _need_cuda()
    return _compile(model, rgb, depth, device="cuda", mode="max-autotune")


def _tensorrt(model, rgb, depth):
    """TensorRT FP16 through onnxruntime's TensorRT provider (keeps torch-tensorrt optional)."""
    _need_cuda()
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("onnxruntime-gpu with TensorRT is not installed") from None
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        raise BackendUnavailable(f"onnxruntime {ort.__version__} has no TensorrtExecutionProvider "
                                 f"(providers: {ort.get_available_providers()}); install onnxruntime-gpu + TensorRT")
    path = _onnx_file(model, rgb, depth)
    trt = ("TensorrtExecutionProvider", {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                                         "trt_engine_cache_path": tempfile.gettempdir()})
    sess = ort_session(path, providers=[trt, "CUDAExecutionProvider"])

    def run(r, d):
        out = sess.run(["logits"], {"rgb": r.cpu().numpy(), "depth": d.cpu().numpy()})
        return torch.from_numpy(out[0])
    return run, {"device": "cuda", "dtype": "float16", "engine": "onnxruntime TensorRT EP"}


_BUILDERS = {
    "eager": _eager, "fused": _fused, "channels_last": _channels_last, "jit": _jit,
    "compile": _compile, "onnxruntime": _onnxruntime, "cuda-fp32": _cuda_fp32,
    "cuda-fp16": _cuda_fp16, "cuda-bf16": _cuda_bf16, "cuda-graphs": _cuda_graphs,
    "cuda-compile": _cuda_compile, "tensorrt": _tensorrt,
}
