"""Segment RGB-D files (paired by name in file_pairs.py): write colourised labels, overlays, panels, attention.

Outputs per frame <name> in OUT: <name>.png (colourised labels), and on request
<name>_labels.png (class indices, uint8, 255 = void-free), <name>_overlay.png,
<name>_panel.png (rgb | depth | prediction | ground truth) and <name>_attention.png
(LAFS spatial maps, paper Fig. 2), and with intrinsics <name>.ply (semantic point cloud);
predict.json sums up timing and FPS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asymformer import viz
from asymformer.files import save_image, write_json
from asymformer.outputs.points import write_ply

from .file_pairs import expand, pair_files  # noqa: F401 - re-exported: the public names of `predict`


def _gt_to_zero_based(label: np.ndarray, base: str) -> np.ndarray:
    if base == "one_based":
        return np.where(label == 0, 255, label - 1)
    if base == "zero_based":
        return label
    raise ValueError(f"labels base must be 'one_based' or 'zero_based', got {base!r}")


@dataclass(frozen=True)
class _Outputs:
    """Which pictures each frame gets (the --overlay / --panel / --attention / --save-labels flags)."""

    overlay: bool = False
    panel: bool = False
    attention: bool = False
    save_labels: bool = False
    alpha: float = 0.5
    labels_base: str = "one_based"
    intrinsics: object = None  # points.Intrinsics: also <name>.ply
    max_depth: float | None = None

    def files(self, name: str) -> list[str]:
        """The files one frame writes, relative to --out."""
        tails = ([""] + ["_labels"] * self.save_labels + ["_overlay"] * self.overlay + ["_panel"] * self.panel
                 + ["_attention"] * self.attention)
        return [f"{name}{t}.png" for t in tails] + [f"{name}.ply"] * (self.intrinsics is not None)


def _earlier_runs(out: Path, ours: set[str]) -> list[dict]:
    """The summaries of earlier runs into `out` (from its predict.json), less the frames this run replaces,
    so predict.json keeps describing every file in the folder."""
    import json

    try:
        old = json.loads((out / "predict.json").read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(old, dict):
        return []
    runs = [*old.pop("earlier_runs", []), old]
    kept = []
    for run in runs:
        if isinstance(run, dict) and isinstance(run.get("per_frame"), list):
            run["per_frame"] = [f for f in run["per_frame"] if f.get("name") not in ours]
            if run["per_frame"]:
                kept.append(run)
    return kept


def _check_not_overwriting(out: Path, planned: list[str], overwrite: bool, inputs) -> None:
    """Refuse to replace another run's outputs unless asked: camB's 001.png over camA's is a lost file.
    An input file is never written over, asked or not."""
    sources = {Path(p).resolve() for p in inputs if p is not None}
    clash = [f for f in planned if (out / f).resolve() in sources]
    if clash:
        raise ValueError(f"--out {out}: the output {clash[0]} would replace the input file of the same name; "
                         "choose another --out")
    if overwrite:
        return
    taken = [f for f in planned if (out / f).exists()]
    if taken:
        raise FileExistsError(f"--out {out} already holds {len(taken)} of this run's output files (e.g. {taken[0]}) "
                              "from an earlier run; pass --overwrite (overwrite=True) to replace them, or choose "
                              "another --out")


def _warn_large_frame(segmenter, shape) -> None:
    """A frame far larger than the model's training size, run at full size: say so before minutes pass."""
    import warnings

    h, w = shape
    ratio = h * w / (480 * 640)
    if segmenter.size is not None or ratio < 4:
        return
    gmacs = ""
    try:
        import torch

        from asymformer.models import count_macs, create_model
        from asymformer.models.info import info_of

        info = info_of(segmenter.model)
        with torch.device("meta"):
            meta = create_model(info.name, num_classes=info.num_classes, **info.kwargs)
        per_pixel = count_macs(meta, 96, 128)["total"] / (96 * 128)  # convolutions and linears: linear in pixels
        gmacs = f"about {per_pixel * h * w:,.0f} GMACs, "
    except Exception:  # noqa: BLE001 - the estimate is a courtesy; a foreign model has no variant name
        pass
    warnings.warn(f"frames are {h}x{w}, {ratio:.0f}x the pixels of 480x640, and run at full size without --size: "
                  f"{gmacs}roughly {ratio:.0f}x the time and {h * w / 1e6:.0f} GB of memory per frame; pass "
                  "--size 480x640 (size=(480, 640)) to run at the model's usual size", stacklevel=3)


