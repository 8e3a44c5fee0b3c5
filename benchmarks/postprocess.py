"""Post-processing alone (JSON): logits at the frame size -> labels, with and without the confidence map.

    python benchmarks/postprocess.py [--size 480x640] [--classes 40] [--threads 2] [--iters 15]

What a live stream pays per frame after the model (`Segmenter.postprocess`, the StreamRunner's
post stage): labels + confidence (the softmax's largest probability) against labels only
(`confidence=False`, which the ROS node uses unless an output reads the confidence). The two
variants are timed round-robin in one process; medians in ms, and whether the labels agree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="480x640")
    p.add_argument("--classes", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=15)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))

    import torch

    from asymformer.deploy.cpu import cpu_info
    from asymformer.deploy.postprocess import Workspace, labels_and_confidence

    torch.set_num_threads(args.threads)
    logits = torch.randn(1, args.classes, h, w, generator=torch.Generator().manual_seed(0)) * 4
    work = Workspace()
    variants = {"labels_and_confidence": True, "labels_only": False}
    times = {k: [] for k in variants}
    with torch.inference_mode():
        want, _, _ = labels_and_confidence(logits, (h, w))
        same = {k: bool(torch.equal(labels_and_confidence(logits, (h, w), confidence=c)[0], want))
                for k, c in variants.items()}
        for _ in range(args.iters):
            for k, c in variants.items():
                buf = work.get(logits, (h, w)) if c else None
                t0 = time.perf_counter()
                labels_and_confidence(logits, (h, w), work=buf, confidence=c)
                times[k].append(1000 * (time.perf_counter() - t0))
    med = {k: round(statistics.median(v), 2) for k, v in times.items()}
    print(json.dumps({"cpu": cpu_info()["model"], "torch": torch.__version__, "threads": args.threads,
                      "size": [h, w], "classes": args.classes, "iters": args.iters, "median_ms": med,
                      "labels_only_vs_both": round(med["labels_only"] / med["labels_and_confidence"], 3),
                      "same_labels": same}, indent=1))


if __name__ == "__main__":
    main()
