"""`asymformer demo`: synthetic rooms -> time-bounded training -> evaluation -> predictions -> report.

What a newcomer runs first, on a CPU, with nothing downloaded. The training length is chosen by
timing a few real steps on the machine it runs on, so the whole run fits `minutes` whatever the CPU; the
poly schedule then runs to completion (a run cut short at a deadline would stop at a high lr).
The engine's `time_limit` still stops training cleanly if the machine slows down.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from asymformer import viz
from asymformer.files import save_image, write_json
from asymformer.report import write_html

DEMO_MODEL = "asymformer_b0_a"
# Fixed costs after training (evaluation, predictions, speed table, report), in seconds.
_RESERVE_S = 75.0
_EPOCH_OVERHEAD_S = 2.0


def _settings(quick: bool, size, n_train: int | None, n_test: int | None) -> dict:
    h, w = size or ((64, 64) if quick else (96, 128))
    return {"height": h, "width": w, "n_train": n_train or (16 if quick else 320),
            "n_test": n_test or (4 if quick else 64), "batch_size": 4 if quick else 8}


def make_data(out: Path, s: dict, seed: int, progress: bool = True) -> Path:
    """Write the synthetic rooms in the custom layout (reused when the same settings exist)."""
    from asymformer.data import write_synthetic_dataset

    root = out / "data"
    meta = root / "classes.json"
    want = f"asymformer synthetic rooms seed={seed} {s['height']}x{s['width']}"
    if meta.is_file():
        import json

        same = json.loads(meta.read_text()).get("source") == want
        counts = [len((root / f"{k}.txt").read_text().split()) if (root / f"{k}.txt").is_file() else -1
                  for k in ("train", "test")]
        if same and counts == [s["n_train"], s["n_test"]]:
            return root
    write_synthetic_dataset(root, s["n_train"], s["n_test"], s["height"], s["width"], seed=seed, overwrite=True,
                            progress=progress)
    return root


def time_train_step(model_name: str, num_classes: int, batch: int, h: int, w: int, steps: int = 2) -> float:
    """Seconds per optimisation step on this machine (one warm-up step, then the median of `steps`)."""
    import torch.nn.functional as F

    import asymformer

    torch.manual_seed(0)
    model = asymformer.create_model(model_name, num_classes=num_classes).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rgb, depth = torch.randn(batch, 3, h, w), torch.randn(batch, 1, h, w)
    label = torch.randint(0, num_classes, (batch, h, w))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(rgb, depth), label).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def _pick_threads(measure, fixed: bool) -> float:
    """Step time with the fastest thread count: on a busy machine one thread can beat two by 3-4x
    (oversubscription), on an idle one two threads win. Keeps the faster setting."""
    default = torch.get_num_threads()
    best = (measure(), default)
    if not fixed and default > 1:
        torch.set_num_threads(1)
        best = min(best, (measure(), 1))
        torch.set_num_threads(best[1])
    return best[0]


def plan_epochs(budget_s: float, step_s: float, iters_per_epoch: int, eval_s: float, max_epochs: int = 300) -> int:
    """Epochs that fit `budget_s` given the step time and the per-epoch validation cost."""
    per_epoch = iters_per_epoch * step_s * 1.1 + eval_s + _EPOCH_OVERHEAD_S  # loader, checkpoints, curves
    return int(min(max_epochs, max(1, math.floor(budget_s / per_epoch))))


def train_demo(out: Path, data: Path, s: dict, seed: int, train_budget_s: float, epochs: int | None,
               progress: bool, fixed_threads: bool = False) -> dict:
    """Train the demo model; returns the engine's summary plus the plan that was used."""
    from asymformer.data import open_dataset
    from asymformer.engine import TrainConfig, train

    num_classes = open_dataset(data, "train").num_classes
    ipe = s["n_train"] // s["batch_size"]
    step_s = None
    if epochs is None:
        step_s = _pick_threads(lambda: time_train_step(DEMO_MODEL, num_classes, s["batch_size"], s["height"],
                                                       s["width"]), fixed_threads)
        eval_s = step_s / s["batch_size"] / 3 * s["n_test"]  # forward only, about a third of a step
        epochs = plan_epochs(train_budget_s, step_s, ipe, eval_s / 4)
    config = TrainConfig(
        data=str(data), out=str(out / "run"), model=DEMO_MODEL, model_kwargs={"rgb_drop_path": 0.1},
        epochs=epochs, batch_size=s["batch_size"], lr=1e-3, weight_decay=0.01,
        warmup_epochs=min(1.0, epochs / 10), crop_size=(s["height"], s["width"]),
        base_size=(s["height"], s["width"]), scale_range=(1.0, 1.5), eval_size=(s["height"], s["width"]),
        val_every=max(1, epochs // 8), val_batch_size=8, save_every=0, workers=0, device="cpu",
        grad_clip=1.0, seed=seed, tensorboard=False, progress=progress, log_every=5,
        time_limit=train_budget_s * 1.25 / 60.0)  # safety net if the machine slows down mid-run
    if (out / "run").exists():  # the demo's own run folder: a new demo starts a new run
        shutil.rmtree(out / "run")
    t0 = time.monotonic()
    result = train(config)
    seconds = time.monotonic() - t0
    settings = {k: getattr(config, k) for k in ("model", "epochs", "batch_size", "lr", "weight_decay",
                                                 "warmup_epochs", "crop_size", "scale_range", "grad_clip", "seed")}
    settings.update(model_kwargs=config.model_kwargs, threads=torch.get_num_threads(),
                    measured_step_s=None if step_s is None else round(step_s, 3),
                    stopped_by_deadline=result["status"] == "stopped")
    return {"result": result, "epochs": epochs, "iterations": result["iteration"], "seconds": seconds,
            "num_train": s["n_train"], "settings": settings}


def _best_checkpoint(run: Path, model) -> Path:
    """best, else last; a run stopped inside its first epoch has neither: save the model as it is."""
    import asymformer

    for name in ("best", "last"):
        p = run / "checkpoints" / f"{name}.safetensors"
        if p.is_file():
            return p
    p = run / "checkpoints" / "last.safetensors"
    p.parent.mkdir(parents=True, exist_ok=True)
    asymformer.save_model(model, p)
    return p


@torch.no_grad()
def predict_samples(model, data: Path, out: Path, count: int) -> dict:
    """Sample panels and LAFS maps for the first `count` test frames."""
    from asymformer.data import open_dataset
    from asymformer.data.transforms import normalize

    ds = open_dataset(data, "test")
    model.eval()
    samples, attention = [], []
    save_image(viz.legend(ds.class_names, ds.colors), out / "legend.png")
    for i in range(min(count, len(ds))):
        s = ds[i]
        rgb, depth = normalize(s["rgb"], s["depth"], model.info.normalization or ds.normalization)
        logits, maps = model(rgb[None], depth[None], return_attention=True)
        pred = logits.argmax(1)[0].numpy()
        name = Path(str(s["name"])).name
        samples.append(f"samples/{name}.png")
        save_image(viz.prediction_panel(s["rgb"], s["depth"], pred, ds.colors, truth=s["label"], name=name,
                                        scale=2), out / samples[-1])
        attention.append(f"attention/{name}.png")
        save_image(viz.attention_panel(s["rgb"], [m[0, 0].numpy() for m in maps], name=name, scale=2),
                   out / attention[-1])
    return {"samples": samples, "attention": attention}


def measure_speed(model, h: int, w: int, quick: bool) -> list[dict]:
    """Median CPU latency (fused, batch 1) of the demo model and of the released asymformer_b0_t."""
    import asymformer
    from asymformer.deploy.optimize import example_inputs, summarize, time_fn

    cases = [(model, DEMO_MODEL, h, w)]
    if not quick:
        cases += [(model, DEMO_MODEL, 480, 640), (None, "asymformer_b0_t", 480, 640)]
    rows = []
    for m, name, hh, ww in cases:
        row = {"model": name, "size": f"{hh}x{ww}", "backend": "eager, BN folded"}
        try:
            net = asymformer.create_model(name, num_classes=model.num_classes) if m is None else copy.deepcopy(m)
            net = net.eval().fuse()
            rgb, depth = example_inputs(1, hh, ww)
            stats = summarize(time_fn(net, rgb, depth, warmup=1, iters=2 if quick else 5), 1)
            row.update(stats, threads=torch.get_num_threads())
        except Exception as exc:  # a speed table entry must never sink the demo
            row["skipped"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


def run_demo(out, minutes: float = 8.0, seed: int = 0, quick: bool = False, epochs: int | None = None,
             size=None, n_train: int | None = None, n_test: int | None = None, threads: int | None = None,
             progress: bool = True, command: str = "asymformer demo") -> dict:
    """The whole demo; returns results.json's content. `quick` is a seconds-long smoke run for tests."""
    import asymformer

    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}")
    if threads:
        torch.set_num_threads(int(threads))
    t_start = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = _settings(quick, size, n_train, n_test)
    print(f"[1/5] synthetic rooms: {s['n_train']} train + {s['n_test']} test at {s['height']}x{s['width']}")
    data = make_data(out, s, seed, progress)
    budget = minutes * 60 - (time.monotonic() - t_start) - (5.0 if quick else _RESERVE_S)
    print(f"[2/5] training {DEMO_MODEL} for about {max(budget, 0) / 60:.1f} min")
    tr = train_demo(out, data, s, seed, max(budget, 10.0), epochs, progress, fixed_threads=bool(threads))
    ckpt = _best_checkpoint(out / "run", tr["result"]["model"])
    print(f"[3/5] evaluating {ckpt.name} on the test rooms (never trained on; validation on them picked "
          f"the best checkpoint, so the score is slightly optimistic)")
    from asymformer.engine.evaluate import evaluate_checkpoint

    ev = evaluate_checkpoint(ckpt, str(data), out=out / "eval", size=(s["height"], s["width"]),
                             batch_size=8, workers=0, device="cpu", progress=progress)
    print("[4/5] predictions, LAFS maps and speed")
    model = asymformer.load_model(str(ckpt))
    files = predict_samples(model, data, out, 2 if quick else 6)
    speed = measure_speed(model, s["height"], s["width"], quick)
    _copy(out / "run" / "curves.png", out / "curves.png")
    files.update(curves="curves.png", per_class_iou="eval/per_class_iou.png", confusion="eval/confusion_matrix.png")
    results = {
        "command": command, "model": DEMO_MODEL, "seed": seed, "minutes": minutes, "checkpoint": str(ckpt),
        "miou": ev["miou"], "pixel_acc": ev["pixel_acc"], "mean_acc": ev["mean_acc"],
        "evaluation": {k: ev[k] for k in ("miou", "pixel_acc", "mean_acc", "per_class_iou", "class_names",
                                          "num_images", "size")},
        "training": {k: tr[k] for k in ("epochs", "iterations", "seconds", "num_train", "settings")},
        "speed": speed, "files": files, "wall_seconds": time.monotonic() - t_start,
    }
    print("[5/5] report")
    write_json(out / "results.json", results)
    write_html(out, results)
    return results


def _copy(src: Path, dst: Path) -> None:
    from PIL import Image

    if src.is_file():
        with Image.open(src) as im:
            save_image(im.convert("RGB"), dst)