def predict_files(segmenter, pairs, out_dir, depth_unit: float | None = None, overlay: bool = False,
                  panel: bool = False, attention: bool = False, save_labels: bool = False,
                  alpha: float = 0.5, labels_base: str = "one_based", progress: bool = True,
                  intrinsics=None, max_depth: float | None = None, view=None, overwrite: bool = False) -> dict:
    """Run `segmenter` on each pair and write the pictures; returns (and writes) the summary.

    depth_unit: metres per stored value; None = the file's own rule (data.io.read_depth: float
    files are metres, 16-bit PNGs millimetres, 8-bit refused). Frames are read in metres and
    handed to the Segmenter as such, so files and arrays follow one rule.
    intrinsics (`points.Intrinsics`): also write <name>.ply, the labelled points of the pixels with
    valid depth (up to max_depth metres). view: a `outputs.rerun_view.RerunView` that gets every
    frame (in 3-D, with points, when intrinsics are given).
    An `out_dir` already holding files this run would write (another run's) is refused unless
    `overwrite`; one process at a time writes a folder (a second is refused), and predict.json
    lists earlier runs' frames still in the folder under "earlier_runs". A failed write (a full
    disk) stops the run with a `WriteFailed` saying how many frames were written completely; the
    frame being written is removed, so every frame left is complete.
    """
    from asymformer.files import DirLock, LockHeld, make_folder

    out = Path(out_dir)
    make_folder(out)
    try:
        lock = DirLock(out, ".predict.lock").acquire()
    except LockHeld as held:
        raise ValueError(f"another asymformer predict (pid {held}) is writing to {out}; wait for it to finish "
                         "or choose another --out") from None
    want = _Outputs(overlay, panel, attention, save_labels, alpha, labels_base, intrinsics, max_depth)
    try:
        return _predict_locked(segmenter, pairs, out, depth_unit, want, progress, overwrite, view)
    finally:
        lock.release()  # the empty .predict.lock stays: removing it could let two later runs lock two files


def _predict_locked(segmenter, pairs, out: Path, depth_unit, want: _Outputs, progress: bool, overwrite: bool,
                    view) -> dict:
    import warnings

    from asymformer.data.io import read_depth, read_label, read_rgb
    from asymformer.files import WriteFailed, write_failed
    from asymformer.progress import progress_bar

    planned = [f for name, *_ in pairs for f in want.files(name)]
    _check_not_overwriting(out, planned, overwrite, [p for _, *paths in pairs for p in paths])
    earlier = _earlier_runs(out, {name for name, *_ in pairs})
    colors = segmenter.colors
    if segmenter.class_names:
        save_image(viz.legend(segmenter.class_names, colors), out / "legend.png")
    call_ms, frames, no_depth, warmup_ms = [], [], [], None
    t_all = time.perf_counter()
    for i, (name, rgb_path, depth_path, label_path) in enumerate(
            progress_bar(pairs, desc="predict", unit="frame", enabled=progress)):
        rgb = read_rgb(rgb_path)
        found: dict = {}
        depth = read_depth(depth_path, depth_unit, expect_16bit=False, report=found)
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"{depth_path} is {depth.shape[0]}×{depth.shape[1]} but {rgb_path} is "
                             f"{rgb.shape[0]}×{rgb.shape[1]}; register depth to the colour image first")
        if want.intrinsics is not None:  # before any of this frame's files: a wrong calibration writes nothing
            try:
                want.intrinsics.check(*depth.shape, f"depth image {depth_path}")
            except ValueError as exc:
                raise ValueError(f"--intrinsics: {exc}") from None
        gt = None
        if want.panel and label_path is not None:
            gt = _gt_to_zero_based(read_label(label_path), want.labels_base)
            if gt.shape != rgb.shape[:2]:
                raise ValueError(f"label file {label_path} is {gt.shape[0]}×{gt.shape[1]} but {rgb_path} is "
                                 f"{rgb.shape[0]}×{rgb.shape[1]}; give the ground truth of this image")
        if i == 0:
            _warn_large_frame(segmenter, rgb.shape[:2])
        invalid = found.get("invalid_fraction", 0.0)
        if invalid >= 1.0:
            no_depth.append(name)
        if invalid >= 0.5 and not getattr(segmenter, "warned_invalid_depth", False):
            segmenter.warned_invalid_depth = True  # one warning per run, here with the file's own cause
            warnings.warn(f"{depth_path}: {invalid:.0%} of the depth pixels are invalid, mostly {found['cause']}; "
                          "such frames are segmented from colour alone and are less accurate (warned once; "
                          "predict.json lists frames without any depth)", stacklevel=3)
        if warmup_ms is None:  # the first call builds kernels and buffers: timed apart, never as FPS
            t0 = time.perf_counter()
            segmenter(rgb, depth, return_attention=want.attention, depth_unit=1.0)
            warmup_ms = 1000 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = segmenter(rgb, depth, return_attention=want.attention, depth_unit=1.0)
        call_ms.append(1000 * (time.perf_counter() - t0))
        if view is not None:
            view.log(None, rgb, depth, res.labels, res.confidence, want.intrinsics, model_ms=call_ms[-1])
        written = []
        try:
            _write_frame(out, name, want, rgb, depth, res, gt, colors, segmenter.size, written, segmenter.class_names)
        except OSError as exc:
            for f in written:  # the frame cut short: its outputs go, so every frame left is complete
                f.unlink(missing_ok=True)
            err = write_failed(exc.filename or out, exc)
            raise WriteFailed(err.errno, f"{err.strerror}; {len(frames)} of {len(pairs)} frames were written "
                                         f"completely to {out} before it", err.filename) from None
        frames.append({"name": name, "mean_confidence": round(float(res.confidence.mean()), 4),
                       "valid_depth": round(1.0 - invalid, 4)})
    total = time.perf_counter() - t_all
    n = len(frames)
    # Segmenter calls include pre/post-processing (upload, normalise, softmax, argmax, download):
    # they are not the model's own speed, which `asymformer benchmark` measures. The first frame is
    # segmented twice: the untimed-as-speed warm-up call, then the timed one, so even a one-frame
    # run reports the speed a stream would see.
    median_ms = float(np.median(call_ms)) if call_ms else None
    summary = {"frames": n, "backend": segmenter.backend, "device": str(segmenter.device),
               "segmenter_ms_per_frame": round(median_ms, 2) if median_ms else None,
               "segmenter_fps": round(1000 / median_ms, 3) if median_ms else None,
               "warmup_ms": round(warmup_ms, 1) if warmup_ms is not None else None,
               "end_to_end_ms_per_frame": round(1000 * total / n, 1) if n else None,
               "end_to_end_fps": round(n / total, 3) if n and total else None,
               "threads": getattr(segmenter, "threads", None),
               "timing_note": "segmenter_* = median Segmenter call after one warm-up call (warmup_ms), incl. "
                              "pre/post-processing; end_to_end = the whole run per frame: reading, the warm-up, "
                              "segmenting and writing files; model-only speed: asymformer benchmark",
               "outputs": str(out),
               "frames_without_depth": no_depth,
               "per_frame": frames}
    if earlier:
        summary["earlier_runs"] = earlier
    try:
        write_json(out / "predict.json", summary)
    except OSError as exc:
        err = write_failed(out / "predict.json", exc)
        raise WriteFailed(err.errno, f"{err.strerror}; all {n} frames were written, the summary was not",
                          err.filename) from None
    return summary


