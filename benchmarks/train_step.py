"""Training-step throughput and peak memory; prints one JSON object.

CUDA (when available): batch 8 at 480x640 with the released asymformer_b0_t, fp32 vs AMP
(bf16 and fp16), images/s and peak allocated memory (goal with AMP: <= 10 GB; the official
fp32 script needs about 19 GB). CPU: per-step time of a small variant at a small size.

    python benchmarks/train_step.py [--model asymformer_b0_t] [--cpu-model asymformer_b0_a]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

import asymformer
from asymformer.engine import train_step
from asymformer.engine.builders import amp_dtype


def bench(model_name, device, batch, size, amp="none", steps=10, warmup=3, channels_last=False):
    torch.manual_seed(0)
    model = asymformer.create_model(model_name, num_classes=40).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    dtype = amp_dtype(amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    h, w = size
    data = {"rgb": torch.randn(batch, 3, h, w, device=device), "depth": torch.randn(batch, 1, h, w, device=device),
            "label": torch.randint(0, 40, (batch, h, w), device=device)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        train_step(model, data, opt, device, dtype=dtype, scaler=scaler, channels_last=channels_last)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    out = {"model": model_name, "device": str(device), "batch": batch, "size": f"{h}x{w}", "amp": amp,
           "channels_last": channels_last, "step_s": round(step, 4), "images_per_s": round(batch / step, 2),
           "steps": steps}
    if device.type == "cuda":
        out["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
    del model, opt
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="asymformer_b0_t")
    p.add_argument("--cpu-model", default="asymformer_b0_a")
    p.add_argument("--cpu-size", default="96x128")
    p.add_argument("--cpu-batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cpu-bf16", action="store_true", help="also time CPU bf16 autocast (slow without AMX)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(), "runs": []}
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        results["gpu"] = torch.cuda.get_device_name(dev)
        for amp in ("none", "bf16", "fp16"):
            results["runs"].append(bench(args.model, dev, 8, (480, 640), amp, args.steps))
        results["runs"].append(bench(args.model, dev, 8, (480, 640), "bf16", args.steps, channels_last=True))
    else:
        results["cuda"] = "not available: fp32 vs AMP at batch 8, 480x640 not measured"
    h, w = (int(v) for v in args.cpu_size.split("x"))
    cpu = torch.device("cpu")
    for amp in ("none", "bf16") if args.cpu_bf16 else ("none",):
        results["runs"].append(bench(args.cpu_model, cpu, args.cpu_batch_size, (h, w), amp, args.steps, warmup=2))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
