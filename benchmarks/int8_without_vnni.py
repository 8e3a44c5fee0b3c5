"""INT8 agreement with FP32 as a CPU without VNNI sees it, from any x86-64 machine (JSON).

    python benchmarks/int8_without_vnni.py [--work /tmp/int8_isa]

Without VNNI, x86 INT8 kernels sum pairs of u8×s8 products in a saturating int16 (`vpmaddubsw`);
`deploy.cpu.int8_scheme` answers with 7-bit weights there. This script checks that answer on the
tests' trained tiny model (64×96, 12 held-out synthetic rooms), 8- against 7-bit weights, on this
CPU and again as an AVX2 CPU without VNNI sees it:
- with CPUID masked (benchmarks/isa_emulation.py) where the kernel allows: ONNX Runtime and OpenVINO
  both pick their AVX2 kernels, natively;
- otherwise ONNX Runtime under `qemu-x86_64 -cpu Haswell` (its MLAS follows CPUID only) and OpenVINO
  with ONEDNN_MAX_CPU_ISA=AVX2.
Only agreements are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORT_RUN = """
import json, sys, numpy as np, onnxruntime as ort
z = np.load(sys.argv[1] + "/inputs.npz"); out = {}
for bits in (8, 7):
    s = ort.InferenceSession(f"{sys.argv[1]}/q{bits}.onnx", providers=["CPUExecutionProvider"])
    out[f"{bits}-bit"] = round(float(np.mean([(s.run(["logits"], {"rgb": r, "depth": d})[0].argmax(1)
                                              == ref.argmax(1)).mean()
                                             for r, d, ref in zip(z["rgb"], z["depth"], z["ref"])])), 4)
print(json.dumps(out))
"""


def _model_and_samples():
    sys.path.insert(0, str(ROOT))
    from tests.deploy import conftest  # the trained tiny model of the INT8 tests, same recipe and seed

    model = conftest.trained_model._get_wrapped_function()().eval()
    return model, conftest.synthetic_eval_set._get_wrapped_function()()


def _write_ort_files(model, samples, work: Path) -> None:
    import numpy as np
    import torch

    from asymformer.deploy.accel.quantize import ort_int8_file, weight_scheme

    r0, d0 = samples[0]["rgb"][None], samples[0]["depth"][None]
    for bits in (8, 7):
        shutil.move(ort_int8_file(model, r0, d0, scheme=weight_scheme(bits)), work / f"q{bits}.onnx")
    with torch.inference_mode():
        ref = np.stack([model(s["rgb"][None], s["depth"][None]).numpy() for s in samples])
    np.savez(work / "inputs.npz", rgb=np.stack([s["rgb"][None].numpy() for s in samples]),
             depth=np.stack([s["depth"][None].numpy() for s in samples]), ref=ref)


def _json_of(cmd, env=None) -> dict | str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if done.returncode == 0 and lines else f"failed: {done.stderr.strip()[-300:]}"


def _ort(work: Path, prefix=()) -> dict | str:
    return _json_of([*prefix, sys.executable, "-c", ORT_RUN, str(work)])


def _as_avx2(work: Path) -> dict:
    """Both runtimes as an AVX2 CPU without VNNI: CPUID masked, or the fallbacks of the docstring."""
    sys.path.insert(0, str(Path(__file__).parent))
    import isa_emulation

    if isa_emulation.mask_library() is not None:
        mask = [sys.executable, str(Path(isa_emulation.__file__)), "avx2", "--"]
        return {"how": "CPUID masked (isa_emulation.py)", "onnxruntime": _ort(work, mask),
                "openvino": _json_of([*mask, sys.executable, __file__, "--openvino-only"])}
    qemu = shutil.which("qemu-x86_64")
    return {"how": "onnxruntime under qemu-x86_64 -cpu Haswell; OpenVINO with ONEDNN_MAX_CPU_ISA=AVX2",
            "onnxruntime": _ort(work, (qemu, "-cpu", "Haswell")) if qemu else "qemu-x86_64 not found",
            "openvino": _json_of([sys.executable, __file__, "--openvino-only"],
                                 {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})}


def _openvino(model, samples) -> dict:
    import numpy as np
    import torch

    from asymformer.deploy.accel import openvino_backend as ovb
    from asymformer.deploy.accel.export import remove_onnx, temp_onnx_file
    from asymformer.deploy.accel.quantize import weight_scheme

    r0, d0 = samples[0]["rgb"][None], samples[0]["depth"][None]
    with torch.inference_mode():
        refs = [model(s["rgb"][None], s["depth"][None]).numpy() for s in samples]
    out = {}
    for bits in (8, 7):
        path = temp_onnx_file(model, r0, d0, one_pass_norms=True)
        core = ovb._core()
        try:
            ov_model = ovb.quantize_int8(core.read_model(path), ovb._calibration(model, r0, d0), weight_scheme(bits))
        finally:
            remove_onnx(path)
        compiled = core.compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        agree = [float((np.asarray(compiled({"rgb": s["rgb"][None].numpy(), "depth": s["depth"][None].numpy()})[0])
                        .argmax(1) == ref.argmax(1)).mean()) for s, ref in zip(samples, refs)]
        out[f"{bits}-bit"] = round(float(np.mean(agree)), 4)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/asymformer_int8_isa", help="folder for the quantised files")
    p.add_argument("--openvino-only", action="store_true", help=argparse.SUPPRESS)  # the re-run under AVX2
    args = p.parse_args()
    model, samples = _model_and_samples()
    if args.openvino_only:
        print(json.dumps(_openvino(model, samples)))
        return
    from asymformer.deploy.cpu import cpu_info

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    _write_ort_files(model, samples, work)
    report = {
        "cpu": cpu_info(), "model": "tests' trained asymformer_b0_a (tiny), 64x96, 12 synthetic rooms",
        "host": {"onnxruntime": _ort(work), "openvino": _openvino(model, samples)},
        "as_avx2_without_vnni": _as_avx2(work),
        "gate": 0.98,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