def predict_summary(s: dict) -> str:
    """`predict_files`' summary in words: the speed after warm-up, the warm-up itself, and the whole run."""
    if not s["frames"]:
        return f"no frames -> {s['outputs']}"
    plural = "s" if s["frames"] != 1 else ""
    threads = f", {s['threads']} thread{'s' if s['threads'] != 1 else ''}" if s.get("threads") else ""
    return (f"{s['frames']} frame{plural} -> {s['outputs']}\n"
            f"  segmenting: {s['segmenter_ms_per_frame']:.1f} ms per frame ({s['segmenter_fps']:.1f} FPS; median "
            f"Segmenter call incl. pre/post-processing, {s['backend']} on {s['device']}{threads}), "
            f"after a first warm-up call of {s['warmup_ms']:.0f} ms\n"
            f"  whole run: {s['end_to_end_ms_per_frame']:.1f} ms per frame (reading, warm-up, segmenting, writing "
            f"files); the model alone: asymformer benchmark")


def _write_frame(out: Path, name: str, want: _Outputs, rgb, depth, res, gt, colors, size, written: list,
                 class_names=None) -> None:
    """One frame's pictures; `written` collects the paths done, for the clean-up after a failed write."""
    from asymformer.data.io import write_png
    from asymformer.files import make_folder

    color = viz.colorize(res.labels, colors)
    make_folder((out / name).parent)
    jobs = [(f"{name}.png", lambda p: write_png(p, color))]
    if want.save_labels:
        jobs.append((f"{name}_labels.png", lambda p: write_png(p, res.labels.astype(np.uint8))))
    if want.overlay:
        jobs.append((f"{name}_overlay.png", lambda p: write_png(p, viz.overlay(rgb, color, want.alpha))))
    if want.panel:
        jobs.append((f"{name}_panel.png",
                     lambda p: save_image(viz.prediction_panel(rgb, depth, res.labels, colors, truth=gt), p)))
    if want.attention:
        jobs.append((f"{name}_attention.png", lambda p: save_image(viz.attention_panel(rgb, res.attention, size), p)))
    if want.intrinsics is not None:
        jobs.append((f"{name}.ply", lambda p: write_ply(p, res.points(depth, want.intrinsics, colors, want.max_depth),
                                                        class_names)))
    for file, write in jobs:
        write(out / file)
        written.append(out / file)
