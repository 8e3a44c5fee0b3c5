"""The accelerators behind `Segmenter(backend=...)` and `optimize_for_inference`: where a faster way to
run the same model is built and checked against eager PyTorch.

- cuda_backends.py: FP32 / FP16 / bf16, CUDA graphs and torch.compile on a GPU;
- tensorrt.py: TensorRT FP16 through ONNX Runtime, checked to really be TensorRT;
- export.py: the ONNX export every ONNX path starts from, and its `asymformer.*` metadata;
- quantize.py: ONNX Runtime INT8 (which layers, the weight bits per CPU, calibration frames);
- openvino_backend.py: OpenVINO FP32, its NNCF INT8 and bf16;
- lowp.py: the reduced-precision CPU candidates (INT8, bf16) and their builders.
Choosing among them is deploy/backends.py and deploy/optimize.py; what the CPU can do is deploy/cpu.py.
The optional runtimes (onnx, onnxruntime, openvino, tensorrt) are imported inside the functions
that need them.
"""
