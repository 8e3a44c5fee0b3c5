"""`open_dataset`: one loader for the RGB-D layouts people already have on disk.

Each layout reader turns a root folder + split into a list of (rgb, depth, label) files plus
the class list, the stored depth unit and the label convention; `LayoutDataset` does the
reading and the checks that catch wrong data early (missing files, size mismatches, labels
outside the class range). See docs/data.md for every layout's tree and units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import IGNORE_INDEX, RGBDDataset
from .io import DEPTH_ENCODINGS, read_depth, read_label, read_rgb, resolve_depth_unit
from .layouts import LABEL_CONVENTIONS, LayoutSpec, check_files
from .releases import LAYOUTS, detect_layout

__all__ = ["open_dataset", "LayoutDataset", "convert_labels", "LAYOUTS"]


def open_dataset(root, split: str, layout: str = "auto", transform=None, seed: int = 0, *,
                 classes: int | None = None, sensors=None, depth_unit: float | None = None,
                 depth_encoding: str | None = None, check: bool = True) -> LayoutDataset:
    """Open `split` ("train", "test", ...) of the dataset in `root`.

    `layout="auto"` recognises the folder structure; pass one of `LAYOUTS` to force it.
    classes: the label set of releases that hold several (NYUv2 40 or 13). sensors: SUNRGBD
    subset, e.g. "kv1,kv2" or ("realsense",). depth_unit (metres per stored value) and
    depth_encoding (io.DEPTH_ENCODINGS) override what the layout declares.
    Missing files fail here, at opening; with `check` a sample of frames is read and a wrong
    depth unit or encoding, labels beyond the class list or RGB/depth size mismatches stop
    with one message naming the likely cause and the option that fixes it (data/checks.py).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a folder")
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string like 'train' or 'test', got {split!r}")
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use 'auto' or one of {', '.join(LAYOUTS)}")
    if sensors and layout not in ("nicr_sunrgbd",):
        raise ValueError(f"sensors={sensors!r}: {root} ({layout} layout) does not record the sensor of each "
                         f"frame; sensor subsets need the nicr-scene-analysis-datasets SUNRGBD release")
    spec = LAYOUTS[layout][1](root, split, {"classes": classes, "sensors": sensors})
    if classes is not None and classes != len(spec.class_names):  # an option the layout ignored: never silently
        offered = f" (this release offers {', '.join(map(str, spec.label_sets))})" if spec.label_sets else ""
        raise ValueError(f"classes={classes} (--classes): {root} ({layout} layout) has {len(spec.class_names)} "
                         f"classes{offered}; --classes only picks among a release's label sets, so drop it")
    if depth_unit is not None:
        spec.depth_unit = resolve_depth_unit(None, depth_unit, "depth_unit")
        spec.depth_encoding, spec.relative_depth = "linear", False
    if depth_encoding is not None:
        if depth_encoding not in DEPTH_ENCODINGS:
            raise ValueError(f"unknown depth_encoding {depth_encoding!r}; use one of {', '.join(DEPTH_ENCODINGS)}")
        spec.depth_encoding = depth_encoding
        spec.relative_depth = depth_encoding == "matplotlib_greys_r"
    check_files(root, layout, spec.files)
    ds = LayoutDataset(root, spec, transform=transform, seed=seed)
    if check:
        from .checks import check_dataset

        check_dataset(ds)
    return ds


class LayoutDataset(RGBDDataset):
    """A split of an on-disk layout; samples follow the contract in docs/developing.md."""

    def __init__(self, root, spec: LayoutSpec, transform=None, seed: int = 0):
        super().__init__(spec.names, spec.class_names, spec.colors, transform=transform, seed=seed,
                         normalization=spec.normalization)
        self.root = Path(root)
        self.layout = spec.layout
        self.files = [tuple(str(p) for p in f) for f in spec.files]
        self.depth_unit = float(spec.depth_unit)
        self.labels = spec.labels
        self.depth_16bit = spec.depth_16bit
        self.depth_encoding = spec.depth_encoding
        self.relative_depth = spec.relative_depth
        self.sensors = spec.sensors
        self.label_sets = spec.label_sets
        self.class_source = spec.source

    def load_sample(self, index: int) -> dict:
        rgb_path, depth_path, label_path = self.files[index]
        rgb = read_rgb(rgb_path)
        depth = read_depth(depth_path, self.depth_unit, expect_16bit=self.depth_16bit,
                           encoding=self.depth_encoding)
        raw = read_label(label_path)
        for path, arr in ((depth_path, depth), (label_path, raw)):
            if arr.shape[:2] != rgb.shape[:2]:
                raise ValueError(f"{path} is {arr.shape[0]}x{arr.shape[1]} but its RGB image {rgb_path} "
                                 f"is {rgb.shape[0]}x{rgb.shape[1]}; all three files of a sample must "
                                 f"have the same size")
        label = convert_labels(raw, self.num_classes, self.labels, label_path)
        return {"rgb": rgb, "depth": depth, "label": label, "name": self.names[index]}


def convert_labels(raw: np.ndarray, num_classes: int, convention: str, path="label") -> np.ndarray:
    """Stored labels -> int64 0..K-1 with 255 void; values outside the convention are an error."""
    if convention == "one_based":
        bad = (raw < 0) | (raw > num_classes)
        expected = f"0..{num_classes} (0 = void, i = class i-1)"
    elif convention == "zero_based":
        bad = (raw < 0) | ((raw >= num_classes) & (raw != IGNORE_INDEX))
        expected = f"0..{num_classes - 1} or 255 (void)"
    else:
        raise ValueError(f"unknown label convention {convention!r}; use one of {LABEL_CONVENTIONS}")
    if bad.any():
        values = np.unique(raw[bad])[:10].tolist()
        raise ValueError(f"label file {path} has values {values} outside {expected} for "
                         f"{num_classes} classes; check the class list / label convention")
    if convention == "one_based":
        return np.where(raw == 0, IGNORE_INDEX, raw - 1).astype(np.int64)
    return raw.astype(np.int64)


